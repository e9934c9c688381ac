//! Whole transformers: configs, seeded random weights, Hugging Face checkpoints, and the f64
//! CPU reference of the forward pass that the GPU forward is checked against.

mod checkpoint;
mod config;
pub mod gguf;
pub mod reference;
mod weights;

pub use checkpoint::{load_checkpoint, parse_checkpoint};
pub use config::{FfnActivation, Layout, ModelConfig, NormKind, Position};
pub use weights::{LayerWeights, Linear, LmHead, ModelWeights, Norm};

use std::path::Path;

use crate::text::{TextError, Tokenizer};

/// A model and the tokenizer that came with it.
#[derive(Debug)]
pub struct LoadedModel {
    pub weights: ModelWeights,
    /// From `tokenizer.json` beside a checkpoint, or from a GGUF file's metadata.
    pub tokenizer: Option<Tokenizer>,
    /// What was loaded, for run records: "gguf PATH" or "checkpoint DIR".
    pub source: String,
}

/// Loads a `.gguf` file (llama architecture, with its tokenizer) or a Hugging Face
/// checkpoint directory (with `tokenizer.json` when it has one).
pub fn load_model(path: &Path) -> Result<LoadedModel, ModelError> {
    if is_gguf(path)? {
        let file = gguf::GgufFile::open(path)?;
        return Ok(LoadedModel {
            weights: gguf::load_llama(&file)?,
            tokenizer: gguf_tokenizer(&file, path)?,
            source: format!("gguf {}", path.display()),
        });
    }
    Ok(LoadedModel {
        weights: load_checkpoint(path)?,
        tokenizer: load_tokenizer(path)?,
        source: format!("checkpoint {}", path.display()),
    })
}

/// The tokenizer of a `.gguf` file or of a checkpoint directory, if it has one.
pub fn load_tokenizer(path: &Path) -> Result<Option<Tokenizer>, ModelError> {
    if is_gguf(path)? {
        return gguf_tokenizer(&gguf::GgufFile::open(path)?, path);
    }
    let json = path.join("tokenizer.json");
    Ok(match json.exists() {
        true => Some(Tokenizer::from_json_file(&json)?),
        false => None,
    })
}

/// A file must be a `.gguf`; anything else is taken as a checkpoint directory.
fn is_gguf(path: &Path) -> Result<bool, ModelError> {
    if !path.is_file() {
        return Ok(false);
    }
    if path.extension().is_none_or(|x| x != "gguf") {
        return Err(ModelError::Unsupported(format!(
            "{} is a file but not a .gguf: give a GGUF file or a checkpoint directory \
             (config.json + model.safetensors)",
            path.display()
        )));
    }
    Ok(true)
}

fn gguf_tokenizer(file: &gguf::GgufFile, path: &Path) -> Result<Option<Tokenizer>, ModelError> {
    if file.get("tokenizer.ggml.model").is_none() {
        return Ok(None);
    }
    Ok(Some(Tokenizer::from_gguf(
        file,
        &path.display().to_string(),
    )?))
}

/// Why a model could not be built, loaded or run; names the tensor or field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("invalid model config: {0}")]
    Config(String),
    #[error("tensor '{tensor}' has shape {got} but the config implies {expected}")]
    Shape {
        tensor: String,
        expected: String,
        got: String,
    },
    #[error("tensor '{0}' is missing from the checkpoint")]
    Missing(String),
    #[error("tensor '{0}' contains NaN or infinity")]
    NonFinite(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}: not a valid GGUF file: {message}")]
    Gguf { path: String, message: String },
    #[error("bad forward input: {0}")]
    Input(String),
    #[error(transparent)]
    Text(#[from] TextError),
}

/// A batch of inputs: token ids [batch, n], or vectors [batch, n, d_model] for models
/// without a vocabulary (synthetic processes).
#[derive(Clone, Copy, Debug)]
pub enum ForwardInput<'a> {
    Tokens {
        ids: &'a [u32],
        batch: usize,
        n: usize,
    },
    Vectors {
        x: &'a [f32],
        batch: usize,
        n: usize,
    },
}

