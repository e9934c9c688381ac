//! Layer norm and RMS norm over the last dimension (norm.wgsl).

use ceiling_core::reference;
use rand_chacha::ChaCha8Rng;

use super::{uniform, KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels;
use crate::{Gpu, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormKind {
    /// (x - mean) / sqrt(var + eps) * gamma + beta (BERT, GPT-2).
    Layer,
    /// x / sqrt(mean(x^2) + eps) * gamma (Llama, SmolLM2).
    Rms,
}

/// A norm over rows of `cols`.
#[derive(Clone, Debug)]
pub struct NormCase {
    pub kind: NormKind,
    pub rows: usize,
    pub cols: usize,
    pub eps: f32,
}

/// The eps of BERT and GPT-2 (Llama's is 1e-6).
pub const EPS: f32 = 1e-5;

impl KernelCase for NormCase {
    fn kernel(&self) -> &'static str {
        match self.kind {
            NormKind::Layer => "layer_norm",
            NormKind::Rms => "rms_norm",
        }
    }

    fn label(&self) -> String {
        format!("{}x{}", self.rows, self.cols)
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        let mut t = vec![
            TensorSpec::new("x", &[self.rows, self.cols]),
            TensorSpec::new("gamma", &[self.cols]),
        ];
        if self.kind == NormKind::Layer {
            t.push(TensorSpec::new("beta", &[self.cols]));
        }
        t
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("out", &[self.rows, self.cols])]
    }

    /// x offset from zero (mean about 2): the centring has to matter.
    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let mut x: Vec<Vec<f32>> = self
            .inputs()
            .iter()
            .map(|s| uniform(rng, s.len()))
            .collect();
        x[0].iter_mut().for_each(|v| *v = *v * 3.0 + 2.0);
        x
    }

    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        x: &[Tensor],
        _host: &[Vec<f32>],
        out: &[Tensor],
    ) -> Result<String> {
        match self.kind {
            NormKind::Layer => {
                kernels::layer_norm(gpu, &x[0], self.cols, &x[1], &x[2], self.eps, &out[0])?
            }
            NormKind::Rms => kernels::rms_norm(gpu, &x[0], self.cols, &x[1], self.eps, &out[0])?,
        }
        Ok(self.kernel().into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let eps = self.eps as f64;
        vec![match self.kind {
            NormKind::Layer => reference::layer_norm(&x[0], self.cols, &x[1], &x[2], eps),
            NormKind::Rms => reference::rms_norm(&x[0], self.cols, &x[1], eps),
        }]
    }

    /// Layer norm: mean, centred squares, scale and shift (8 per element); RMS norm skips
    /// the mean and the shift (5).
    fn flops(&self) -> f64 {
        let per = match self.kind {
            NormKind::Layer => 8.0,
            NormKind::Rms => 5.0,
        };
        per * (self.rows * self.cols) as f64
    }
}

fn both(rows: usize, cols: usize) -> [Box<dyn KernelCase>; 2] {
    [NormKind::Layer, NormKind::Rms].map(|kind| {
        Box::new(NormCase {
            kind,
            rows,
            cols,
            eps: EPS,
        }) as Box<dyn KernelCase>
    })
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [(1, 1), (7, 3), (63, 65), (3, 1000), (100, 384), (2, 4099)]
        .into_iter()
        .flat_map(|(r, c)| both(r, c))
        .collect()
}

/// The hidden states of a batch of tokens at GPT-2 width (4096 wide at full size).
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let (rows, cols) = if small { (2048, 768) } else { (16384, 4096) };
    both(rows, cols).into()
}
