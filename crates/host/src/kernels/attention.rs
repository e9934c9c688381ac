//! Fused flash-style attention (portable and subgroup variants) and the unfused baseline
//! built from matmul and softmax.

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape, SoftmaxShape};
use ceiling_shaders::{Family, Precision, Variant};

use super::{check_tensor, words, MatmulTiles};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

/// Which attention kernel to run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionKernel {
    /// The subgroup kernel on GPUs that support it for this shape, else portable.
    #[default]
    Auto,
    Portable,
    Subgroup,
}

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
) -> Result<()> {
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
    let use_subgroup = match kernel {
        AttentionKernel::Portable => false,
        AttentionKernel::Subgroup => {
            if !subgroup_fits(gpu, shape) {
                return Err(HostError::MissingFeature {
                    adapter: gpu.name().to_string(),
                    feature: "subgroup (with subgroups large enough for this head_dim)",
                    fix: "use the portable attention kernel",
                });
            }
            true
        }
        // Measured on lavapipe (BENCH_NOTES.md): the portable kernel is 1.2-2.1x faster
        // there, so CPU adapters take it; GPUs take the subgroup kernel.
        AttentionKernel::Auto => gpu.summary.device_type != "Cpu" && subgroup_fits(gpu, shape),
    };
    let params = words(&[
        shape.heads as u32,
        shape.kv_heads as u32,
        shape.n_q as u32,
        shape.n_kv as u32,
        shape.head_dim as u32,
        (shape.scale as f32).to_bits(),
        shape.causal as u32,
        key_mask.is_some() as u32 | (stats.is_some() as u32) << 1,
    ]);
    let no_mask = gpu.unused_input(Precision::F32)?;
    let no_stats = gpu.unused_output()?;
    let bindings = [
        (1, q.binding()),
        (2, k.binding()),
        (3, v.binding()),
        (4, key_mask.unwrap_or(&no_mask).binding()),
        (5, out.binding()),
        (6, stats.unwrap_or(&no_stats).binding()),
    ];
    let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
    let hd = shape.head_dim;
    let (pipeline, rows_per_group) = if use_subgroup {
        // One row per subgroup; as many rows as the smallest subgroups give.
        let rows = SUBGROUP_WG / gpu.summary.subgroup_min_size.max(1);
        let bk = (limit / (8 * hd)).min(32) as u32;
        let pipeline = gpu.pipeline(
            Variant::new(Family::AttentionSubgroup, precision),
            "attention",
            &[
                ("WG", SUBGROUP_WG),
                ("BQ", rows),
                ("BK", bk),
                ("HD", hd as u32),
            ],
        )?;
        (pipeline, rows)
    } else {
        let tpr = hd.div_ceil(DPT);
        let per_key = 8 * hd + 4 * BQ as usize * tpr + 4 * BQ as usize;
        let bk = (limit / per_key).min(32);
        if bk == 0 {
            return Err(HostError::Limit {
                what: format!("attention tiles for head_dim {hd}"),
                need: per_key as u64,
                max: limit as u64,
                fix: "use a smaller head_dim",
            });
        }
        let pipeline = gpu.pipeline(
            Variant::new(Family::Attention, precision),
            "attention",
            &[
                ("BQ", BQ),
                ("TPR", tpr as u32),
                ("BK", bk as u32),
                ("HD", hd as u32),
            ],
        )?;
        (pipeline, BQ)
    };
    gpu.dispatch(
        &pipeline,
        &params,
        &bindings,
        [
            shape.n_q.div_ceil(rows_per_group as usize) as u32,
            shape.heads as u32,
            shape.batch as u32,
        ],
    )
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
        MatmulTiles::default(),
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
        MatmulTiles::default(),
    )
}
