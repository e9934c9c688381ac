//! Fused flash-style attention (portable and subgroup variants) and the unfused baseline
//! built from matmul and softmax.

use std::fmt;

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape, SoftmaxShape};
use ceiling_shaders::{Family, Precision, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::{check_tensor, MatmulKernel};
use crate::autotune::bucket;
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

params! {
    /// The params of the fused attention kernels (attention_common.wgsl).
    pub struct AttentionParams {
        pub heads: u32,
        pub kv_heads: u32,
        pub n_q: u32,
        pub n_kv: u32,
        pub head_dim: u32,
        pub scale: f32,
        pub causal: u32,
        /// bit 0: key mask present, bit 1: write stats.
        pub flags: u32,
        /// Offsets of this dispatch in the grid (query tiles, heads, batch).
        pub tile_base: u32,
        pub head_base: u32,
        pub batch_base: u32,
    }
}

/// The fused attention kernels' bindings (attention_common.wgsl): an absent key mask or
/// stats output is bound to a placeholder.
pub static ATTENTION: Kernel = Kernel {
    families: &[
        Family::Attention,
        Family::AttentionRows,
        Family::AttentionSubgroup,
    ],
    entry: "attention",
    params: AttentionParams::LAYOUT,
    bindings: &[
        Binding::uniform(0, "p"),
        Binding::read(1, "q"),
        Binding::read(2, "k"),
        Binding::read(3, "v"),
        Binding::read(4, "key_mask"),
        Binding::read_write(5, "out"),
        Binding::read_write(6, "stats"),
    ],
};

/// Which attention kernel to run; [`AttentionPlan::choose`] resolves it for a shape.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AttentionKernel {
    /// The autotuned choice where the device tunes (see `crate::autotune`), else the
    /// subgroup kernel on GPUs that support it for this shape, else rows.
    #[default]
    Auto,
    /// Whole query rows per invocation (attention_rows.wgsl): `wg` invocations of `rows`
    /// rows each; `rows` 0 takes as many as the register arrays hold for the head_dim.
    Rows { wg: u32, rows: u32 },
    /// Several invocations per row reducing through workgroup memory (attention.wgsl).
    Portable,
    /// One row per subgroup (attention_subgroup.wgsl).
    Subgroup,
}

/// How one attention call is launched: the kernel, its query rows per workgroup and its
/// keys per K/V tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionPlan {
    /// Never `Auto`.
    pub kernel: AttentionKernel,
    pub rows_per_group: u32,
    pub keys_per_tile: u32,
}

impl fmt::Display for AttentionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kernel {
            AttentionKernel::Rows { wg, rows } => write!(f, "rows {wg}x{rows}")?,
            AttentionKernel::Portable => f.write_str("portable")?,
            AttentionKernel::Subgroup => f.write_str("subgroup")?,
            AttentionKernel::Auto => f.write_str("auto")?,
        }
        write!(f, " q{} k{}", self.rows_per_group, self.keys_per_tile)
    }
}

/// Invocations per workgroup of the rows kernel unless asked otherwise.
pub const ROWS_WG: u32 = 8;
/// Limits of attention_rows.wgsl: rows per invocation, and rows x head_dim in vec4s.
const ROWS_MAX: u32 = 8;
const ROWS_HD4_MAX: u32 = 128;

/// Per query row statistics written next to the output: [lse, n_eff, entropy] in f32.
pub const STATS_PER_ROW: usize = 3;

/// Query rows per workgroup of the portable kernel.
const BQ: u32 = 16;
/// Dims of a row each thread holds (DPT in attention.wgsl).
const DPT: usize = 16;
/// Dims per lane in attention_subgroup.wgsl.
const SUBGROUP_DPT: u32 = 32;
/// Threads per workgroup of the subgroup kernel (at least the largest subgroup).
const SUBGROUP_WG: u32 = 64;

