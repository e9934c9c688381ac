use ceiling_core::stats::Moments;
use ceiling_shaders::{Family, Precision, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::{check_tensor, row_grid};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

params! {
    /// The params of reduce.wgsl.
    pub struct ColumnMomentsParams {
        pub samples: u32,
        pub cols: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

pub static COLUMN_MOMENTS: Kernel = Kernel {
    families: &[Family::Reduce],
    entry: "column_moments",
    params: ColumnMomentsParams::LAYOUT,
    bindings: &[
        Binding::uniform(0, "p"),
        Binding::read(1, "x"),
        Binding::read_write(2, "mean"),
        Binding::read_write(3, "m2"),
    ],
};

const WG: u32 = 64;

/// Moments of each column of x [samples, cols] across samples, computed on the GPU
/// (Welford in f32) and returned in f64, ready for Chan merges with other batches.
/// See `ceiling_core::stats::Moments` for the reference.
#[maybe_async::maybe_async]
pub async fn column_moments(gpu: &Gpu, x: &Tensor, samples: usize, cols: usize) -> Result<Moments> {
    let mean = gpu.nan_tensor("mean", cols.max(1), Precision::F32)?;
    let m2 = gpu.nan_tensor("m2", cols.max(1), Precision::F32)?;
    column_moments_into(gpu, x, samples, cols, &mean, &m2)?;
    let (mean, m2) = (gpu.download(&mean).await?, gpu.download(&m2).await?);
    Moments::from_batch_partials(samples as u64, &mean, &m2)
        .map_err(|e| HostError::Stats(format!("column moments: {e}")))
}

/// Records the kernel of [`column_moments`]: the mean and M2 of each column of x into
/// `mean` and `m2` [cols] (f32).
pub fn column_moments_into(
    gpu: &Gpu,
    x: &Tensor,
    samples: usize,
    cols: usize,
    mean: &Tensor,
    m2: &Tensor,
) -> Result<()> {
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
    check_tensor("mean", mean, cols, Precision::F32)?;
    check_tensor("m2", m2, cols, Precision::F32)?;
    let pipeline = COLUMN_MOMENTS.pipeline(
        gpu,
        Variant::new(Family::Reduce, x.precision),
        &[("WG", WG)],
    )?;
    let groups = cols.div_ceil(WG as usize);
    let params = ColumnMomentsParams {
        samples: samples as u32,
        cols: cols as u32,
        ..Default::default()
    };
    pipeline.dispatch(
        gpu,
        &params,
        &[x.binding(), mean.binding(), m2.binding()],
        row_grid(groups, gpu.limits.max_compute_workgroups_per_dimension),
    )
}
