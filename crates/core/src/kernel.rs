//! Shapes and options of the kernels, shared by the GPU launchers and the CPU references.
//! Validation lives here so that bad input is refused before any GPU work starts.

use serde::{Deserialize, Serialize};

/// Why a kernel call was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShapeError {
    #[error("{what} must be at least 1 (got 0): empty tensors have nothing to compute")]
    Zero { what: &'static str },
    #[error("{what}: expected {expected} elements, got {got}; check the tensor's shape")]
    Len {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Activation applied in a matmul epilogue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    None,
    /// Exact GELU, x * Phi(x) (BERT).
    Gelu,
    /// The tanh approximation of GELU (GPT-2's "gelu_new").
    GeluTanh,
    /// x * sigmoid(x), the gate of SwiGLU.
    Silu,
}

impl Activation {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::None => x,
            Activation::Gelu => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }

    /// The code the WGSL kernels switch on.
    pub fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Gelu => 1,
            Activation::GeluTanh => 2,
            Activation::Silu => 3,
        }
    }
}

/// erf to f64 precision (W. J. Cody's rational approximations via erfc for large |x|).
pub fn erf(x: f64) -> f64 {
    // Abramowitz-Stegun is too coarse for an f64 reference; use the series / continued
    // fraction split, accurate to ~1e-15.
    let ax = x.abs();
    let r = if ax < 2.5 {
        // Maclaurin series: erf x = 2/sqrt(pi) sum (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = ax;
        let mut sum = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // Continued fraction for erfc (Lentz), converges fast for x >= 2.5.
        let x2 = ax * ax;
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        for i in 1..200 {
            let a = i as f64 / 2.0;
            d = ax + a * d;
            d = 1.0 / d;
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - (-x2).exp() / (f * std::f64::consts::PI.sqrt())
    };
    r.copysign(x)
}

/// A batched matrix multiply: for each z < batch, [m, k] x [k, n] (or [n, k] with trans_b).
/// `b_group` batches of `a` share one batch of `b` (grouped-query attention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatmulShape {
    pub batch: usize,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub trans_b: bool,
    pub b_group: usize,
}

impl MatmulShape {
    pub fn new(m: usize, k: usize, n: usize) -> Self {
        Self {
            batch: 1,
            m,
            k,
            n,
            trans_b: false,
            b_group: 1,
        }
    }

    pub fn validate(&self) -> Result<(), ShapeError> {
        nonzero(&[
            ("batch", self.batch),
            ("m", self.m),
            ("k", self.k),
            ("n", self.n),
            ("b_group", self.b_group),
        ])?;
        if !self.batch.is_multiple_of(self.b_group) {
            return Err(ShapeError::Invalid(format!(
                "batch {} is not a multiple of b_group {}",
                self.batch, self.b_group
            )));
        }
        Ok(())
    }

    pub fn a_len(&self) -> usize {
        self.batch * self.m * self.k
    }
    pub fn b_len(&self) -> usize {
        self.batch / self.b_group * self.k * self.n
    }
    pub fn out_len(&self) -> usize {
        self.batch * self.m * self.n
    }
    pub fn flops(&self) -> f64 {
        2.0 * (self.batch * self.m * self.k * self.n) as f64
    }
}

/// Row softmax over `cols`, of rows laid out as [batch, heads, q_len, cols], with an optional
/// causal mask (query i sees key j iff j <= i + cols - q_len) and an optional key mask per
/// (batch, key).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxShape {
    pub rows: usize,
    pub cols: usize,
    pub scale: f64,
    pub causal: bool,
    /// Rows per (batch, head): the query length, for the causal mask.
    pub q_len: usize,
    /// Rows per batch, for the key mask (heads * q_len).
    pub rows_per_batch: usize,
}

impl SoftmaxShape {
    pub fn plain(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            scale: 1.0,
            causal: false,
            q_len: rows.max(1),
            rows_per_batch: rows.max(1),
        }
    }

    pub fn validate(&self) -> Result<(), ShapeError> {
        nonzero(&[
            ("rows", self.rows),
            ("cols", self.cols),
            ("q_len", self.q_len),
            ("rows_per_batch", self.rows_per_batch),
        ])?;
        finite("scale", self.scale)?;
        // With causal and q_len > cols the first q_len - cols queries see no key: their rows
        // are zeros, as in fused attention (one rule for both).
        Ok(())
    }

    pub fn visible(&self, row: usize, col: usize, key_mask: Option<&[f64]>) -> bool {
        let i = row % self.q_len;
        if self.causal && col + self.q_len > i + self.cols {
            return false;
        }
        match key_mask {
            Some(m) => m[(row / self.rows_per_batch) * self.cols + col] != 0.0,
            None => true,
        }
    }
}

