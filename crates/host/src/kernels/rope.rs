//! Rotary position embeddings, see `ceiling_core::reference::rope` and shaders/rope.wgsl.

use ceiling_core::kernel::ShapeError;
use ceiling_shaders::{Family, Precision, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::row_grid;
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

params! {
    /// The params of rope.wgsl.
    pub struct RopeParams {
        pub rows: u32,
        pub seq: u32,
        pub head_dim: u32,
        pub half: u32,
    }
}

pub static ROPE: Kernel = Kernel {
    families: &[Family::Rope],
    entry: "rope",
    params: RopeParams::LAYOUT,
    bindings: &[
        Binding::uniform(0, "p"),
        Binding::read_write(1, "x"),
        Binding::read(2, "table"),
    ],
};

const WG: u32 = 64;

/// cos and sin per (position, pair) for positions pos0..pos0 + seq: [seq, rot_dim / 2, 2] in
/// f32, computed in f64 so that large positions lose nothing to f32 angle arithmetic.
pub fn rope_table(gpu: &Gpu, seq: usize, rot_dim: usize, base: f64, pos0: usize) -> Result<Tensor> {
    if !(base.is_finite() && base > 0.0) {
        return Err(
            ShapeError::Invalid(format!("rope: base must be finite and > 0, got {base}")).into(),
        );
    }
    let half = rot_dim / 2;
    let mut table = Vec::with_capacity(seq * half * 2);
    for p in 0..seq {
        for i in 0..half {
            let theta = (pos0 + p) as f64 * base.powf(-2.0 * i as f64 / rot_dim as f64);
            let (s, c) = theta.sin_cos();
            table.push(c as f32);
            table.push(s as f32);
        }
    }
    if table.is_empty() {
        table.push(0.0);
    }
    gpu.upload("rope table", &table, Precision::F32)
}

/// Rotates x [rows, seq, head_dim] in place with a table from [`rope_table`] for the same
/// `seq` and `rot_dim`.
pub fn rope_with_table(
    gpu: &Gpu,
    x: &Tensor,
    seq: usize,
    head_dim: usize,
    rot_dim: usize,
    table: &Tensor,
) -> Result<()> {
    if seq == 0 || head_dim == 0 || x.len == 0 || !x.len.is_multiple_of(seq * head_dim) {
        return Err(ShapeError::Invalid(format!(
            "rope: {} elements do not form rows of seq {seq} x head_dim {head_dim}",
            x.len
        ))
        .into());
    }
    if rot_dim == 0 || !rot_dim.is_multiple_of(2) || rot_dim > head_dim {
        return Err(ShapeError::Invalid(format!(
            "rope: rot_dim {rot_dim} must be even, at least 2 and at most head_dim {head_dim}"
        ))
        .into());
    }
    let half = rot_dim / 2;
    ceiling_core::kernel::check_len("rope table", seq * half * 2, table.len)?;
    if x.bytes() > gpu.max_binding() {
        return Err(HostError::Limit {
            what: "a rope input".into(),
            need: x.bytes(),
            max: gpu.max_binding(),
            fix: "run fewer batches per call",
        });
    }
    let rows = x.len / (seq * head_dim);
    let pairs = rows * seq * half;
    if pairs > u32::MAX as usize {
        return Err(ShapeError::Invalid("rope: more than 2^32 pairs in one call".into()).into());
    }
    let pipeline = ROPE.pipeline(gpu, Variant::new(Family::Rope, x.precision), &[("WG", WG)])?;
    let params = RopeParams {
        rows: rows as u32,
        seq: seq as u32,
        head_dim: head_dim as u32,
        half: half as u32,
    };
    pipeline.dispatch(
        gpu,
        &params,
        &[x.binding(), table.binding()],
        row_grid(
            pairs.div_ceil(WG as usize),
            gpu.limits.max_compute_workgroups_per_dimension,
        ),
    )
}

/// Rotates x [rows, seq, head_dim] in place: the pair (i, i + rot_dim/2) at position
/// pos0 + p by (pos0 + p) * base^(-2i / rot_dim).
pub fn rope(
    gpu: &Gpu,
    x: &Tensor,
    seq: usize,
    head_dim: usize,
    rot_dim: usize,
    base: f64,
    pos0: usize,
) -> Result<()> {
    let table = rope_table(gpu, seq, rot_dim, base, pos0)?;
    rope_with_table(gpu, x, seq, head_dim, rot_dim, &table)
}
