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
        Ok(())
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
            ff_dim: 4 * d_model,
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
            ff_dim: 8 * d_model / 3,
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
            ff_dim: 4 * d_model,
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
