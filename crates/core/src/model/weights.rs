//! Model weights in one layout for every source (random, BERT, GPT-2): linear weights are
//! [out, in] (torch Linear), so every projection is x W^T.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{FfnActivation, Layout, ModelConfig, ModelError, NormKind, Position};

/// y = x W^T + b with W [out_dim, in_dim].
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub out_dim: usize,
    pub in_dim: usize,
}

/// gamma (and beta for layer norm) of one norm.
#[derive(Clone, Debug, PartialEq)]
pub struct Norm {
    pub gamma: Vec<f32>,
    pub beta: Option<Vec<f32>>,
}

/// One block. For pre-norm, `attn_norm` / `ffn_norm` precede attention / FFN; for
/// post-norm they follow the residual adds (BERT's attention.output / output LayerNorm).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWeights {
    pub attn_norm: Norm,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Norm,
    /// [ff_dim, d]: the GELU input, or the "up" half of SwiGLU.
    pub up: Linear,
    /// [ff_dim, d]: SwiGLU's gate (silu applied); None otherwise.
    pub gate: Option<Linear>,
    /// [d, ff_dim]
    pub down: Linear,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelWeights {
    pub config: ModelConfig,
    /// [vocab, d]; None for vector inputs.
    pub token_embedding: Option<Vec<f32>>,
    /// [max_positions, d] for learned positions (BERT's token type 0 is folded in).
    pub position_embedding: Option<Vec<f32>>,
    /// Norm after the embeddings (post-norm models).
    pub embed_norm: Option<Norm>,
    pub layers: Vec<LayerWeights>,
    /// Norm after the last block (pre-norm models).
    pub final_norm: Option<Norm>,
    /// How final hidden states become next-token logits.
    pub lm_head: LmHead,
}

/// The output embedding of a language model: logits = final_norm(h) E^T with E [vocab, d].
#[derive(Clone, Debug, PartialEq)]
pub enum LmHead {
    /// No head (encoders, vector-input models).
    None,
    /// E is the token embedding (GPT-2, SmolLM2).
    Tied,
    /// E is its own matrix [vocab, d] (Llama's `lm_head.weight`, GGUF's `output.weight`).
    Separate(Vec<f32>),
}

/// Deterministic uniform numbers from integer arithmetic only, so that a seed gives the same
/// model bit for bit on every machine (no libm calls as Gaussian samplers make).
struct Draw(ChaCha8Rng);

impl Draw {
    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f32 {
        ((self.0.next_u32() >> 8) as f32) * (2.0 / (1u32 << 24) as f32) - 1.0
    }
    /// Zero mean, variance `var` (uniform on [-sqrt(3 var), sqrt(3 var))).
    fn vec(&mut self, len: usize, var: f32) -> Vec<f32> {
        let a = (3.0 * var).sqrt();
        (0..len).map(|_| a * self.unit()).collect()
    }
    fn linear(&mut self, out_dim: usize, in_dim: usize, bias: bool) -> Linear {
        // Variance 1/fan_in keeps activations O(1) through the layers.
        Linear {
            weight: self.vec(out_dim * in_dim, 1.0 / in_dim as f32),
            bias: bias.then(|| self.vec(out_dim, 0.01)),
            out_dim,
            in_dim,
        }
    }
    fn norm(&mut self, d: usize, kind: NormKind) -> Norm {
        Norm {
            gamma: self.vec(d, 0.01).into_iter().map(|g| 1.0 + g).collect(),
            beta: (kind == NormKind::LayerNorm).then(|| self.vec(d, 0.01)),
        }
    }
}

impl ModelWeights {
    /// The output embedding [vocab, d], if the model has a language-model head.
    pub fn output_embedding(&self) -> Option<&[f32]> {
        match &self.lm_head {
            LmHead::None => None,
            LmHead::Tied => self.token_embedding.as_deref(),
            LmHead::Separate(e) => Some(e),
        }
    }

