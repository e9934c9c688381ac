//! Fused attention (attention_rows.wgsl, attention.wgsl, attention_subgroup.wgsl) with its
//! per-row statistics, and the unfused baseline.

use ceiling_core::kernel::AttentionShape;
use ceiling_core::reference;
use ceiling_shaders::Precision;
use rand_chacha::ChaCha8Rng;

use super::{
    default_tolerance, key_mask, uniform, with_extra, KernelCase, OutputCheck, TensorSpec, Variant,
};
use crate::error::Result;
use crate::kernels::{self, attention::ROWS_WG, AttentionKernel, STATS_PER_ROW};
use crate::{Gpu, Tensor};

/// softmax(scale q k^T + masks) v over every kernel the plans can choose, with the
/// statistics rows [lse, n_eff, entropy] when `stats`.
#[derive(Clone, Debug)]
pub struct AttentionCase {
    pub shape: AttentionShape,
    /// A random key mask (batch 0 fully masked when batch > 1).
    pub masked: bool,
    pub stats: bool,
    /// Variants to check beyond the default ones.
    pub extra: Vec<AttentionKernel>,
}

impl AttentionCase {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        heads: usize,
        kv_heads: usize,
        n_q: usize,
        n_kv: usize,
        head_dim: usize,
        causal: bool,
        masked: bool,
    ) -> AttentionCase {
        let mut shape = AttentionShape::new(batch, heads, n_q, head_dim);
        shape.kv_heads = kv_heads;
        shape.n_kv = n_kv;
        shape.causal = causal;
        AttentionCase {
            shape,
            masked,
            stats: true,
            extra: vec![],
        }
    }
}

pub(super) fn variant_name(k: &AttentionKernel) -> String {
    match k {
        AttentionKernel::Auto => "auto".into(),
        AttentionKernel::Rows { wg, rows } => format!("rows-{wg}x{rows}"),
        AttentionKernel::Portable => "portable".into(),
        AttentionKernel::Subgroup => "subgroup".into(),
    }
}

fn label(s: &AttentionShape, masked: bool) -> String {
    let mut l = format!("b{}h{}", s.batch, s.heads);
    if s.kv_heads != s.heads {
        l += &format!("kv{}", s.kv_heads);
    }
    l += &format!("-q{}", s.n_q);
    if s.n_kv != s.n_q {
        l += &format!("k{}", s.n_kv);
    }
    l += &format!("-hd{}", s.head_dim);
    if s.causal {
        l += "-causal";
    }
    if masked {
        l += "-mask";
    }
    if s.scale != 1.0 / (s.head_dim as f64).sqrt() {
        l += &format!("-scale{:e}", s.scale);
    }
    l
}

fn inputs(s: &AttentionShape, masked: bool) -> Vec<TensorSpec> {
    let mut t = vec![
        TensorSpec::new("q", &[s.batch, s.heads, s.n_q, s.head_dim]),
        TensorSpec::new("k", &[s.batch, s.kv_heads, s.n_kv, s.head_dim]),
        TensorSpec::new("v", &[s.batch, s.kv_heads, s.n_kv, s.head_dim]),
    ];
    if masked {
        t.push(TensorSpec::f32("mask", &[s.batch, s.n_kv]));
    }
    t
}

fn draw(s: &AttentionShape, masked: bool, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    let mut x = vec![
        uniform(rng, s.q_len()),
        uniform(rng, s.kv_len()),
        uniform(rng, s.kv_len()),
    ];
    if masked {
        x.push(key_mask(rng, s.batch, s.n_kv, 0.3));
    }
    x
}

/// How well f32 can know the logits: one ulp (relative to 1) of the largest |scale q.k|
/// over any query row and key row. Attention is no better conditioned than its logits: at
/// scale 1e5 they reach ~5e5, and 0.06 of rounding there, not the kernel, limits the output
/// and the stats. At the ordinary scale 1/sqrt(head_dim) this is below 1e-6.
fn logit_error(s: &AttentionShape, q: &[f64], k: &[f64]) -> f64 {
    let mut max: f64 = 0.0;
    for qr in q.chunks(s.head_dim) {
        for kr in k.chunks(s.head_dim) {
            let dot: f64 = qr.iter().zip(kr).map(|(a, b)| a * b).sum();
            max = max.max((s.scale * dot).abs());
        }
    }
    f32::EPSILON as f64 * max
}

/// Tolerance of the statistics: 1e-4 relative to (1 + |value|), plus the logit rounding.
const STATS_TOLERANCE: f64 = 1e-4;

