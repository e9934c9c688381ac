use std::fmt;

use ceiling_core::kernel::{Activation, MatmulShape};
use ceiling_shaders::{Family, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::check_tensor;
use crate::autotune::bucket;
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::{row_chunks, Tensor};

params! {
    /// The params of matmul.wgsl.
    pub struct MatmulParams {
        pub batch: u32,
        pub m: u32,
        pub k: u32,
        pub n: u32,
        pub trans_b: u32,
        pub b_group: u32,
        pub act: u32,
        /// bit 0: add bias, bit 1: add residual.
        pub flags: u32,
    }
}

params! {
    /// The params of matmul_vec4.wgsl (transposition and epilogue are override constants).
    pub struct MatmulVec4Params {
        pub batch: u32,
        pub m: u32,
        pub k: u32,
        pub n: u32,
        pub b_group: u32,
    }
}

/// The bindings of matmul.wgsl and matmul_vec4.wgsl (bias and residual are bound to a
/// placeholder when absent).
const BINDINGS: &[Binding] = &[
    Binding::uniform(0, "p"),
    Binding::read(1, "a"),
    Binding::read(2, "b"),
    Binding::read(3, "bias"),
    Binding::read(4, "residual"),
    Binding::read_write(5, "out"),
];

pub static MATMUL: Kernel = Kernel {
    families: &[Family::Matmul],
    entry: "matmul",
    params: MatmulParams::LAYOUT,
    bindings: BINDINGS,
};

pub static MATMUL_VEC4: Kernel = Kernel {
    families: &[Family::MatmulVec4],
    entry: "matmul",
    params: MatmulVec4Params::LAYOUT,
    bindings: BINDINGS,
};

/// Workgroup shape of the scalar matmul (matmul.wgsl): WG_X x WG_Y threads, each computing
/// a 4 x 4 block, over K in steps of TILE_K. Set as WGSL override constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// Workgroup shape of the vec4 matmul (matmul_vec4.wgsl): WG_X x WG_Y invocations, each
/// computing 16 rows x 8 columns (two vec4s), over K in stages of BK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Vec4Tiles {
    pub wg_x: u32,
    pub wg_y: u32,
    pub bk: u32,
}

impl Default for Vec4Tiles {
    fn default() -> Self {
        Self {
            wg_x: 8,
            wg_y: 8,
            bk: 16,
        }
    }
}

impl Vec4Tiles {
    /// TM and 4 * TN4 of matmul_vec4.wgsl.
    const ROWS: u32 = 16;
    const COLS: u32 = 8;

    fn block(&self) -> (usize, usize) {
        (
            (self.wg_y * Self::ROWS) as usize,
            (self.wg_x * Self::COLS) as usize,
        )
    }

    fn check(&self, gpu: &Gpu) -> Result<()> {
        let threads = self.wg_x * self.wg_y;
        let max = gpu.limits.max_compute_invocations_per_workgroup;
        if threads > max || threads == 0 || self.bk == 0 || !self.bk.is_multiple_of(4) {
            return Err(HostError::Limit {
                what: format!(
                    "vec4 matmul workgroup {}x{} bk {}",
                    self.wg_x, self.wg_y, self.bk
                ),
                need: threads as u64,
                max: max as u64,
                fix: "choose a smaller workgroup, and a BK that is a multiple of 4",
            });
        }
        let (bm, bn) = self.block();
        let bytes = ((bm + bn) * self.bk as usize * 4) as u64;
        let max = gpu.limits.max_compute_workgroup_storage_size as u64;
        if bytes > max {
            return Err(HostError::Limit {
                what: "vec4 matmul tiles in workgroup memory".into(),
                need: bytes,
                max,
                fix: "choose a smaller BK or workgroup",
            });
        }
        Ok(())
    }
}

/// Which matmul kernel to run; [`MatmulPlan::choose`] resolves it for a shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatmulKernel {
    /// The autotuned choice where the device tunes (see `crate::autotune`), else the vec4
    /// kernel where k and n are multiples of 4, else the scalar one.
    #[default]
    Auto,
    Scalar(MatmulTiles),
    Vec4(Vec4Tiles),
}

/// How one matmul is launched: the kernel, its tiles, and for the vec4 kernel whether it
/// tests bounds (it does unless its block divides m, n and k).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulPlan {
    Scalar(MatmulTiles),
    Vec4 { tiles: Vec4Tiles, checked: bool },
}

impl MatmulPlan {
    pub fn choose(gpu: &Gpu, shape: &MatmulShape, kernel: MatmulKernel) -> Result<MatmulPlan> {
        let aligned = shape.k.is_multiple_of(4) && shape.n.is_multiple_of(4);
        let vec4 = |tiles: Vec4Tiles| {
            tiles.check(gpu)?;
            let (bm, bn) = tiles.block();
            let divides = shape.m.is_multiple_of(bm)
                && shape.n.is_multiple_of(bn)
                && shape.k.is_multiple_of(tiles.bk as usize);
            Ok(MatmulPlan::Vec4 {
                tiles,
                checked: !divides,
            })
        };
        match kernel {
            MatmulKernel::Auto if aligned => vec4(Vec4Tiles::default()),
            MatmulKernel::Auto => {
                MatmulTiles::default().check(gpu)?;
                Ok(MatmulPlan::Scalar(MatmulTiles::default()))
            }
            MatmulKernel::Scalar(tiles) => {
                tiles.check(gpu)?;
                Ok(MatmulPlan::Scalar(tiles))
            }
            MatmulKernel::Vec4(_) if !aligned => Err(HostError::Shape(
                ceiling_core::kernel::ShapeError::Invalid(format!(
                    "the vec4 matmul needs k and n divisible by 4 (k {}, n {}): use the scalar or auto kernel",
                    shape.k, shape.n
                )),
            )),
            MatmulKernel::Vec4(tiles) => vec4(tiles),
        }
    }

