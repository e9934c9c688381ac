use ceiling_shaders::{Family, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::{check_tensor, row_grid};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::{row_chunks, Tensor};

params! {
    /// The params of norm.wgsl (layer and RMS norm).
    pub struct NormParams {
        pub rows: u32,
        pub cols: u32,
        pub eps: f32,
        pub _pad: u32,
    }
}

const PARAMS: Binding = Binding::uniform(0, "p");
const X: Binding = Binding::read(1, "x");
const GAMMA: Binding = Binding::read(2, "gamma");
const BETA: Binding = Binding::read(3, "beta");
const OUT: Binding = Binding::read_write(4, "out");

pub static LAYER_NORM: Kernel = Kernel {
    families: &[Family::Norm],
    entry: "layer_norm",
    params: NormParams::LAYOUT,
    bindings: &[PARAMS, X, GAMMA, BETA, OUT],
};

/// RMS norm has no beta.
pub static RMS_NORM: Kernel = Kernel {
    families: &[Family::Norm],
    entry: "rms_norm",
    params: NormParams::LAYOUT,
    bindings: &[PARAMS, X, GAMMA, OUT],
};

const WG: u32 = 128;

/// Layer norm of rows of `cols` elements, see `ceiling_core::reference::layer_norm`.
pub fn layer_norm(
    gpu: &Gpu,
    x: &Tensor,
    cols: usize,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    norm(gpu, "layer_norm", x, cols, gamma, Some(beta), eps, out)
}

/// RMS norm of rows of `cols` elements, see `ceiling_core::reference::rms_norm`.
pub fn rms_norm(
    gpu: &Gpu,
    x: &Tensor,
    cols: usize,
    gamma: &Tensor,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    norm(gpu, "rms_norm", x, cols, gamma, None, eps, out)
}

#[allow(clippy::too_many_arguments)]
fn norm(
    gpu: &Gpu,
    entry: &'static str,
    x: &Tensor,
    cols: usize,
    gamma: &Tensor,
    beta: Option<&Tensor>,
    eps: f32,
    out: &Tensor,
) -> Result<()> {
    if cols == 0 || !x.len.is_multiple_of(cols) || x.len == 0 {
        return Err(ceiling_core::kernel::ShapeError::Invalid(format!(
            "{entry}: {} elements do not form rows of {cols}",
            x.len
        ))
        .into());
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(ceiling_core::kernel::ShapeError::Invalid(format!(
            "{entry}: eps must be finite and >= 0, got {eps}"
        ))
        .into());
    }
    let precision = out.precision;
    check_tensor("x", x, x.len, precision)?;
    check_tensor("out", out, x.len, precision)?;
    check_tensor("gamma", gamma, cols, precision)?;
    if let Some(beta) = beta {
        check_tensor("beta", beta, cols, precision)?;
    }
    let kernel = if beta.is_some() {
        &LAYER_NORM
    } else {
        &RMS_NORM
    };
    debug_assert_eq!(kernel.entry, entry);
    let pipeline = kernel.pipeline(gpu, Variant::new(Family::Norm, precision), &[("WG", WG)])?;
    let rows = x.len / cols;
    let chunks = row_chunks(
        rows,
        &[cols],
        precision.size(),
        gpu.max_binding(),
        gpu.limits.min_storage_buffer_offset_alignment as u64,
    )?;
    for chunk in chunks {
        let n = chunk.len();
        let x = x.slice(chunk.start * cols, n * cols);
        let out = out.slice(chunk.start * cols, n * cols);
        let buffers = match beta {
            Some(beta) => vec![x, gamma.binding(), beta.binding(), out],
            None => vec![x, gamma.binding(), out],
        };
        let params = NormParams {
            rows: n as u32,
            cols: cols as u32,
            eps,
            _pad: 0,
        };
        pipeline.dispatch(
            gpu,
            &params,
            &buffers,
            row_grid(n, gpu.limits.max_compute_workgroups_per_dimension),
        )?;
    }
    Ok(())
}
