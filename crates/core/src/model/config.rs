//! The shape of a transformer: enough to build random models and to check checkpoints.

use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::kernel::Activation;

/// Normalisation used by every norm of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    LayerNorm,
    RmsNorm,
}

/// Feed-forward non-linearity. SwiGLU has a gate and an up projection: silu(x Wg) * (x Wu).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FfnActivation {
    Gelu,
    GeluTanh,
    SwiGlu,
}

impl FfnActivation {
    /// The activation applied to the first projection (the gate for SwiGLU).
    pub fn kernel_activation(self) -> Activation {
        match self {
            FfnActivation::Gelu => Activation::Gelu,
            FfnActivation::GeluTanh => Activation::GeluTanh,
            FfnActivation::SwiGlu => Activation::Silu,
        }
    }
}

/// Where the norms sit. Pre-norm (GPT-2, Llama): x + f(norm(x)), with a final norm.
/// Post-norm (BERT): norm(x + f(x)), with a norm after the embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    PreNorm,
    PostNorm,
}

/// How positions enter the model.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Position {
    /// A learned embedding per position, added to the input.
    Learned {
        max_positions: usize,
    },
    /// Rotary embeddings (NeoX rotate-half) on q and k over the whole head.
    Rotary {
        base: f64,
    },
    None,
}

/// A transformer's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub layers: usize,
    pub d_model: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ff_dim: usize,
    pub norm: NormKind,
    pub norm_eps: f64,
    pub activation: FfnActivation,
    pub layout: Layout,
    pub position: Position,
    pub causal: bool,
    /// Token vocabulary; 0 for models fed vectors [batch, n, d_model] directly.
    pub vocab: usize,
    /// Whether linear layers have biases (GPT-2, BERT) or not (Llama).
    #[serde(default = "yes")]
    pub bias: bool,
}

