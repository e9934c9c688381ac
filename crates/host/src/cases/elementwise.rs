//! Element-wise binary kernels (elementwise.wgsl): the residual add and the SwiGLU product.

use ceiling_core::reference;

use super::{KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels::elementwise;
use crate::{Gpu, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Mul,
}

/// out = a op b over `len` elements.
#[derive(Clone, Debug)]
pub struct BinaryCase {
    pub op: BinaryOp,
    pub len: usize,
}

impl KernelCase for BinaryCase {
    fn kernel(&self) -> &'static str {
        match self.op {
            BinaryOp::Add => "add",
            BinaryOp::Mul => "mul",
        }
    }

    fn label(&self) -> String {
        self.len.to_string()
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        vec![
            TensorSpec::new("a", &[self.len]),
            TensorSpec::new("b", &[self.len]),
        ]
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("out", &[self.len])]
    }

    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        x: &[Tensor],
        _host: &[Vec<f32>],
        out: &[Tensor],
    ) -> Result<String> {
        match self.op {
            BinaryOp::Add => elementwise::add(gpu, &x[0], &x[1], &out[0])?,
            BinaryOp::Mul => elementwise::mul(gpu, &x[0], &x[1], &out[0])?,
        }
        Ok(self.kernel().into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let op = match self.op {
            BinaryOp::Add => |a: f64, b: f64| a + b,
            BinaryOp::Mul => |a: f64, b: f64| a * b,
        };
        vec![reference::elementwise(&x[0], &x[1], op)]
    }

    fn flops(&self) -> f64 {
        self.len as f64
    }
}

fn both(len: usize) -> [Box<dyn KernelCase>; 2] {
    [BinaryOp::Add, BinaryOp::Mul].map(|op| Box::new(BinaryCase { op, len }) as Box<dyn KernelCase>)
}

/// Lengths of 1, of a prime, and past one workgroup grid dimension (65535 x 64).
pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [1, 1009, 65535 * 64 + 7]
        .into_iter()
        .flat_map(both)
        .collect()
}

/// The hidden states of 2048 tokens at width 768.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let len = if small { 2048 * 768 } else { 16384 * 4096 };
    both(len).into()
}
