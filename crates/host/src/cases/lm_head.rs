//! The LM head's cross-entropy (lm_head.wgsl): lse, nll, entropy and top-1 per row, without
//! ever holding the [rows, vocab] logits.

use ceiling_core::reference::{next_token_loss, IGNORE};
use ceiling_shaders::Precision;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{uniform, KernelCase, OutputCheck, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels::lm_head::{lm_head_loss, OUT_PER_ROW};
use crate::{Gpu, Tensor};

/// Loss of hidden states x [rows, d] (times `scale`) under the head [vocab, d]. Row 0's
/// target is the last vocabulary entry; with more than two rows the middle one is ignored.
#[derive(Clone, Debug)]
pub struct LmHeadCase {
    pub rows: usize,
    pub d: usize,
    pub vocab: usize,
    pub scale: f32,
}

/// Targets travel as f32 tensors (exact below 2^24); an ignored position is -1.
const IGNORED: f32 = -1.0;

fn targets(host: &[f32]) -> Vec<u32> {
    host.iter()
        .map(|&t| if t == IGNORED { IGNORE } else { t as u32 })
        .collect()
}

/// The largest |logit| of a row, and whether its two largest logits are too close for f32
/// to order them surely.
fn logit_range(head: &[f64], x: &[f64], d: usize) -> (f64, bool) {
    let mut z: Vec<f64> = head
        .chunks(d)
        .map(|e| e.iter().zip(x).map(|(a, b)| a * b).sum())
        .collect();
    let z_max = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    z.sort_by(|a, b| b.total_cmp(a));
    let tie = z.len() > 1 && (z[0] - z[1]).abs() < 1e-3 * (1.0 + z[0].abs());
    (z_max, tie)
}

impl KernelCase for LmHeadCase {
    fn kernel(&self) -> &'static str {
        "lm_head"
    }

    fn label(&self) -> String {
        let mut l = format!("{}x{}-vocab{}", self.rows, self.d, self.vocab);
        if self.scale != 1.0 {
            l += &format!("-scale{}", self.scale);
        }
        l
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new("x", &[self.rows, self.d]),
            TensorSpec::new("head", &[self.vocab, self.d]),
            TensorSpec::f32("targets", &[self.rows]),
        ]
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::f32("out", &[self.rows, OUT_PER_ROW])]
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let x = uniform(rng, self.rows * self.d)
            .iter()
            .map(|v| v * self.scale)
            .collect();
        let head = uniform(rng, self.vocab * self.d);
        let mut t: Vec<f32> = (0..self.rows)
            .map(|_| rng.random_range(0..self.vocab) as f32)
            .collect();
        t[0] = (self.vocab - 1) as f32;
        if self.rows > 2 {
            t[self.rows / 2] = IGNORED;
        }
        vec![x, head, t]
    }

    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        x: &[Tensor],
        host: &[Vec<f32>],
        out: &[Tensor],
    ) -> Result<String> {
        let plan = lm_head_loss(gpu, &x[0], &x[1], &targets(&host[2]), self.d, &out[0])?;
        Ok(plan.to_string())
    }

    /// [lse, nll, entropy, top1] per row, as the kernel writes them.
    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
        let t: Vec<f32> = f32s(&x[2]);
        let want = next_token_loss(&f32s(&x[1]), self.d, &f32s(&x[0]), &targets(&t));
        vec![want
            .iter()
            .flat_map(|w| [w.lse, w.nll, w.entropy, w.top1 as u8 as f64])
            .collect()]
    }

    /// The logits are f32 sums: an element's error is relative to 1 + |value| + the row's
    /// largest |logit|. An ignored row must score nothing, and top-1 must match unless the
    /// two largest logits tie within f32's reach.
    fn compare(
        &self,
        precision: Precision,
        x: &[Vec<f64>],
        got: &[Vec<f32>],
        want: &[Vec<f64>],
    ) -> Vec<OutputCheck> {
        let mut check = OutputCheck {
            output: "out".into(),
            error: 0.0,
            tolerance: match precision {
                Precision::F32 => 2e-5,
                Precision::F16 => 2e-3,
            },
            note: None,
        };
        let t = targets(&x[2].iter().map(|&v| v as f32).collect::<Vec<_>>());
        for r in 0..self.rows {
            let g = &got[0][r * OUT_PER_ROW..][..OUT_PER_ROW];
            let w = &want[0][r * OUT_PER_ROW..][..OUT_PER_ROW];
            let (z_max, tie) = logit_range(&x[1], &x[0][r * self.d..][..self.d], self.d);
            for i in 0..3 {
                let err = (g[i] as f64 - w[i]).abs() / (1.0 + w[i].abs() + z_max);
                check.error = check
                    .error
                    .max(if err.is_finite() { err } else { f64::INFINITY });
            }
            if t[r] == IGNORE {
                if (g[1], g[3]) != (0.0, 0.0) {
                    check.fail(format!("ignored row {r} scored nll {} top1 {}", g[1], g[3]));
                }
            } else if !tie && (g[3] == 1.0) != (w[3] == 1.0) {
                check.fail(format!(
                    "row {r}: top1 {} against the reference's {}",
                    g[3], w[3]
                ));
            }
        }
        vec![check]
    }

    /// The logits (2 d per entry) and their exp and sums (about 4 per entry).
    fn flops(&self) -> f64 {
        ((2 * self.d + 4) * self.rows * self.vocab) as f64
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [
        (1, 4, 1, 1.0),
        (5, 12, 37, 1.0),
        (130, 64, 200, 1.0),
        (128, 64, 128, 1.0),
        (33, 576, 1000, 0.2),
        // Logits in the thousands: exp() of them overflows f32 without the online max.
        (40, 32, 300, 400.0),
    ]
    .into_iter()
    .map(|(rows, d, vocab, scale)| {
        Box::new(LmHeadCase {
            rows,
            d,
            vocab,
            scale,
        }) as Box<dyn KernelCase>
    })
    .collect()
}

/// SmolLM2-135M's head (576 wide, 49152 tokens) over a batch of positions.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let (rows, vocab) = if small { (64, 8192) } else { (512, 49152) };
    vec![Box::new(LmHeadCase {
        rows,
        d: 576,
        vocab,
        scale: 0.2,
    })]
}
