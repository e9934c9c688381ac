use ceiling_core::kernel::{Activation, MatmulShape};
use ceiling_shaders::{Family, Variant};

use super::{check_tensor, words};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::{row_chunks, Tensor};

/// Workgroup shape of the matmul: WG_X x WG_Y threads, each computing a 4 x 4 block, over
/// K in steps of TILE_K. Set as WGSL override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulTiles {
    pub wg_x: u32,
    pub wg_y: u32,
    pub tile_k: u32,
}

impl Default for MatmulTiles {
    fn default() -> Self {
        Self {
            wg_x: 16,
            wg_y: 16,
            tile_k: 16,
        }
    }
}

impl MatmulTiles {
    const PER_THREAD: u32 = 4;

    fn check(&self, gpu: &Gpu) -> Result<()> {
        let threads = self.wg_x * self.wg_y;
        let max = gpu.limits.max_compute_invocations_per_workgroup;
        if threads > max || self.tile_k == 0 || threads == 0 {
            return Err(HostError::Limit {
                what: format!("matmul workgroup {}x{}", self.wg_x, self.wg_y),
                need: threads as u64,
                max: max as u64,
                fix: "choose smaller tiles",
            });
        }
        let bytes = (self.wg_x + self.wg_y) * Self::PER_THREAD * self.tile_k * 4;
        let max = gpu.limits.max_compute_workgroup_storage_size;
        if bytes > max {
            return Err(HostError::Limit {
                what: "matmul tiles in workgroup memory".into(),
                need: bytes as u64,
                max: max as u64,
                fix: "choose a smaller TILE_K or workgroup",
            });
        }
        Ok(())
    }
}

/// out = act(a x b + bias) + residual, see `ceiling_core::reference::matmul`.
/// A and out larger than one storage binding are processed in row chunks (batch 1).
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    gpu: &Gpu,
    shape: &MatmulShape,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Activation,
    out: &Tensor,
    tiles: MatmulTiles,
) -> Result<()> {
    shape.validate()?;
    tiles.check(gpu)?;
    let precision = out.precision;
    check_tensor("a", a, shape.a_len(), precision)?;
    check_tensor("b", b, shape.b_len(), precision)?;
    check_tensor("out", out, shape.out_len(), precision)?;
    if let Some(bias) = bias {
        check_tensor("bias", bias, shape.n, precision)?;
    }
    if let Some(r) = residual {
        check_tensor("residual", r, shape.out_len(), precision)?;
    }
    let max = gpu.max_binding();
    if b.bytes() > max {
        return Err(HostError::Limit {
            what: format!("matrix b ({} bytes)", b.bytes()),
            need: b.bytes(),
            max,
            fix: "split b by columns into several matmuls",
        });
    }
    let pipeline = gpu.pipeline(
        Variant::new(Family::Matmul, precision),
        "matmul",
        &[
            ("WG_X", tiles.wg_x),
            ("WG_Y", tiles.wg_y),
            ("TILE_K", tiles.tile_k),
        ],
    )?;
    let tile_m = (tiles.wg_y * MatmulTiles::PER_THREAD) as usize;
    let tile_n = (tiles.wg_x * MatmulTiles::PER_THREAD) as usize;
    let dummy = gpu.unused_input(precision)?;
    let fits = [a.bytes(), out.bytes()].iter().all(|&s| s <= max);
    let chunks = if fits {
        std::iter::once(0..shape.m).collect()
    } else if shape.batch == 1 {
        row_chunks(
            shape.m,
            &[shape.k, shape.n],
            precision.size(),
            max,
            gpu.limits.min_storage_buffer_offset_alignment as u64,
        )?
    } else {
        return Err(HostError::Limit {
            what: "a batched matmul's a or out".into(),
            need: a.bytes().max(out.bytes()),
            max,
            fix: "run the batches as separate calls",
        });
    };
    for rows in chunks {
        let m = rows.len();
        let params = words(&[
            shape.batch as u32,
            m as u32,
            shape.k as u32,
            shape.n as u32,
            shape.trans_b as u32,
            shape.b_group as u32,
            act.code(),
            bias.is_some() as u32 | (residual.is_some() as u32) << 1,
        ]);
        let whole = shape.batch * m;
        let (a_rows, out_rows) = if fits {
            (a.binding(), out.binding())
        } else {
            (
                a.slice(rows.start * shape.k, whole * shape.k),
                out.slice(rows.start * shape.n, whole * shape.n),
            )
        };
        let res = match residual {
            Some(r) if !fits => r.slice(rows.start * shape.n, whole * shape.n),
            Some(r) => r.binding(),
            None => dummy.binding(),
        };
        gpu.dispatch(
            &pipeline,
            &params,
            &[
                (1, a_rows),
                (2, b.binding()),
                (3, bias.unwrap_or(&dummy).binding()),
                (4, res),
                (5, out_rows),
            ],
            [
                shape.n.div_ceil(tile_n) as u32,
                m.div_ceil(tile_m) as u32,
                shape.batch as u32,
            ],
        )?;
    }
    Ok(())
}