    /// Weights drawn from `seed`: the same seed gives the same model on every machine.
    /// The weights' size is checked against the host memory available before any is drawn.
    pub fn random(config: &ModelConfig, seed: u64) -> Result<Self, ModelError> {
        config.validate()?;
        let count = config.weight_count()?;
        crate::memory::check_host(
            &format!("random weights of this config ({count} weights as f32)"),
            count.checked_mul(4),
            "use fewer layers, or a smaller d_model, ff_dim or vocab",
        )
        .map_err(ModelError::Config)?;
        let c = config;
        let mut r = Draw(ChaCha8Rng::seed_from_u64(seed));
        let d = c.d_model;
        let hd = c.head_dim();
        let token_embedding = (c.vocab > 0).then(|| r.vec(c.vocab * d, 1.0));
        let position_embedding = match c.position {
            Position::Learned { max_positions } => Some(r.vec(max_positions * d, 0.1)),
            _ => None,
        };
        let embed_norm = (c.layout == Layout::PostNorm).then(|| r.norm(d, c.norm));
        let layers = (0..c.layers)
            .map(|_| LayerWeights {
                attn_norm: r.norm(d, c.norm),
                q: r.linear(c.heads * hd, d, c.bias),
                k: r.linear(c.kv_heads * hd, d, c.bias),
                v: r.linear(c.kv_heads * hd, d, c.bias),
                o: r.linear(d, c.heads * hd, c.bias),
                ffn_norm: r.norm(d, c.norm),
                up: r.linear(c.ff_dim, d, c.bias),
                gate: (c.activation == FfnActivation::SwiGlu)
                    .then(|| r.linear(c.ff_dim, d, c.bias)),
                down: r.linear(d, c.ff_dim, c.bias),
            })
            .collect();
        let final_norm = (c.layout == Layout::PreNorm).then(|| r.norm(d, c.norm));
        let w = Self {
            config: c.clone(),
            token_embedding,
            position_embedding,
            embed_norm,
            layers,
            final_norm,
            lm_head: if c.vocab > 0 {
                LmHead::Tied
            } else {
                LmHead::None
            },
        };
        w.validate()?;
        Ok(w)
    }

    /// Applies `f` to every weight (for example to round them as f16 storage would).
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Self {
        let mut w = self.clone();
        w.for_each_tensor_mut(|_, t| t.iter_mut().for_each(|v| *v = f(*v)));
        w
    }