/// softmax(scale q k^T + masks) v with optional per-row stats, see
/// `ceiling_core::reference::attention`. `key_mask` is f32 [batch, n_kv], 0 = masked.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    gpu: &Gpu,
    shape: &AttentionShape,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
    out: &Tensor,
    stats: Option<&Tensor>,
    kernel: AttentionKernel,
) -> Result<AttentionPlan> {
    shape.validate()?;
    let precision = out.precision;
    check_tensor("q", q, shape.q_len(), precision)?;
    check_tensor("k", k, shape.kv_len(), precision)?;
    check_tensor("v", v, shape.kv_len(), precision)?;
    check_tensor("out", out, shape.q_len(), precision)?;
    if let Some(m) = key_mask {
        check_tensor("key_mask", m, shape.batch * shape.n_kv, Precision::F32)?;
    }
    if let Some(s) = stats {
        check_tensor("stats", s, shape.rows() * STATS_PER_ROW, Precision::F32)?;
    }
    for t in [q, k, v] {
        if t.bytes() > gpu.max_binding() {
            return Err(HostError::Limit {
                what: "an attention input".into(),
                need: t.bytes(),
                max: gpu.max_binding(),
                fix: "run fewer batches or heads per call",
            });
        }
    }
    let class = format!(
        "attention {precision} hd{} causal{} mask{} stats{} group{} n_q{} n_kv{}",
        shape.head_dim,
        shape.causal,
        key_mask.is_some(),
        stats.is_some(),
        shape.group(),
        bucket(shape.n_q),
        bucket(shape.n_kv),
    );
    let mut kernel = kernel;
    if kernel == AttentionKernel::Auto {
        let tuned = gpu.tuner.choose(&class, &CANDIDATES, |candidate| {
            let plan = AttentionPlan::choose(gpu, shape, candidate)?;
            launch(gpu, shape, q, k, v, key_mask, out, stats, plan)?;
            gpu.sync_blocking()
        })?;
        kernel = tuned.unwrap_or(AttentionKernel::Auto);
    }
    let plan = AttentionPlan::choose(gpu, shape, kernel)?;
    gpu.tuner.record(&class, plan.to_string());
    launch(gpu, shape, q, k, v, key_mask, out, stats, plan)?;
    Ok(plan)
}

/// The kernels autotuning tries.
const CANDIDATES: [AttentionKernel; 7] = [
    AttentionKernel::Rows { wg: 8, rows: 0 },
    AttentionKernel::Rows { wg: 16, rows: 0 },
    AttentionKernel::Rows { wg: 32, rows: 0 },
    AttentionKernel::Rows { wg: 32, rows: 1 },
    AttentionKernel::Rows { wg: 64, rows: 1 },
    AttentionKernel::Portable,
    AttentionKernel::Subgroup,
];

