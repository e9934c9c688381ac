//! The language-model head (lm_head.wgsl): per row of final hidden states x [rows, d]
//! against the output embedding [vocab, d], the log-sum-exp of the logits, the negative
//! log-likelihood of a target token, the entropy of the prediction and whether its top-1
//! token is the target, without storing the [rows, vocab] logits. The f64 reference is
//! `ceiling_core::reference::next_token_loss`.

use std::fmt;

use ceiling_shaders::{Family, Precision, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::elementwise::Indices;
use super::{check_tensor, Vec4Tiles};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

params! {
    /// The params of lm_head.wgsl (both entry points).
    pub struct LmHeadParams {
        pub m: u32,
        pub k: u32,
        pub n: u32,
        /// First row of this launch in x, targets and out.
        pub row0: u32,
    }
}

const PARAMS: Binding = Binding::uniform(0, "p");
const A: Binding = Binding::read(1, "a");
const B: Binding = Binding::read(2, "b");
const PARTIALS: Binding = Binding::read_write(3, "partials");
const TARGETS: Binding = Binding::read(4, "targets");
const OUT: Binding = Binding::read_write(5, "out");

/// Block products of x and the head, reduced to partials per row and block.
pub static LM_HEAD_PARTIALS: Kernel = Kernel {
    families: &[Family::LmHead],
    entry: "lm_head_partials",
    params: LmHeadParams::LAYOUT,
    bindings: &[PARAMS, A, B, PARTIALS],
};

/// The partials of each row combined, and the target's logit.
pub static LM_HEAD_ROWS: Kernel = Kernel {
    families: &[Family::LmHead],
    entry: "lm_head_rows",
    params: LmHeadParams::LAYOUT,
    bindings: &[PARAMS, A, B, PARTIALS, TARGETS, OUT],
};

/// A target that scores nothing (padding, a masked position): its nll and top-1 are 0.
pub use ceiling_core::reference::IGNORE;

/// Outputs per row: lse, nll, entropy, top1 (1.0 or 0.0).
pub const OUT_PER_ROW: usize = 4;

/// TM and 4 * TN4 of matmul_tiles.wgsl.
const ROWS_PER_INVOCATION: u32 = 16;
const COLS_PER_INVOCATION: u32 = 8;

/// How the head was launched: the block-product tiles, whether bounds are tested, and how
/// many rows one launch takes (the per-block partials of a launch fit one binding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LmHeadPlan {
    pub tiles: Vec4Tiles,
    pub checked: bool,
    pub rows_per_launch: usize,
}

impl fmt::Display for LmHeadPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vec4 {}x{} k{}{}, {} rows per launch",
            self.tiles.wg_x,
            self.tiles.wg_y,
            self.tiles.bk,
            if self.checked { "" } else { " unchecked" },
            self.rows_per_launch
        )
    }
}

fn invalid(m: String) -> HostError {
    ceiling_core::kernel::ShapeError::Invalid(m).into()
}

impl LmHeadPlan {
    /// The largest tiles whose workgroup memory fits the adapter (8x8, else 8x4).
    pub fn choose(gpu: &Gpu, rows: usize, d: usize, vocab: usize) -> Result<LmHeadPlan> {
        let limit = gpu.limits.max_compute_workgroup_storage_size as usize;
        let bytes = |t: &Vec4Tiles| {
            let (bm, bn) = (
                (t.wg_y * ROWS_PER_INVOCATION) as usize,
                (t.wg_x * COLS_PER_INVOCATION) as usize,
            );
            // a and b tiles of the block product, then one vec4 per row and invocation column.
            (bm + bn) * t.bk as usize * 4 + bm * t.wg_x as usize * 16
        };
        let candidates = [
            Vec4Tiles::default(),
            Vec4Tiles {
                wg_y: 4,
                ..Vec4Tiles::default()
            },
        ];
        let tiles = candidates
            .into_iter()
            .find(|t| bytes(t) <= limit)
            .ok_or_else(|| HostError::Limit {
                what: "LM-head tiles in workgroup memory".into(),
                need: bytes(&candidates[1]) as u64,
                max: limit as u64,
                fix: "use an adapter with more workgroup memory",
            })?;
        let (bm, bn) = (
            (tiles.wg_y * ROWS_PER_INVOCATION) as usize,
            (tiles.wg_x * COLS_PER_INVOCATION) as usize,
        );
        let blocks = vocab.div_ceil(bn);
        let by_binding = (gpu.max_binding() / (blocks as u64 * 16)) as usize;
        // Workgroups along y (bm rows each) and the row pass's x (64 rows each).
        let by_grid = gpu.limits.max_compute_workgroups_per_dimension as usize * bm.min(64);
        let rows_per_launch = rows.min(by_binding).min(by_grid).max(1);
        if blocks > gpu.limits.max_compute_workgroups_per_dimension as usize {
            return Err(invalid(format!(
                "a vocabulary of {vocab} needs {blocks} workgroups in one dimension; the \
                 adapter allows {}",
                gpu.limits.max_compute_workgroups_per_dimension
            )));
        }
        let divides = |r: usize| r.is_multiple_of(bm) && vocab.is_multiple_of(bn);
        let checked = !(divides(rows_per_launch)
            && divides(rows % rows_per_launch)
            && d.is_multiple_of(tiles.bk as usize));
        Ok(LmHeadPlan {
            tiles,
            checked,
            rows_per_launch,
        })
    }
}