    /// Every tensor with a descriptive name.
    pub fn tensors(&self) -> Vec<(String, &[f32])> {
        let mut out: Vec<(String, &[f32])> = Vec::new();
        fn push_norm<'a>(out: &mut Vec<(String, &'a [f32])>, name: &str, n: &'a Norm) {
            out.push((format!("{name}.gamma"), &n.gamma));
            if let Some(b) = &n.beta {
                out.push((format!("{name}.beta"), b));
            }
        }
        fn push_lin<'a>(out: &mut Vec<(String, &'a [f32])>, name: &str, l: &'a Linear) {
            out.push((format!("{name}.weight"), &l.weight));
            if let Some(b) = &l.bias {
                out.push((format!("{name}.bias"), b));
            }
        }
        if let Some(t) = &self.token_embedding {
            out.push(("token_embedding".into(), t));
        }
        if let Some(t) = &self.position_embedding {
            out.push(("position_embedding".into(), t));
        }
        if let Some(n) = &self.embed_norm {
            push_norm(&mut out, "embed_norm", n);
        }
        for (i, l) in self.layers.iter().enumerate() {
            push_norm(&mut out, &format!("layers.{i}.attn_norm"), &l.attn_norm);
            push_lin(&mut out, &format!("layers.{i}.q"), &l.q);
            push_lin(&mut out, &format!("layers.{i}.k"), &l.k);
            push_lin(&mut out, &format!("layers.{i}.v"), &l.v);
            push_lin(&mut out, &format!("layers.{i}.o"), &l.o);
            push_norm(&mut out, &format!("layers.{i}.ffn_norm"), &l.ffn_norm);
            push_lin(&mut out, &format!("layers.{i}.up"), &l.up);
            if let Some(g) = &l.gate {
                push_lin(&mut out, &format!("layers.{i}.gate"), g);
            }
            push_lin(&mut out, &format!("layers.{i}.down"), &l.down);
        }
        if let Some(n) = &self.final_norm {
            push_norm(&mut out, "final_norm", n);
        }
        if let LmHead::Separate(e) = &self.lm_head {
            out.push(("lm_head".into(), e));
        }
        out
    }

    /// Every tensor with a descriptive name, mutable.
    pub fn for_each_tensor_mut(&mut self, mut f: impl FnMut(&str, &mut Vec<f32>)) {
        fn norm(f: &mut impl FnMut(&str, &mut Vec<f32>), name: &str, n: &mut Norm) {
            f(&format!("{name}.gamma"), &mut n.gamma);
            if let Some(b) = &mut n.beta {
                f(&format!("{name}.beta"), b);
            }
        }
        fn lin(f: &mut impl FnMut(&str, &mut Vec<f32>), name: &str, l: &mut Linear) {
            f(&format!("{name}.weight"), &mut l.weight);
            if let Some(b) = &mut l.bias {
                f(&format!("{name}.bias"), b);
            }
        }
        if let Some(t) = &mut self.token_embedding {
            f("token_embedding", t);
        }
        if let Some(t) = &mut self.position_embedding {
            f("position_embedding", t);
        }
        if let Some(n) = &mut self.embed_norm {
            norm(&mut f, "embed_norm", n);
        }
        for (i, l) in self.layers.iter_mut().enumerate() {
            norm(&mut f, &format!("layers.{i}.attn_norm"), &mut l.attn_norm);
            lin(&mut f, &format!("layers.{i}.q"), &mut l.q);
            lin(&mut f, &format!("layers.{i}.k"), &mut l.k);
            lin(&mut f, &format!("layers.{i}.v"), &mut l.v);
            lin(&mut f, &format!("layers.{i}.o"), &mut l.o);
            norm(&mut f, &format!("layers.{i}.ffn_norm"), &mut l.ffn_norm);
            lin(&mut f, &format!("layers.{i}.up"), &mut l.up);
            if let Some(g) = &mut l.gate {
                lin(&mut f, &format!("layers.{i}.gate"), g);
            }
            lin(&mut f, &format!("layers.{i}.down"), &mut l.down);
        }
        if let Some(n) = &mut self.final_norm {
            norm(&mut f, "final_norm", n);
        }
        if let LmHead::Separate(e) = &mut self.lm_head {
            f("lm_head", e);
        }
    }

    /// Checks that every tensor has the size the config asks for and is finite.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = &self.config;
        c.validate()?;
        let d = c.d_model;
        let hd = c.head_dim();
        let shape = |name: String, want: usize, got: usize| {
            if want == got {
                Ok(())
            } else {
                Err(ModelError::Shape {
                    tensor: name,
                    expected: format!("{want} elements"),
                    got: format!("{got}"),
                })
            }
        };
        let lin = |name: String, l: &Linear, out_dim: usize, in_dim: usize| {
            shape(format!("{name}.weight"), out_dim * in_dim, l.weight.len())?;
            if l.out_dim != out_dim || l.in_dim != in_dim {
                return Err(ModelError::Shape {
                    tensor: format!("{name}.weight"),
                    expected: format!("[{out_dim}, {in_dim}]"),
                    got: format!("[{}, {}]", l.out_dim, l.in_dim),
                });
            }
            match &l.bias {
                Some(b) => shape(format!("{name}.bias"), out_dim, b.len()),
                None => Ok(()),
            }
        };
        let norm = |name: String, n: &Norm| {
            shape(format!("{name}.gamma"), d, n.gamma.len())?;
            match (&n.beta, c.norm) {
                (Some(b), NormKind::LayerNorm) => shape(format!("{name}.beta"), d, b.len()),
                (None, NormKind::LayerNorm) => Err(ModelError::Missing(format!(
                    "{name}.beta (layer norm needs a bias)"
                ))),
                _ => Ok(()),
            }
        };
        match (&self.token_embedding, c.vocab) {
            (Some(t), v) if v > 0 => shape("token_embedding".into(), v * d, t.len())?,
            (None, 0) => {}
            _ => {
                return Err(ModelError::Config(
                    "token_embedding must be present exactly when vocab > 0".into(),
                ))
            }
        }
        match (&self.position_embedding, c.position) {
            (Some(t), Position::Learned { max_positions }) => {
                shape("position_embedding".into(), max_positions * d, t.len())?
            }
            (None, Position::Learned { .. }) => {
                return Err(ModelError::Missing("position_embedding".into()))
            }
            _ => {}
        }
        if let Some(n) = &self.embed_norm {
            norm("embed_norm".into(), n)?;
        }
        if let Some(n) = &self.final_norm {
            norm("final_norm".into(), n)?;
        }
        match &self.lm_head {
            LmHead::Separate(e) => shape("lm_head".into(), c.vocab * d, e.len())?,
            LmHead::Tied if self.token_embedding.is_none() => {
                return Err(ModelError::Config(
                    "a tied output head needs a token embedding".into(),
                ))
            }
            _ => {}
        }
        if self.layers.len() != c.layers {
            return Err(ModelError::Config(format!(
                "config has {} layers but the weights have {}",
                c.layers,
                self.layers.len()
            )));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let p = |s: &str| format!("layers.{i}.{s}");
            norm(p("attn_norm"), &l.attn_norm)?;
            norm(p("ffn_norm"), &l.ffn_norm)?;
            lin(p("q"), &l.q, c.heads * hd, d)?;
            lin(p("k"), &l.k, c.kv_heads * hd, d)?;
            lin(p("v"), &l.v, c.kv_heads * hd, d)?;
            lin(p("o"), &l.o, d, c.heads * hd)?;
            lin(p("up"), &l.up, c.ff_dim, d)?;
            lin(p("down"), &l.down, d, c.ff_dim)?;
            match (&l.gate, c.activation) {
                (Some(g), FfnActivation::SwiGlu) => lin(p("gate"), g, c.ff_dim, d)?,
                (None, FfnActivation::SwiGlu) => return Err(ModelError::Missing(p("gate"))),
                (Some(_), _) => {
                    return Err(ModelError::Config(format!(
                        "{} present but the activation is not SwiGLU",
                        p("gate")
                    )))
                }
                (None, _) => {}
            }
        }
        match self
            .tensors()
            .into_iter()
            .find(|(_, t)| t.iter().any(|v| !v.is_finite()))
        {
            Some((tensor, _)) => Err(ModelError::NonFinite(tensor)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A billion layers of width 64 need about 200 TB: refused with the figure before any
    /// weight is drawn (it used to abort in the allocator).
    #[test]
    fn random_weights_of_layers_1e9_are_refused_before_allocating() {
        let c = ModelConfig::gpt2_like(1_000_000_000, 64, 4, 0);
        let err = ModelWeights::random(&c, 0).unwrap_err().to_string();
        assert!(err.contains("host memory"), "{err}");
        assert!(err.contains("TiB"), "{err}");
        assert!(err.contains("fewer layers"), "{err}");
    }

    #[test]
    fn random_weights_of_d_model_2_pow_40_are_refused() {
        let mut c = ModelConfig::gpt2_like(2, 1 << 40, 1 << 34, 0);
        c.ff_dim = 4;
        let err = ModelWeights::random(&c, 0).unwrap_err().to_string();
        assert!(err.contains("d_model 1099511627776"), "{err}");
    }
}