/// lse, n_eff and entropy against the reference; a fully masked row must be exactly
/// (-inf, 0, 0). The logit rounding `dz` moves lse by about dz, entropy H by up to 2 dz H
/// and n_eff by a relative 4 dz (first order). The error reported is the worst element's
/// share of its own bound, scaled to [`STATS_TOLERANCE`].
fn check_stats(got: &[f32], want: &reference::AttentionOutput, dz: f64) -> Vec<OutputCheck> {
    let mut checks: Vec<OutputCheck> = ["lse", "n_eff", "entropy"]
        .iter()
        .map(|name| OutputCheck {
            output: name.to_string(),
            error: 0.0,
            tolerance: STATS_TOLERANCE,
            note: None,
        })
        .collect();
    for (row, st) in got.chunks(STATS_PER_ROW).enumerate() {
        if want.lse[row] == f64::NEG_INFINITY {
            if !(st[0] == f32::NEG_INFINITY && st[1] == 0.0 && st[2] == 0.0) {
                checks[0].fail(format!("fully masked row {row} gave stats {st:?}"));
            }
            continue;
        }
        let wants = [want.lse[row], want.n_eff[row], want.entropy[row]];
        for (x, (&g, w)) in st.iter().zip(wants).enumerate() {
            let rounding = match x {
                0 => dz,
                1 => 4.0 * dz * w.abs(),
                _ => 2.0 * dz * w.abs(),
            };
            let bound = STATS_TOLERANCE * (1.0 + w.abs()) + rounding;
            let err = (g as f64 - w).abs();
            let share = if err.is_finite() {
                STATS_TOLERANCE * err / bound
            } else {
                f64::INFINITY
            };
            checks[x].error = checks[x].error.max(share);
        }
    }
    checks
}

impl KernelCase for AttentionCase {
    fn kernel(&self) -> &'static str {
        "attention"
    }

    fn label(&self) -> String {
        label(&self.shape, self.masked) + if self.stats { "" } else { "-nostats" }
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        inputs(&self.shape, self.masked)
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        let mut t = vec![TensorSpec::new(
            "out",
            &[s.batch, s.heads, s.n_q, s.head_dim],
        )];
        if self.stats {
            t.push(TensorSpec::f32(
                "stats",
                &[s.batch, s.heads, s.n_q, STATS_PER_ROW],
            ));
        }
        t
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        draw(&self.shape, self.masked, rng)
    }

    fn variants(&self, gpu: &Gpu) -> Vec<Variant> {
        let mut v = vec![
            AttentionKernel::Auto,
            AttentionKernel::Rows {
                wg: ROWS_WG,
                rows: 0,
            },
            AttentionKernel::Portable,
        ];
        if gpu.has_subgroups() {
            v.push(AttentionKernel::Subgroup);
        }
        with_extra(v, &self.extra)
            .into_iter()
            .map(Variant::Attention)
            .collect()
    }

    fn launch(
        &self,
        gpu: &Gpu,
        variant: Variant,
        inputs: &[Tensor],
        _host: &[Vec<f32>],
        outputs: &[Tensor],
    ) -> Result<String> {
        let kernel = match variant {
            Variant::Attention(k) => k,
            _ => AttentionKernel::Auto,
        };
        let plan = kernels::attention(
            gpu,
            &self.shape,
            &inputs[0],
            &inputs[1],
            &inputs[2],
            inputs.get(3),
            &outputs[0],
            outputs.get(1),
            kernel,
        )?;
        Ok(plan.to_string())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let want = reference::attention(&self.shape, &x[0], &x[1], &x[2], x.get(3).map(|m| &m[..]));
        let mut outs = vec![want.out];
        if self.stats {
            // Interleaved as the kernel writes them; compare() reads them back per row.
            outs.push(
                (0..want.lse.len())
                    .flat_map(|r| [want.lse[r], want.n_eff[r], want.entropy[r]])
                    .collect(),
            );
        }
        outs
    }

    fn compare(
        &self,
        precision: Precision,
        x: &[Vec<f64>],
        got: &[Vec<f32>],
        want: &[Vec<f64>],
    ) -> Vec<OutputCheck> {
        let dz = logit_error(&self.shape, &x[0], &x[1]);
        let mut checks = vec![OutputCheck::relative(
            "out",
            &got[0],
            &want[0],
            default_tolerance(precision) + dz,
        )];
        if self.stats {
            let rows: Vec<&[f64]> = want[1].chunks(STATS_PER_ROW).collect();
            let stats = reference::AttentionOutput {
                out: vec![],
                lse: rows.iter().map(|r| r[0]).collect(),
                n_eff: rows.iter().map(|r| r[1]).collect(),
                entropy: rows.iter().map(|r| r[2]).collect(),
            };
            checks.extend(check_stats(&got[1], &stats, dz));
        }
        checks
    }

    fn flops(&self) -> f64 {
        self.shape.flops()
    }

    fn head_dim(&self) -> Option<usize> {
        Some(self.shape.head_dim)
    }
}

/// The unfused baseline: scores, softmax and the weighted sum as three kernels.
#[derive(Clone, Debug)]
pub struct AttentionUnfusedCase {
    pub shape: AttentionShape,
    pub masked: bool,
}

