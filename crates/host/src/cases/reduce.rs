//! Per-column moments across samples (reduce.wgsl), the reduction behind every variance.

use ceiling_core::stats::Moments;
use rand_chacha::ChaCha8Rng;

use super::{uniform, KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels;
use crate::{Gpu, Tensor};

/// Mean and M2 of each column of x [samples, cols].
#[derive(Clone, Debug)]
pub struct ColumnMomentsCase {
    pub samples: usize,
    pub cols: usize,
    /// A common offset of every value: a naive f32 sum of squares would lose the variance.
    pub offset: f32,
}

impl KernelCase for ColumnMomentsCase {
    fn kernel(&self) -> &'static str {
        "column_moments"
    }

    fn label(&self) -> String {
        format!("{}x{}-offset{}", self.samples, self.cols, self.offset)
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("x", &[self.samples, self.cols])]
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::f32("mean", &[self.cols]),
            TensorSpec::f32("m2", &[self.cols]),
        ]
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        let x = uniform(rng, self.samples * self.cols);
        vec![x.iter().map(|v| v + self.offset).collect()]
    }

    /// The kernel writes straight into the outputs (`kernels::column_moments` reads the same
    /// two tensors back and turns them into f64 moments).
    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        x: &[Tensor],
        _host: &[Vec<f32>],
        out: &[Tensor],
    ) -> Result<String> {
        kernels::column_moments_into(gpu, &x[0], self.samples, self.cols, &out[0], &out[1])?;
        Ok("welford".into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let mut m = Moments::new(self.cols);
        for row in x[0].chunks(self.cols) {
            m.push(row).expect("rows of the case's width");
        }
        vec![m.mean, m.m2]
    }

    /// Welford's update: a subtraction, a division, two multiply-adds per element.
    fn flops(&self) -> f64 {
        6.0 * (self.samples * self.cols) as f64
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [
        (2, 1, 300.0),
        (7, 33, 300.0),
        (100, 65, 3.0),
        (1000, 3, 300.0),
    ]
    .into_iter()
    .map(|(samples, cols, offset)| {
        Box::new(ColumnMomentsCase {
            samples,
            cols,
            offset,
        }) as Box<dyn KernelCase>
    })
    .collect()
}

/// The hidden states of a sweep: many samples of a 384-wide site.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let samples = if small { 256 } else { 4096 };
    vec![Box::new(ColumnMomentsCase {
        samples,
        cols: 384,
        offset: 0.0,
    })]
}