    /// Output rows and columns of one workgroup.
    fn block(&self) -> (usize, usize) {
        match self {
            MatmulPlan::Scalar(t) => (
                (t.wg_y * MatmulTiles::PER_THREAD) as usize,
                (t.wg_x * MatmulTiles::PER_THREAD) as usize,
            ),
            MatmulPlan::Vec4 { tiles, .. } => tiles.block(),
        }
    }
}

impl fmt::Display for MatmulPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatmulPlan::Scalar(t) => write!(f, "scalar {}x{} k{}", t.wg_x, t.wg_y, t.tile_k),
            MatmulPlan::Vec4 { tiles, checked } => write!(
                f,
                "vec4 {}x{} k{} {}",
                tiles.wg_x,
                tiles.wg_y,
                tiles.bk,
                if *checked { "checked" } else { "unchecked" }
            ),
        }
    }
}

/// The vec4 tilings autotuning tries (where k and n are multiples of 4), then the scalar
/// kernel.
const VEC4_CANDIDATES: [(u32, u32, u32); 5] = [
    (8, 8, 16),
    (8, 8, 32),
    (16, 8, 16),
    (8, 16, 16),
    (16, 16, 16),
];

/// out = act(a x b + bias) + residual, see `ceiling_core::reference::matmul`.
/// A and out larger than one storage binding are processed in row chunks (batch 1).
/// Returns the plan it ran.
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
    kernel: MatmulKernel,
) -> Result<MatmulPlan> {
    shape.validate()?;
    let precision = out.precision;
    let class = format!(
        "matmul {precision} batch{} trans_b{} m{} k{} n{} aligned{}",
        shape.batch > 1,
        shape.trans_b,
        bucket(shape.m),
        bucket(shape.k),
        bucket(shape.n),
        shape.k.is_multiple_of(4) && shape.n.is_multiple_of(4),
    );
    let mut kernel = kernel;
    if kernel == MatmulKernel::Auto {
        let mut candidates: Vec<MatmulKernel> = Vec::new();
        if shape.k.is_multiple_of(4) && shape.n.is_multiple_of(4) {
            candidates.extend(
                VEC4_CANDIDATES
                    .map(|(wg_x, wg_y, bk)| MatmulKernel::Vec4(Vec4Tiles { wg_x, wg_y, bk })),
            );
        }
        candidates.push(MatmulKernel::Scalar(MatmulTiles::default()));
        let tuned = gpu.tuner.choose(&class, &candidates, |k| {
            let plan = MatmulPlan::choose(gpu, shape, k)?;
            launch(gpu, shape, a, b, bias, residual, act, out, plan)?;
            gpu.sync_blocking()
        })?;
        kernel = tuned.unwrap_or(MatmulKernel::Auto);
    }
    let plan = MatmulPlan::choose(gpu, shape, kernel)?;
    gpu.tuner.record(&class, plan.to_string());
    launch(gpu, shape, a, b, bias, residual, act, out, plan)?;
    Ok(plan)
}

#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    shape: &MatmulShape,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    residual: Option<&Tensor>,
    act: Activation,
    out: &Tensor,
    plan: MatmulPlan,
) -> Result<()> {
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
    let flags = bias.is_some() as u32 | (residual.is_some() as u32) << 1;
    let pipeline = match plan {
        MatmulPlan::Scalar(tiles) => MATMUL.pipeline(
            gpu,
            Variant::new(Family::Matmul, precision),
            &[
                ("WG_X", tiles.wg_x),
                ("WG_Y", tiles.wg_y),
                ("TILE_K", tiles.tile_k),
            ],
        )?,
        MatmulPlan::Vec4 { tiles, checked } => MATMUL_VEC4.pipeline(
            gpu,
            Variant::new(Family::MatmulVec4, precision),
            &[
                ("WG_X", tiles.wg_x),
                ("WG_Y", tiles.wg_y),
                ("BK", tiles.bk),
                ("TRANS_B", shape.trans_b as u32),
                ("CHECKED", checked as u32),
                ("ACT", act.code()),
                ("HAS_BIAS", bias.is_some() as u32),
                ("HAS_RESIDUAL", residual.is_some() as u32),
            ],
        )?,
    };
    let (tile_m, tile_n) = plan.block();
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
        let buffers = [
            a_rows,
            b.binding(),
            bias.unwrap_or(&dummy).binding(),
            res,
            out_rows,
        ];
        let groups = [
            shape.n.div_ceil(tile_n) as u32,
            m.div_ceil(tile_m) as u32,
            shape.batch as u32,
        ];
        match plan {
            MatmulPlan::Scalar(_) => {
                let params = MatmulParams {
                    batch: shape.batch as u32,
                    m: m as u32,
                    k: shape.k as u32,
                    n: shape.n as u32,
                    trans_b: shape.trans_b as u32,
                    b_group: shape.b_group as u32,
                    act: act.code(),
                    flags,
                };
                pipeline.dispatch(gpu, &params, &buffers, groups)?;
            }
            MatmulPlan::Vec4 { .. } => {
                let params = MatmulVec4Params {
                    batch: shape.batch as u32,
                    m: m as u32,
                    k: shape.k as u32,
                    n: shape.n as u32,
                    b_group: shape.b_group as u32,
                };
                pipeline.dispatch(gpu, &params, &buffers, groups)?;
            }
        }
    }
    Ok(())
}