impl KernelCase for AttentionUnfusedCase {
    fn kernel(&self) -> &'static str {
        "attention_unfused"
    }

    fn label(&self) -> String {
        label(&self.shape, self.masked)
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        inputs(&self.shape, self.masked)
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        vec![TensorSpec::new(
            "out",
            &[s.batch, s.heads, s.n_q, s.head_dim],
        )]
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        draw(&self.shape, self.masked, rng)
    }

    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        inputs: &[Tensor],
        _host: &[Vec<f32>],
        outputs: &[Tensor],
    ) -> Result<String> {
        kernels::attention_unfused(
            gpu,
            &self.shape,
            &inputs[0],
            &inputs[1],
            &inputs[2],
            inputs.get(3),
            &outputs[0],
        )?;
        Ok("unfused".into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        vec![reference::attention(&self.shape, &x[0], &x[1], &x[2], x.get(3).map(|m| &m[..])).out]
    }

    /// Scores and probabilities round to the storage precision between the steps.
    fn tolerance(&self, precision: Precision) -> f64 {
        match precision {
            Precision::F32 => default_tolerance(precision),
            Precision::F16 => 5e-3,
        }
    }

    fn flops(&self) -> f64 {
        self.shape.flops()
    }

    /// Reads q, k, v, writes and reads the scores and probabilities, writes the output.
    fn bytes(&self, precision: Precision) -> f64 {
        let s = &self.shape;
        let scores = (s.batch * s.heads * s.n_q * s.n_kv) as f64;
        let io: f64 = self
            .inputs()
            .iter()
            .chain(&self.outputs())
            .map(|t| t.bytes(precision))
            .sum();
        io + 4.0 * scores * precision.size() as f64
    }

    fn head_dim(&self) -> Option<usize> {
        Some(self.shape.head_dim)
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    let c = AttentionCase::new;
    let mut cases = vec![
        c(1, 1, 1, 1, 1, 16, false, false),
        c(1, 1, 1, 1, 1, 16, true, false),
        c(1, 2, 2, 7, 7, 24, true, false),
        c(2, 4, 2, 33, 33, 64, true, false),
        c(1, 3, 1, 17, 65, 40, false, true),
        c(2, 2, 1, 5, 70, 80, true, true),
        // A fully masked batch (rows with stats -inf, 0, 0) at a head dim the GL run reaches.
        c(2, 2, 1, 6, 40, 24, true, true),
        c(1, 1, 1, 63, 130, 100, true, false),
        c(1, 2, 2, 20, 40, 128, false, false),
        c(1, 1, 1, 9, 31, 200, true, true),
        c(1, 2, 1, 18, 18, 256, true, false),
        c(1, 1, 1, 70, 9, 48, false, false),
        // Head dims that are not multiples of 4 (the rows kernel pads to vec4s).
        c(1, 1, 1, 3, 5, 1, false, false),
        c(1, 2, 1, 13, 21, 30, true, true),
        c(2, 3, 3, 40, 35, 61, true, false),
        // Long context: one row sees 2048 keys; a few queries over 3000 masked keys.
        c(1, 1, 1, 2048, 2048, 64, true, false),
        c(1, 1, 1, 4, 3000, 72, false, true),
    ];
    // Extreme logit scales stay finite.
    for scale in [1e-4, 30.0, 1e3, 1e5] {
        let mut a = c(1, 2, 2, 19, 45, 32, true, false);
        a.shape.scale = scale;
        cases.push(a);
    }
    // Without stats the rows kernel keeps only the softmax sum; rows per workgroup and per
    // invocation that divide nothing.
    for (causal, masked) in [(false, false), (true, true), (true, false)] {
        let mut a = c(1, 2, 2, 9, 21, 24, causal, masked);
        a.stats = false;
        a.extra = vec![AttentionKernel::Rows { wg: 5, rows: 3 }];
        cases.push(a);
    }
    let mut boxed: Vec<Box<dyn KernelCase>> = cases
        .into_iter()
        .map(|c| Box::new(c) as Box<dyn KernelCase>)
        .collect();
    for (b, h, kvh, n_q, n_kv, hd, causal, masked) in [
        (1, 1, 1, 1, 1, 16, false, false),
        (2, 4, 2, 33, 47, 40, true, true),
        (1, 2, 1, 64, 64, 64, false, false),
    ] {
        let a = c(b, h, kvh, n_q, n_kv, hd, causal, masked);
        boxed.push(Box::new(AttentionUnfusedCase {
            shape: a.shape,
            masked,
        }));
    }
    boxed
}

/// Self-attention of one sequence with 4 heads, full and causal, at the head dims of
/// BERT-sized (64) and larger (128) models.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let n = if small { 128 } else { 512 };
    let mut cases: Vec<Box<dyn KernelCase>> = vec![];
    for hd in [64, 128] {
        for causal in [false, true] {
            let a = AttentionCase::new(1, 4, 4, n, n, hd, causal, false);
            cases.push(Box::new(AttentionUnfusedCase {
                shape: a.shape,
                masked: false,
            }));
            cases.push(Box::new(a));
        }
    }
    cases
}