#[allow(clippy::too_many_arguments)]
fn launch(
    gpu: &Gpu,
    shape: &AttentionShape,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
    out: &Tensor,
    stats: Option<&Tensor>,
    plan: AttentionPlan,
) -> Result<()> {
    let precision = out.precision;
    let params = |base: [u32; 3]| AttentionParams {
        heads: shape.heads as u32,
        kv_heads: shape.kv_heads as u32,
        n_q: shape.n_q as u32,
        n_kv: shape.n_kv as u32,
        head_dim: shape.head_dim as u32,
        scale: shape.scale as f32,
        causal: shape.causal as u32,
        flags: key_mask.is_some() as u32 | (stats.is_some() as u32) << 1,
        tile_base: base[0],
        head_base: base[1],
        batch_base: base[2],
    };
    let no_mask = gpu.unused_input(Precision::F32)?;
    let no_stats = gpu.unused_output()?;
    let buffers = [
        q.binding(),
        k.binding(),
        v.binding(),
        key_mask.unwrap_or(&no_mask).binding(),
        out.binding(),
        stats.unwrap_or(&no_stats).binding(),
    ];
    let hd = shape.head_dim as u32;
    let (bq, bk) = (plan.rows_per_group, plan.keys_per_tile);
    let pipeline = match plan.kernel {
        AttentionKernel::Subgroup => ATTENTION.pipeline(
            gpu,
            Variant::new(Family::AttentionSubgroup, precision),
            &[("WG", SUBGROUP_WG), ("BQ", bq), ("BK", bk), ("HD", hd)],
        )?,
        AttentionKernel::Portable => ATTENTION.pipeline(
            gpu,
            Variant::new(Family::Attention, precision),
            &[
                ("BQ", bq),
                ("TPR", hd.div_ceil(DPT as u32)),
                ("BK", bk),
                ("HD", hd),
            ],
        )?,
        AttentionKernel::Rows { wg, rows } => ATTENTION.pipeline(
            gpu,
            Variant::attention_rows(precision, rows, hd.div_ceil(4)),
            &[("WG", wg), ("BK", bk), ("STATS", stats.is_some() as u32)],
        )?,
        AttentionKernel::Auto => unreachable!("a plan's kernel is never Auto"),
    };
    // The grid [query tiles, heads, batch], split into dispatches of at most the adapter's
    // workgroups per dimension each (batch x heads beyond 65535 runs, as softmax does).
    let grid = [
        shape.n_q.div_ceil(bq as usize) as u32,
        shape.heads as u32,
        shape.batch as u32,
    ];
    let max = gpu.limits.max_compute_workgroups_per_dimension.max(1);
    for z in (0..grid[2]).step_by(max as usize) {
        for y in (0..grid[1]).step_by(max as usize) {
            for x in (0..grid[0]).step_by(max as usize) {
                let part = [
                    (grid[0] - x).min(max),
                    (grid[1] - y).min(max),
                    (grid[2] - z).min(max),
                ];
                pipeline.dispatch(gpu, &params([x, y, z]), &buffers, part)?;
            }
        }
    }
    Ok(())
}

impl AttentionPlan {
    pub fn choose(
        gpu: &Gpu,
        shape: &AttentionShape,
        kernel: AttentionKernel,
    ) -> Result<AttentionPlan> {
        let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
        let hd = shape.head_dim;
        let too_big = |per_key: usize| HostError::Limit {
            what: format!("attention tiles for head_dim {hd}"),
            need: per_key as u64,
            max: limit as u64,
            fix: "use a smaller head_dim",
        };
        let mut kernel = match kernel {
            AttentionKernel::Subgroup if !subgroup_fits(gpu, shape) => {
                return Err(HostError::MissingFeature {
                    adapter: gpu.name().to_string(),
                    feature: "subgroup (with subgroups large enough for this head_dim)",
                    fix: "use the rows or portable attention kernel",
                })
            }
            // Measured on lavapipe (BENCH_NOTES.md): the rows kernel is the fastest there,
            // so CPU adapters take it; GPUs take the subgroup kernel where it fits.
            AttentionKernel::Auto if !gpu.is_cpu() && subgroup_fits(gpu, shape) => {
                AttentionKernel::Subgroup
            }
            AttentionKernel::Auto => AttentionKernel::Rows {
                wg: ROWS_WG,
                rows: 0,
            },
            k => k,
        };
        let (rows_per_group, keys_per_tile) = match kernel {
            AttentionKernel::Subgroup => (
                // One row per subgroup; as many rows as the smallest subgroups give.
                SUBGROUP_WG / gpu.summary.subgroup_min_size.max(1),
                (limit / (8 * hd)).min(32),
            ),
            AttentionKernel::Portable => {
                let tpr = hd.div_ceil(DPT);
                let per_key = 8 * hd + 4 * BQ as usize * tpr + 4 * BQ as usize;
                let bk = (limit / per_key).min(32);
                if bk == 0 {
                    return Err(too_big(per_key));
                }
                (BQ, bk)
            }
            AttentionKernel::Rows { wg, rows } => {
                let max = gpu.limits.max_compute_invocations_per_workgroup;
                let hd4 = hd.div_ceil(4) as u32;
                let fit = (ROWS_HD4_MAX / hd4).min(ROWS_MAX);
                let rows = if rows == 0 { fit } else { rows };
                if rows == 0 || rows > fit {
                    return Err(HostError::Limit {
                        what: format!("attention rows per invocation {rows} at head_dim {hd}"),
                        need: rows as u64,
                        max: fit as u64,
                        fix: "choose fewer rows per invocation (0 picks the most that fit)",
                    });
                }
                if wg == 0 || wg > max {
                    return Err(HostError::Limit {
                        what: format!("attention rows per workgroup {wg}"),
                        need: wg as u64,
                        max: max as u64,
                        fix: "choose fewer rows per workgroup",
                    });
                }
                // K and V as vec4s; keys in multiples of 4 (the kernel's step).
                let per_key = 2 * 16 * hd.div_ceil(4);
                let bk = (limit / per_key).min(32) / 4 * 4;
                if bk == 0 {
                    return Err(too_big(4 * per_key));
                }
                kernel = AttentionKernel::Rows { wg, rows };
                (wg * rows, bk)
            }
            AttentionKernel::Auto => unreachable!("resolved above"),
        };
        Ok(AttentionPlan {
            kernel,
            rows_per_group,
            keys_per_tile: keys_per_tile as u32,
        })
    }
}