impl ForwardInput<'_> {
    /// (batch, n)
    pub fn dims(&self) -> (usize, usize) {
        match *self {
            ForwardInput::Tokens { batch, n, .. } | ForwardInput::Vectors { batch, n, .. } => {
                (batch, n)
            }
        }
    }

    /// Checks the input against the config and the probe positions; returns (batch, n).
    pub fn validate(
        &self,
        config: &ModelConfig,
        probes: &[usize],
    ) -> Result<(usize, usize), ModelError> {
        let (batch, n) = self.dims();
        let bad = |m: String| Err(ModelError::Input(m));
        if batch == 0 || n == 0 {
            return bad(format!(
                "batch {batch} and length {n} must both be at least 1"
            ));
        }
        if let Some(max) = config.max_len() {
            if n > max {
                return bad(format!(
                    "length {n} exceeds the model's {max} learned positions"
                ));
            }
        }
        match *self {
            ForwardInput::Tokens { ids, .. } => {
                if config.vocab == 0 {
                    return bad("the model has no vocabulary (vocab 0): give vectors".into());
                }
                if ids.len() != batch * n {
                    return bad(format!(
                        "{} token ids for batch {batch} x length {n}",
                        ids.len()
                    ));
                }
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= config.vocab) {
                    return bad(format!(
                        "token id {id} is outside the vocabulary of {}",
                        config.vocab
                    ));
                }
            }
            ForwardInput::Vectors { x, .. } => {
                if x.len() != batch * n * config.d_model {
                    return bad(format!(
                        "{} input values for batch {batch} x length {n} x d_model {}",
                        x.len(),
                        config.d_model
                    ));
                }
                if let Some(i) = x.iter().position(|v| !v.is_finite()) {
                    return bad(format!("input value {i} is NaN or infinite"));
                }
            }
        }
        if probes.is_empty() {
            return bad("no probe positions given".into());
        }
        if let Some(&p) = probes.iter().find(|&&p| p >= n) {
            return bad(format!("probe position {p} is outside length {n}"));
        }
        Ok((batch, n))
    }
}

/// Owned inputs of [`ForwardInput`], drawn from a seed.
#[derive(Clone, Debug, PartialEq)]
pub enum RandomInput {
    Tokens(Vec<u32>),
    Vectors(Vec<f32>),
}

impl RandomInput {
    /// Uniform token ids for models with a vocabulary, else vectors uniform in [-1, 1)
    /// (unit-order entries); the same seed gives the same inputs on every machine.
    pub fn draw(config: &ModelConfig, batch: usize, n: usize, seed: u64) -> Self {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        if config.vocab > 0 {
            let v = config.vocab as u64;
            RandomInput::Tokens(
                (0..batch * n)
                    .map(|_| (((rng.next_u64() >> 32) * v) >> 32) as u32)
                    .collect(),
            )
        } else {
            RandomInput::Vectors(
                (0..batch * n * config.d_model)
                    .map(|_| ((rng.next_u32() >> 8) as f32) / (1u32 << 23) as f32 - 1.0)
                    .collect(),
            )
        }
    }

    pub fn as_input(&self, batch: usize, n: usize) -> ForwardInput<'_> {
        match self {
            RandomInput::Tokens(ids) => ForwardInput::Tokens { ids, batch, n },
            RandomInput::Vectors(x) => ForwardInput::Vectors { x, batch, n },
        }
    }
}

/// What the forward pass keeps at the probe positions. Rows are [batch, probes, d_model];
/// attention spread is [batch, heads, probes].
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeStates<T> {
    pub batch: usize,
    pub probes: Vec<usize>,
    pub d_model: usize,
    pub heads: usize,
    /// The input to the first block (after embeddings, positions and, post-norm, the
    /// embedding norm).
    pub embeddings: Vec<T>,
    /// Per layer: the residual stream after the block.
    pub hidden: Vec<Vec<T>>,
    /// Per layer: the attention output (after the output projection) before the residual add.
    pub attn_out: Vec<Vec<T>>,
    /// Pre-norm models: the final norm of the last hidden state.
    pub final_norm: Option<Vec<T>>,
    /// Per layer: 1 / sum_j a_j^2 of each head's attention row.
    pub n_eff: Vec<Vec<T>>,
    /// Per layer: -sum_j a_j ln a_j of each head's attention row.
    pub entropy: Vec<Vec<T>>,
}

#[cfg(test)]
mod tests;
