//! Rotary position embedding, in place (rope.wgsl).

use ceiling_core::reference;

use super::{KernelCase, TensorSpec, Variant};
use crate::error::Result;
use crate::kernels;
use crate::{Gpu, Tensor};

/// RoPE of x [rows, seq, head_dim] at positions pos0.. with base 10000, rotating the
/// first `rot_dim` dims.
#[derive(Clone, Debug)]
pub struct RopeCase {
    pub rows: usize,
    pub seq: usize,
    pub head_dim: usize,
    pub rot_dim: usize,
    pub pos0: usize,
}

const BASE: f64 = 10000.0;

impl KernelCase for RopeCase {
    fn kernel(&self) -> &'static str {
        "rope"
    }

    fn label(&self) -> String {
        let mut l = format!("{}x{}x{}", self.rows, self.seq, self.head_dim);
        if self.rot_dim != self.head_dim {
            l += &format!("-rot{}", self.rot_dim);
        }
        if self.pos0 > 0 {
            l += &format!("-from{}", self.pos0);
        }
        l
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new("x", &[self.rows, self.seq, self.head_dim])]
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        vec![TensorSpec::new(
            "out",
            &[self.rows, self.seq, self.head_dim],
        )]
    }

    /// The kernel works in place: x is copied into the output, which is then rotated.
    fn launch(
        &self,
        gpu: &Gpu,
        _variant: Variant,
        x: &[Tensor],
        _host: &[Vec<f32>],
        out: &[Tensor],
    ) -> Result<String> {
        gpu.encode(|e| e.copy_buffer_to_buffer(&x[0].buffer, 0, &out[0].buffer, 0, x[0].bytes()));
        kernels::rope(
            gpu,
            &out[0],
            self.seq,
            self.head_dim,
            self.rot_dim,
            BASE,
            self.pos0,
        )?;
        Ok("rope".into())
    }

    fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let mut out = x[0].clone();
        reference::rope(
            &mut out,
            self.seq,
            self.head_dim,
            self.rot_dim,
            BASE,
            self.pos0,
        );
        vec![out]
    }

    /// Two multiplies and an add per rotated element (the table is precomputed).
    fn flops(&self) -> f64 {
        3.0 * (self.rows * self.seq * self.rot_dim) as f64
    }
}

pub(super) fn checks() -> Vec<Box<dyn KernelCase>> {
    [
        (3, 5, 8, 8, 0),
        (2, 7, 12, 6, 100),
        (1, 1, 2, 2, 0),
        (4, 33, 64, 64, 7),
    ]
    .into_iter()
    .map(|(rows, seq, head_dim, rot_dim, pos0)| {
        Box::new(RopeCase {
            rows,
            seq,
            head_dim,
            rot_dim,
            pos0,
        }) as Box<dyn KernelCase>
    })
    .collect()
}

/// The queries of a 9-head, 64-dim model (SmolLM2-135M) over a sequence.
pub(super) fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let seq = if small { 256 } else { 2048 };
    vec![Box::new(RopeCase {
        rows: 9,
        seq,
        head_dim: 64,
        rot_dim: 64,
        pos0: 0,
    })]
}
