//! Row softmax with causal and key masks (softmax.wgsl).

use ceiling_core::kernel::SoftmaxShape;
use ceiling_core::reference;
use rand_chacha::ChaCha8Rng;

use super::{key_mask, uniform, KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels;
use crate::{Gpu, Tensor};

/// softmax(scale x) over rows of [batch, heads, q_len, cols], causal and key-masked.
#[derive(Clone, Debug)]
pub struct SoftmaxCase {
    pub batch: usize,
    pub shape: SoftmaxShape,
    pub masked: bool,
}

impl SoftmaxCase {
    pub fn new(batch: usize, heads: usize, q_len: usize, cols: usize) -> SoftmaxCase {
        SoftmaxCase {
            batch,
            shape: SoftmaxShape {
                rows: batch * heads * q_len,
                cols,
                scale: 3.7,
                causal: false,
                q_len,
                rows_per_batch: heads * q_len,
            },
            masked: false,
        }
    }

    fn heads(&self) -> usize {
        self.shape.rows_per_batch / self.shape.q_len
    }
}

impl KernelCase for SoftmaxCase {
    fn kernel(&self) -> &'static str {
        "softmax"
    }

    fn label(&self) -> String {
        let s = &self.shape;
        let mut l = format!("b{}h{}-{}x{}", self.batch, self.heads(), s.q_len, s.cols);
        if s.causal {
            l += "-causal";
        }
        if self.masked {
            l += "-mask";
        }
        l
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        let mut t = vec![TensorSpec::new(
            "x",
            &[self.batch, self.heads(), s.q_len, s.cols],
        )];
        if self.masked {
            t.push(TensorSpec::f32("mask", &[self.batch, s.cols]));
        }
        t
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        let s = &self.shape;
        vec![TensorSpec::new(
            "out",
            &[self.batch, self.heads(), s.q_len, s.cols],
        )]
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let mut x = vec![uniform(rng, self.shape.rows * self.shape.cols)];
        if self.masked {
            x.push(key_mask(rng, self.batch, self.shape.cols, 0.33));
        }
        x
    }

    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        inputs: &[Tensor],
        _host: &[Vec<f32>],
        outputs: &[Tensor],
    ) -> Result<String> {
        kernels::softmax(gpu, &self.shape, &inputs[0], inputs.get(1), &outputs[0])?;
        Ok("softmax".into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        vec![reference::softmax_rows(
            &self.shape,
            &x[0],
            x.get(1).map(|m| &m[..]),
        )]
    }

    /// A max, a sum of exponentials and a division per element.
    fn flops(&self) -> f64 {
        5.0 * (self.shape.rows * self.shape.cols) as f64
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [
        (1, 1, 1, 1, false, false),
        (1, 1, 7, 7, true, false),
        (2, 3, 5, 9, true, true),
        (1, 2, 63, 65, false, true),
        (1, 1, 3, 1000, false, false),
    ]
    .into_iter()
    .map(|(batch, heads, q_len, cols, causal, masked)| {
        let mut c = SoftmaxCase::new(batch, heads, q_len, cols);
        c.shape.causal = causal;
        c.masked = masked;
        Box::new(c) as Box<dyn KernelCase>
    })
    .collect()
}

/// The attention probabilities of one 4-head sequence, causal.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let n = if small { 128 } else { 512 };
    let mut c = SoftmaxCase::new(1, 4, n, n);
    c.shape.causal = true;
    c.shape.scale = 0.125;
    vec![Box::new(c)]
}
