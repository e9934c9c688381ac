use ceiling_core::kernel::SoftmaxShape;
use ceiling_shaders::{Family, Variant};

use super::{check_tensor, row_grid, words};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const WG: u32 = 128;

/// Masked row softmax, see `ceiling_core::reference::softmax_rows`. `key_mask` is f32
/// [batch, cols] with 0 for masked keys.
pub fn softmax(
    gpu: &Gpu,
    shape: &SoftmaxShape,
    x: &Tensor,
    key_mask: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    shape.validate()?;
    let precision = out.precision;
    let len = shape.rows * shape.cols;
    check_tensor("x", x, len, precision)?;
    check_tensor("out", out, len, precision)?;
    if let Some(m) = key_mask {
        let batches = shape.rows.div_ceil(shape.rows_per_batch);
        check_tensor(
            "key_mask",
            m,
            batches * shape.cols,
            ceiling_shaders::Precision::F32,
        )?;
    }
    let max = gpu.max_binding();
    if x.bytes() > max {
        return Err(HostError::Limit {
            what: "softmax input".into(),
            need: x.bytes(),
            max,
            fix: "run fewer rows per call, or use the fused attention kernel",
        });
    }
    let pipeline = gpu.pipeline(
        Variant::new(Family::Softmax, precision),
        "softmax",
        &[("WG", WG)],
    )?;
    let no_mask = gpu.unused_input(ceiling_shaders::Precision::F32)?;
    let mask = key_mask.unwrap_or(&no_mask);
    gpu.dispatch(
        &pipeline,
        &words(&[
            shape.rows as u32,
            shape.cols as u32,
            (shape.scale as f32).to_bits(),
            shape.causal as u32,
            shape.q_len as u32,
            shape.rows_per_batch as u32,
            key_mask.is_some() as u32,
            0,
        ]),
        &[(1, x.binding()), (2, mask.binding()), (3, out.binding())],
        row_grid(shape.rows, gpu.limits.max_compute_workgroups_per_dimension),
    )
}
