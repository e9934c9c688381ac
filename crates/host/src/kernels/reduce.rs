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
    )?;
    let (mean, m2) = (gpu.download(&mean)?, gpu.download(&m2)?);
    Moments::from_batch_partials(samples as u64, &mean, &m2)
        .map_err(|e| HostError::Stats(format!("column moments: {e}")))
}