/// Whether the subgroup kernel can run this shape here: the adapter has subgroups, and the
/// smallest subgroup covers head_dim with SUBGROUP_DPT dims per lane.
pub fn subgroup_fits(gpu: &Gpu, shape: &AttentionShape) -> bool {
    let min = gpu.summary.subgroup_min_size;
    // K/V tiles of at least one key must fit in workgroup memory.
    let tile_fits = gpu.limits.max_compute_workgroup_storage_size as usize >= 8 * shape.head_dim;
    gpu.has_subgroups()
        && min >= 1
        && gpu.summary.subgroup_max_size <= SUBGROUP_WG
        && (min * SUBGROUP_DPT) as usize >= shape.head_dim
        && tile_fits
}

/// The unfused baseline: scores = q k^T (n_q x n_kv per head, in memory), masked softmax,
/// then scores x v. A cross-check of the fused kernel and the baseline of the benches.
#[allow(clippy::too_many_arguments)]
pub fn attention_unfused(
    gpu: &Gpu,
    shape: &AttentionShape,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_mask: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    shape.validate()?;
    let precision = out.precision;
    let bh = shape.batch * shape.heads;
    let scores_len = bh * shape.n_q * shape.n_kv;
    let scores = gpu.nan_tensor("scores", scores_len, precision)?;
    let probs = gpu.nan_tensor("probs", scores_len, precision)?;
    let group = shape.group();
    super::matmul(
        gpu,
        &MatmulShape {
            batch: bh,
            m: shape.n_q,
            k: shape.head_dim,
            n: shape.n_kv,
            trans_b: true,
            b_group: group,
        },
        q,
        k,
        None,
        None,
        Activation::None,
        &scores,
        MatmulKernel::Auto,
    )?;
    super::softmax(
        gpu,
        &SoftmaxShape {
            rows: bh * shape.n_q,
            cols: shape.n_kv,
            scale: shape.scale,
            causal: shape.causal,
            q_len: shape.n_q,
            rows_per_batch: shape.heads * shape.n_q,
        },
        &scores,
        key_mask,
        &probs,
    )?;
    super::matmul(
        gpu,
        &MatmulShape {
            batch: bh,
            m: shape.n_q,
            k: shape.n_kv,
            n: shape.head_dim,
            trans_b: false,
            b_group: group,
        },
        &probs,
        v,
        None,
        None,
        Activation::None,
        out,
        MatmulKernel::Auto,
    )?;
    Ok(())
}