fn yes() -> bool {
    true
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.heads.max(1)
    }

    /// Refuses configs the forward pass cannot run, naming the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        for (name, v) in [
            ("layers", self.layers),
            ("d_model", self.d_model),
            ("heads", self.heads),
            ("kv_heads", self.kv_heads),
            ("ff_dim", self.ff_dim),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        if !self.d_model.is_multiple_of(self.heads) {
            return bad(format!(
                "d_model {} is not a multiple of heads {}",
                self.d_model, self.heads
            ));
        }
        if !self.heads.is_multiple_of(self.kv_heads) {
            return bad(format!(
                "heads {} is not a multiple of kv_heads {}",
                self.heads, self.kv_heads
            ));
        }
        if self.head_dim() > crate::kernel::AttentionShape::MAX_HEAD_DIM {
            return bad(format!("head_dim {} exceeds 256", self.head_dim()));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps >= 0.0) {
            return bad(format!(
                "norm_eps must be finite and >= 0, got {}",
                self.norm_eps
            ));
        }
        match self.position {
            Position::Learned { max_positions: 0 } => {
                return bad("max_positions must be at least 1".into())
            }
            Position::Rotary { base } if !(base.is_finite() && base > 1.0) => {
                return bad(format!("rotary base must be finite and > 1, got {base}"))
            }
            Position::Rotary { .. } if !self.head_dim().is_multiple_of(2) => {
                return bad(format!(
                    "rotary embeddings need an even head_dim, got {}",
                    self.head_dim()
                ))
            }
            _ => {}
        }
        // Every tensor's size must be representable (and the whole model's in bytes).
        self.weight_bytes()?;
        Ok(())
    }

    /// Elements of every weight tensor of this config (a separate LM head not counted), in
    /// checked 64-bit arithmetic: a tensor whose size overflows is refused, named, with the
    /// fields that make it.
    pub fn weight_count(&self) -> Result<u64, ModelError> {
        let d = self.d_model as u64;
        let hd = self.head_dim() as u64;
        let (heads, kv, ff) = (self.heads as u64, self.kv_heads as u64, self.ff_dim as u64);
        let overflow = |tensor: &str, fields: String| {
            ModelError::Config(format!(
                "{tensor} [{fields}] has more elements than 64-bit sizes hold: make it smaller"
            ))
        };
        let bias = self.bias as u64;
        let norm = if self.norm == NormKind::LayerNorm {
            2
        } else {
            1
        };
        let lin = |name: &str, out: Option<u64>, inp: u64, fields: String| {
            out.and_then(|o| crate::memory::product(&[o, inp])?.checked_add(bias * o))
                .ok_or_else(|| overflow(name, fields))
        };
        let q = lin(
            "q",
            heads.checked_mul(hd),
            d,
            format!("d_model {d} x d_model {d}"),
        )?;
        let k = lin(
            "k",
            kv.checked_mul(hd),
            d,
            format!("kv_heads {kv} x head_dim {hd} x d_model {d}"),
        )?;
        let ffn = lin("up", Some(ff), d, format!("ff_dim {ff} x d_model {d}"))?;
        let down = crate::memory::product(&[d, ff])
            .and_then(|w| w.checked_add(bias * d))
            .ok_or_else(|| overflow("down", format!("d_model {d} x ff_dim {ff}")))?;
        let gates = if self.activation == FfnActivation::SwiGlu {
            2
        } else {
            1
        };
        let layer = [
            Some(2 * norm * d),
            q.checked_mul(2),
            k.checked_mul(2),
            ffn.checked_mul(gates),
            Some(down),
        ]
        .into_iter()
        .try_fold(0u64, |acc, t| acc.checked_add(t?))
        .ok_or_else(|| overflow("one layer", format!("d_model {d}, ff_dim {ff}")))?;
        let layers = layer
            .checked_mul(self.layers as u64)
            .ok_or_else(|| overflow("the layers", format!("layers {} x {layer}", self.layers)))?;
        let tokens = crate::memory::product(&[self.vocab as u64, d]).ok_or_else(|| {
            overflow(
                "the token embedding",
                format!("vocab {} x d_model {d}", self.vocab),
            )
        })?;
        let positions = match self.position {
            Position::Learned { max_positions } => {
                crate::memory::product(&[max_positions as u64, d]).ok_or_else(|| {
                    overflow(
                        "the position embedding",
                        format!("max_positions {max_positions} x d_model {d}"),
                    )
                })?
            }
            _ => 0,
        };
        [layers, tokens, positions, norm * d]
            .into_iter()
            .try_fold(0u64, |acc, t| acc.checked_add(t))
            .ok_or_else(|| {
                overflow(
                    "the whole model",
                    format!("{layers} + {tokens} + {positions}"),
                )
            })
    }

    /// Bytes of this config's weights as f32, checked (see [`Self::weight_count`]).
    pub fn weight_bytes(&self) -> Result<u64, ModelError> {
        self.weight_count()?
            .checked_mul(4)
            .ok_or_else(|| ModelError::Config("the weights need more than 2^64 bytes".into()))
    }

    /// Longest sequence the model takes (learned positions bound it).
    pub fn max_len(&self) -> Option<usize> {
        match self.position {
            Position::Learned { max_positions } => Some(max_positions),
            _ => None,
        }
    }

    /// A GPT-2-like pre-norm model: layer norm, GELU (tanh), learned positions, causal.
    pub fn gpt2_like(layers: usize, d_model: usize, heads: usize, vocab: usize) -> Self {
        Self {
            layers,
            d_model,
            heads,
            kv_heads: heads,
            ff_dim: d_model.saturating_mul(4),
            norm: NormKind::LayerNorm,
            norm_eps: 1e-5,
            activation: FfnActivation::GeluTanh,
            layout: Layout::PreNorm,
            position: Position::Learned {
                max_positions: 1024,
            },
            causal: true,
            vocab,
            bias: true,
        }
    }

    /// A Llama-like pre-norm model: RMS norm, SwiGLU, rotary, grouped-query attention, causal.
    pub fn llama_like(
        layers: usize,
        d_model: usize,
        heads: usize,
        kv_heads: usize,
        vocab: usize,
    ) -> Self {
        Self {
            layers,
            d_model,
            heads,
            kv_heads,
            // Saturating: a checkpoint header may claim any width; validation refuses it later.
            ff_dim: d_model.saturating_mul(8) / 3,
            norm: NormKind::RmsNorm,
            norm_eps: 1e-6,
            activation: FfnActivation::SwiGlu,
            layout: Layout::PreNorm,
            position: Position::Rotary { base: 10000.0 },
            causal: true,
            vocab,
            bias: false,
        }
    }

    /// A BERT-like post-norm bidirectional model: layer norm, exact GELU, learned positions.
    pub fn bert_like(layers: usize, d_model: usize, heads: usize, vocab: usize) -> Self {
        Self {
            layers,
            d_model,
            heads,
            kv_heads: heads,
            ff_dim: d_model.saturating_mul(4),
            norm: NormKind::LayerNorm,
            norm_eps: 1e-12,
            activation: FfnActivation::Gelu,
            layout: Layout::PostNorm,
            position: Position::Learned { max_positions: 512 },
            causal: false,
            vocab,
            bias: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama-2-7B's shape: 32 layers, width 4096, SwiGLU 11008, vocab 32000.
    pub(crate) fn llama_7b() -> ModelConfig {
        let mut c = ModelConfig::llama_like(32, 4096, 32, 32, 32000);
        c.ff_dim = 11008;
        c
    }

    #[test]
    fn llama_7b_counts_its_6_7_billion_weights() {
        // 6.74e9 parameters with the LM head; this count ties it to the embedding (-131M).
        let n = llama_7b().weight_count().unwrap();
        assert_eq!(n, 6_738_415_616 - 32000 * 4096);
    }

    #[test]
    fn vocab_2_pow_60_is_refused_by_validate() {
        let c = ModelConfig::gpt2_like(2, 64, 4, 1 << 60);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("vocab 1152921504606846976"), "{err}");
        assert!(err.contains("64-bit"), "{err}");
    }

    #[test]
    fn max_positions_2_pow_61_is_refused_by_validate() {
        let mut c = ModelConfig::gpt2_like(2, 64, 4, 0);
        c.position = Position::Learned {
            max_positions: 1 << 61,
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("max_positions 2305843009213693952"), "{err}");
    }

    #[test]
    fn ff_dim_2_pow_62_is_refused_by_validate() {
        let mut c = ModelConfig::gpt2_like(2, 64, 4, 0);
        c.ff_dim = 1 << 62;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("ff_dim 4611686018427387904"), "{err}");
    }
}
