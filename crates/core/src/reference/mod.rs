//! f64 CPU references of every kernel. Inputs are taken as f64 slices so that the
//! reference never shares the rounding of the kernel it checks.

mod attention;
mod elementwise;
mod loss;
mod matmul;
mod norm;
mod rope;
mod softmax;

pub use attention::{attention, AttentionOutput};
pub use elementwise::elementwise;
pub use loss::{next_token_loss, TokenLoss, IGNORE};
pub use matmul::matmul;
pub use norm::{layer_norm, rms_norm};
pub use rope::rope;
pub use softmax::softmax_rows;

/// Relative error ||out - ref|| / ||ref|| and the largest absolute difference.
/// Any NaN or infinity in `out` gives an infinite error, so NaN never passes.
pub fn compare(out: &[f32], reference: &[f64]) -> ErrorFigures {
    assert_eq!(out.len(), reference.len(), "compare: length mismatch");
    let mut diff2 = 0.0;
    let mut ref2 = 0.0;
    let mut max_abs: f64 = 0.0;
    for (&o, &r) in out.iter().zip(reference) {
        let o = o as f64;
        if !o.is_finite() {
            return ErrorFigures {
                rel: f64::INFINITY,
                max_abs: f64::INFINITY,
            };
        }
        let d = o - r;
        diff2 += d * d;
        ref2 += r * r;
        max_abs = max_abs.max(d.abs());
    }
    let rel = if ref2 > 0.0 {
        (diff2 / ref2).sqrt()
    } else {
        diff2.sqrt()
    };
    ErrorFigures { rel, max_abs }
}

/// Error of a kernel output against its reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ErrorFigures {
    pub rel: f64,
    pub max_abs: f64,
}

impl std::fmt::Display for ErrorFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rel {:.3e}, max abs {:.3e}", self.rel, self.max_abs)
    }
}
