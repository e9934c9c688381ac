use ceiling_core::stats::Moments;
use ceiling_shaders::{Family, Precision, Variant};

use super::{check_tensor, row_grid, words};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const WG: u32 = 64;

/// Moments of each column of x [samples, cols] across samples, computed on the GPU
/// (Welford in f32) and returned in f64, ready for Chan merges with other batches.
/// See `ceiling_core::stats::Moments` for the reference.
pub fn column_moments(gpu: &Gpu, x: &Tensor, samples: usize, cols: usize) -> Result<Moments> {
    if samples == 0 || cols == 0 {
        return Err(ceiling_core::kernel::ShapeError::Zero {
            what: "samples and cols",
        }
        .into());
    }
    check_tensor("x", x, samples * cols, x.precision)?;
    if x.bytes() > gpu.max_binding() {
        return Err(HostError::Limit {
            what: "a batch of samples".into(),
            need: x.bytes(),
            max: gpu.max_binding(),
            fix: "use a smaller batch",
        });
    }
    let mean = gpu.nan_tensor("mean", cols, Precision::F32)?;
    let m2 = gpu.nan_tensor("m2", cols, Precision::F32)?;
    let pipeline = gpu.pipeline(
        Variant::new(Family::Reduce, x.precision),
        "column_moments",
        &[("WG", WG)],
    )?;
    let groups = cols.div_ceil(WG as usize);
    gpu.dispatch(
        &pipeline,
        &words(&[samples as u32, cols as u32, 0, 0]),
        &[(1, x.binding()), (2, mean.binding()), (3, m2.binding())],
        row_grid(groups, gpu.limits.max_compute_workgroups_per_dimension),
    )?;
    let (mean, m2) = (gpu.download(&mean)?, gpu.download(&m2)?);
    Moments::from_batch_partials(samples as u64, &mean, &m2)
        .map_err(|e| HostError::Stats(format!("column moments: {e}")))
}
