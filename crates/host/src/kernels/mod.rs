//! Rust launchers of the WGSL kernels. Each file is named after its WGSL file in `shaders/`
//! and its reference in `ceiling_core::reference`.

pub mod attention;
pub mod bindings;
pub mod lm_head;
pub mod matmul;
pub mod norm;
pub mod reduce;
pub mod softmax;

pub use attention::{attention, attention_unfused, AttentionKernel, AttentionPlan, STATS_PER_ROW};
pub use lm_head::{lm_head_loss, LmHeadPlan};
pub use matmul::{matmul, MatmulKernel, MatmulPlan, MatmulTiles, Vec4Tiles};
pub use norm::{layer_norm, rms_norm};
pub use reduce::{column_moments, column_moments_into};
pub use softmax::softmax;

use ceiling_shaders::Precision;

use crate::error::{HostError, Result};
use crate::tensor::Tensor;

/// Checks that a tensor has the expected length and precision.
pub(crate) fn check_tensor(
    what: &'static str,
    t: &Tensor,
    len: usize,
    precision: Precision,
) -> Result<()> {
    ceiling_core::kernel::check_len(what, len, t.len)?;
    if t.precision != precision {
        return Err(HostError::Shape(ceiling_core::kernel::ShapeError::Invalid(
            format!(
                "{what} is stored as {} but the kernel runs at {precision}: convert it first",
                t.precision
            ),
        )));
    }
    Ok(())
}

/// A grid of `rows` workgroups (one per row, or per block of elements) spread over x and
/// y, as one grid dimension holds at most `max` workgroups.
pub(crate) fn row_grid(rows: usize, max: u32) -> [u32; 3] {
    let x = rows.min(max as usize).max(1);
    [x as u32, rows.div_ceil(x) as u32, 1]
}

pub mod elementwise;
pub mod rope;

pub use rope::{rope, rope_table, rope_with_table};