/// Scores `rows` final hidden states `x` [rows, d] against `head` [vocab, d] (same storage
/// precision) for `targets` (one per row, < vocab or [`IGNORE`]); writes `out` [rows, 4] f32:
/// (lse, nll, entropy, top1).
pub fn lm_head_loss(
    gpu: &Gpu,
    x: &Tensor,
    head: &Tensor,
    targets: &[u32],
    d: usize,
    out: &Tensor,
) -> Result<LmHeadPlan> {
    let rows = targets.len();
    let precision = x.precision;
    if d == 0 || !d.is_multiple_of(4) {
        return Err(invalid(format!(
            "the LM head reads rows as vec4s: d_model {d} must be a positive multiple of 4"
        )));
    }
    if head.len == 0 || !head.len.is_multiple_of(d) {
        return Err(invalid(format!(
            "the output embedding has {} elements, not a multiple of d_model {d}",
            head.len
        )));
    }
    let vocab = head.len / d;
    check_tensor("x", x, rows * d, precision)?;
    check_tensor("head", head, vocab * d, precision)?;
    check_tensor("out", out, rows * OUT_PER_ROW, Precision::F32)?;
    if let Some((i, &t)) = targets
        .iter()
        .enumerate()
        .find(|(_, &t)| t != IGNORE && t as usize >= vocab)
    {
        return Err(invalid(format!(
            "target {t} at row {i} is outside the vocabulary of {vocab}"
        )));
    }
    let max = gpu.max_binding();
    for (what, t) in [("hidden states", x), ("output embedding", head)] {
        if t.bytes() > max {
            return Err(HostError::Limit {
                what: format!("the LM head's {what}"),
                need: t.bytes(),
                max,
                fix: "score fewer rows per call",
            });
        }
    }
    let plan = LmHeadPlan::choose(gpu, rows, d, vocab)?;
    if rows == 0 {
        return Ok(plan);
    }
    let t = plan.tiles;
    let (bm, bn) = (
        (t.wg_y * ROWS_PER_INVOCATION) as usize,
        (t.wg_x * COLS_PER_INVOCATION) as usize,
    );
    let blocks = vocab.div_ceil(bn);
    let constants = [
        ("WG_X", t.wg_x),
        ("WG_Y", t.wg_y),
        ("BK", t.bk),
        ("TRANS_B", 1),
        ("CHECKED", plan.checked as u32),
    ];
    let variant = Variant::new(Family::LmHead, precision);
    let partials_pipeline = LM_HEAD_PARTIALS.pipeline(gpu, variant, &constants)?;
    let rows_pipeline = LM_HEAD_ROWS.pipeline(gpu, variant, &constants)?;
    let partials = gpu.nan_tensor(
        "LM-head partials",
        blocks * plan.rows_per_launch * 4,
        Precision::F32,
    )?;
    let targets = Indices::upload(gpu, "targets", targets);
    for row0 in (0..rows).step_by(plan.rows_per_launch) {
        let m = plan.rows_per_launch.min(rows - row0);
        let params = LmHeadParams {
            m: m as u32,
            k: d as u32,
            n: vocab as u32,
            row0: row0 as u32,
        };
        partials_pipeline.dispatch(
            gpu,
            &params,
            &[x.binding(), head.binding(), partials.binding()],
            [blocks as u32, m.div_ceil(bm) as u32, 1],
        )?;
        rows_pipeline.dispatch(
            gpu,
            &params,
            &[
                x.binding(),
                head.binding(),
                partials.binding(),
                targets.buffer.as_entire_buffer_binding(),
                out.binding(),
            ],
            [m.div_ceil(64) as u32, 1, 1],
        )?;
    }
    Ok(plan)
}
