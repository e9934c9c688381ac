use ceiling_shaders::{Family, Variant};

use super::{check_tensor, row_grid, words};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::tensor::{row_chunks, Tensor};

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
    let pipeline = gpu.pipeline(Variant::new(Family::Norm, precision), entry, &[("WG", WG)])?;
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
        let mut bindings = vec![
            (1, x.slice(chunk.start * cols, n * cols)),
            (2, gamma.binding()),
            (4, out.slice(chunk.start * cols, n * cols)),
        ];
        if let Some(beta) = beta {
            bindings.push((3, beta.binding()));
        }
        gpu.dispatch(
            &pipeline,
            &words(&[n as u32, cols as u32, eps.to_bits(), 0]),
            &bindings,
            row_grid(n, gpu.limits.max_compute_workgroups_per_dimension),
        )?;
    }
    Ok(())
}