/// Attention of q [batch, heads, n_q, head_dim] against k, v [batch, kv_heads, n_kv, head_dim].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionShape {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub n_q: usize,
    pub n_kv: usize,
    pub head_dim: usize,
    /// Logit multiplier; 1/sqrt(head_dim) is the usual choice.
    pub scale: f64,
    /// Query i sees key j iff j <= i + n_kv - n_q (queries aligned to the end of the keys).
    pub causal: bool,
}

impl AttentionShape {
    pub fn new(batch: usize, heads: usize, n: usize, head_dim: usize) -> Self {
        Self {
            batch,
            heads,
            kv_heads: heads,
            n_q: n,
            n_kv: n,
            head_dim,
            scale: 1.0 / (head_dim.max(1) as f64).sqrt(),
            causal: false,
        }
    }

    pub const MAX_HEAD_DIM: usize = 256;

    pub fn validate(&self) -> Result<(), ShapeError> {
        nonzero(&[
            ("batch", self.batch),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("n_q", self.n_q),
            ("n_kv", self.n_kv),
            ("head_dim", self.head_dim),
        ])?;
        finite("scale", self.scale)?;
        if !self.heads.is_multiple_of(self.kv_heads) {
            return Err(ShapeError::Invalid(format!(
                "heads {} is not a multiple of kv_heads {}: grouped-query attention needs whole groups",
                self.heads, self.kv_heads
            )));
        }
        if self.head_dim > Self::MAX_HEAD_DIM {
            return Err(ShapeError::Invalid(format!(
                "head_dim {} exceeds the supported {}",
                self.head_dim,
                Self::MAX_HEAD_DIM
            )));
        }
        Ok(())
    }

    pub fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
    pub fn q_len(&self) -> usize {
        self.batch * self.heads * self.n_q * self.head_dim
    }
    pub fn kv_len(&self) -> usize {
        self.batch * self.kv_heads * self.n_kv * self.head_dim
    }
    pub fn rows(&self) -> usize {
        self.batch * self.heads * self.n_q
    }
    /// Whether query i may see key j under the causal mask.
    pub fn causal_visible(&self, i: usize, j: usize) -> bool {
        !self.causal || j + self.n_q <= i + self.n_kv
    }
    /// Multiply-adds of QK^T and AV over the (query, key) pairs the causal mask leaves
    /// visible, counted as 2 flops each: the work a kernel that skips masked tiles must do.
    /// (Key masks are data, not shape, and are not subtracted.)
    pub fn flops(&self) -> f64 {
        let pairs: usize = if self.causal {
            // Query i sees keys j <= i + n_kv - n_q.
            (0..self.n_q)
                .map(|i| (i + self.n_kv + 1).saturating_sub(self.n_q).min(self.n_kv))
                .sum()
        } else {
            self.n_q * self.n_kv
        };
        4.0 * (self.batch * self.heads * pairs * self.head_dim) as f64
    }
}

/// Checks that a tensor has the number of elements its shape asks for.
pub fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), ShapeError> {
    if expected == got {
        Ok(())
    } else {
        Err(ShapeError::Len {
            what,
            expected,
            got,
        })
    }
}

fn nonzero(dims: &[(&'static str, usize)]) -> Result<(), ShapeError> {
    match dims.iter().find(|(_, v)| *v == 0) {
        Some((what, _)) => Err(ShapeError::Zero { what }),
        None => Ok(()),
    }
}

fn finite(what: &str, v: f64) -> Result<(), ShapeError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ShapeError::Invalid(format!(
            "{what} must be finite, got {v}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from tables of erf.
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.520_499_877_813_046_5),
            (1.0, 0.842_700_792_949_714_9),
            (2.0, 0.995_322_265_018_952_7),
            (3.0, 0.999_977_909_503_001_4),
            (-1.0, -0.842_700_792_949_714_9),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn shapes_refuse_bad_input() {
        assert_eq!(
            MatmulShape::new(0, 3, 4).validate(),
            Err(ShapeError::Zero { what: "m" })
        );
        let mut a = AttentionShape::new(1, 6, 8, 64);
        a.kv_heads = 4;
        assert!(a.validate().is_err());
        a.kv_heads = 3;
        assert!(a.validate().is_ok());
        a.head_dim = 300;
        assert!(a.validate().is_err());
    }
}
