use ceiling_core::kernel::SoftmaxShape;
use ceiling_shaders::{Family, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::{check_tensor, row_grid};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

params! {
    /// The params of softmax.wgsl.
    pub struct SoftmaxParams {
        pub rows: u32,
        pub cols: u32,
        pub scale: f32,
        pub causal: u32,
        /// Rows per (batch, head), for the causal mask.
        pub q_len: u32,
        /// Rows per batch, for the key mask.
        pub rows_per_batch: u32,
        pub has_key_mask: u32,
        pub _pad: u32,
    }
}

/// softmax.wgsl's bindings (an absent key mask is bound to a placeholder).
pub static SOFTMAX: Kernel = Kernel {
    families: &[Family::Softmax],
    entry: "softmax",
    params: SoftmaxParams::LAYOUT,
    bindings: &[
        Binding::uniform(0, "p"),
        Binding::read(1, "x"),
        Binding::read(2, "key_mask"),
        Binding::read_write(3, "out"),
    ],
};

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
    let pipeline =
        SOFTMAX.pipeline(gpu, Variant::new(Family::Softmax, precision), &[("WG", WG)])?;
    let no_mask = gpu.unused_input(ceiling_shaders::Precision::F32)?;
    let mask = key_mask.unwrap_or(&no_mask);
    let params = SoftmaxParams {
        rows: shape.rows as u32,
        cols: shape.cols as u32,
        scale: shape.scale as f32,
        causal: shape.causal as u32,
        q_len: shape.q_len as u32,
        rows_per_batch: shape.rows_per_batch as u32,
        has_key_mask: key_mask.is_some() as u32,
        _pad: 0,
    };
    pipeline.dispatch(
        gpu,
        &params,
        &[x.binding(), mask.binding(), out.binding()],
        row_grid(shape.rows, gpu.limits.max_compute_workgroups_per_dimension),
    )
}
