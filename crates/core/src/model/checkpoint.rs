//! Hugging Face checkpoints (config.json + model.safetensors, f32/f16/bf16) of the BERT,
//! GPT-2 and Llama families, mapped onto [`ModelWeights`].

use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

use super::{
    FfnActivation, LayerWeights, Layout, Linear, LmHead, ModelConfig, ModelError, ModelWeights,
    Norm, NormKind, Position,
};

/// Loads `dir/config.json` and `dir/model.safetensors`.
pub fn load_checkpoint(dir: &Path) -> Result<ModelWeights, ModelError> {
    let io = |path: &Path, e: std::io::Error| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(|e| io(&config_path, e))?;
    let st_path = dir.join("model.safetensors");
    if !st_path.exists() && dir.join("model.safetensors.index.json").exists() {
        return Err(ModelError::Unsupported(format!(
            "{} holds a sharded checkpoint; only a single model.safetensors is supported",
            dir.display()
        )));
    }
    let bytes = std::fs::read(&st_path).map_err(|e| io(&st_path, e))?;
    parse_checkpoint(
        &text,
        &config_path.display().to_string(),
        &bytes,
        &st_path.display().to_string(),
    )
}

/// A checkpoint from the text of its config.json and the bytes of its model.safetensors
/// (named `config_name` and `st_name` in messages).
pub fn parse_checkpoint(
    config_text: &str,
    config_name: &str,
    safetensors: &[u8],
    st_name: &str,
) -> Result<ModelWeights, ModelError> {
    let json: Value = serde_json::from_str(config_text).map_err(|e| ModelError::Io {
        path: config_name.to_string(),
        message: format!("not valid JSON: {e}"),
    })?;
    let st = SafeTensors::deserialize(safetensors).map_err(|e| ModelError::Io {
        path: st_name.to_string(),
        message: format!("not a valid safetensors file: {e}"),
    })?;
    let model_type = json.get("model_type").and_then(Value::as_str).unwrap_or("");
    let archs: Vec<&str> = json
        .get("architectures")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let is = |t: &str, arch: &str| model_type == t || archs.iter().any(|a| a.starts_with(arch));
    let weights = if is("bert", "Bert") {
        load_bert(&json, &Tensors::new(&st, &["", "bert."]))?
    } else if is("gpt2", "GPT2") {
        load_gpt2(&json, &Tensors::new(&st, &["", "transformer."]))?
    } else if is("llama", "Llama") {
        load_llama(&json, &Tensors::new(&st, &["model.", ""]))?
    } else {
        return Err(ModelError::Unsupported(format!(
            "unknown architecture (model_type '{model_type}', architectures {archs:?}) in \
             {config_name}: supported are the BERT family (model_type \"bert\"), GPT-2 \
             (\"gpt2\") and Llama (\"llama\"; SmolLM2 is one)"
        )));
    };
    weights.validate()?;
    Ok(weights)
}

fn key_usize(json: &Value, key: &str) -> Result<usize, ModelError> {
    json.get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| ModelError::Config(format!("config.json lacks the integer field '{key}'")))
}

fn key_f64(json: &Value, key: &str, default: f64) -> f64 {
    json.get(key).and_then(Value::as_f64).unwrap_or(default)
}

fn activation(name: &str, key: &str) -> Result<FfnActivation, ModelError> {
    match name {
        "gelu" => Ok(FfnActivation::Gelu),
        "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(FfnActivation::GeluTanh),
        other => Err(ModelError::Unsupported(format!(
            "config.json '{key}' is '{other}': supported are gelu, gelu_new, gelu_pytorch_tanh"
        ))),
    }
}

/// The tensors of one file, looked up under each name prefix the family uses.
struct Tensors<'a> {
    st: &'a SafeTensors<'a>,
    prefixes: &'a [&'a str],
}

impl<'a> Tensors<'a> {
    fn new(st: &'a SafeTensors<'a>, prefixes: &'a [&'a str]) -> Self {
        Self { st, prefixes }
    }

    /// The first of `names` present (alternative spellings), checked against `shape`.
    fn get_any(&self, names: &[&str], shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        for name in names {
            for prefix in self.prefixes {
                let full = format!("{prefix}{name}");
                if let Ok(view) = self.st.tensor(&full) {
                    if view.shape() != shape {
                        return Err(ModelError::Shape {
                            tensor: full,
                            expected: format!("{shape:?}"),
                            got: format!("{:?}", view.shape()),
                        });
                    }
                    return to_f32(&full, view.dtype(), view.data());
                }
            }
        }
        Err(ModelError::Missing(names[0].to_string()))
    }

    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        self.get_any(&[name], shape)
    }

    fn has(&self, name: &str) -> bool {
        self.prefixes
            .iter()
            .any(|p| self.st.tensor(&format!("{p}{name}")).is_ok())
    }

    /// A layer norm stored as weight/bias (or the older gamma/beta).
    fn layer_norm(&self, name: &str, d: usize) -> Result<Norm, ModelError> {
        Ok(Norm {
            gamma: self.get_any(&[&format!("{name}.weight"), &format!("{name}.gamma")], &[d])?,
            beta: Some(self.get_any(&[&format!("{name}.bias"), &format!("{name}.beta")], &[d])?),
        })
    }

    /// A torch Linear: weight [out, in], bias [out].
    fn linear(&self, name: &str, out_dim: usize, in_dim: usize) -> Result<Linear, ModelError> {
        Ok(Linear {
            weight: self.get(&format!("{name}.weight"), &[out_dim, in_dim])?,
            bias: Some(self.get(&format!("{name}.bias"), &[out_dim])?),
            out_dim,
            in_dim,
        })
    }

    /// A Linear without bias (Llama).
    fn linear_no_bias(
        &self,
        name: &str,
        out_dim: usize,
        in_dim: usize,
    ) -> Result<Linear, ModelError> {
        Ok(Linear {
            weight: self.get(&format!("{name}.weight"), &[out_dim, in_dim])?,
            bias: None,
            out_dim,
            in_dim,
        })
    }

    /// A GPT-2 Conv1D: weight [in, out] (transposed to [out, in] here), bias [out].
    fn conv1d(&self, name: &str, in_dim: usize, out_dim: usize) -> Result<Linear, ModelError> {
        let w = self.get(&format!("{name}.weight"), &[in_dim, out_dim])?;
        Ok(Linear {
            weight: transpose(&w, in_dim, out_dim),
            bias: Some(self.get(&format!("{name}.bias"), &[out_dim])?),
            out_dim,
            in_dim,
        })
    }
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

fn to_f32(name: &str, dtype: Dtype, data: &[u8]) -> Result<Vec<f32>, ModelError> {
    let out: Vec<f32> = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(ModelError::Unsupported(format!(
                "tensor '{name}' is stored as {other:?}; supported are F32, F16 and BF16"
            )))
        }
    };
    if out.iter().any(|v| !v.is_finite()) {
        return Err(ModelError::NonFinite(name.to_string()));
    }
    Ok(out)
}

fn load_bert(json: &Value, t: &Tensors) -> Result<ModelWeights, ModelError> {
    let d = key_usize(json, "hidden_size")?;
    let layers = key_usize(json, "num_hidden_layers")?;
    let heads = key_usize(json, "num_attention_heads")?;
    let ff = key_usize(json, "intermediate_size")?;
    let max_positions = key_usize(json, "max_position_embeddings")?;
    let vocab = key_usize(json, "vocab_size")?;
    let act = json
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("gelu");
    if let Some(p) = json.get("position_embedding_type").and_then(Value::as_str) {
        if p != "absolute" {
            return Err(ModelError::Unsupported(format!(
                "config.json position_embedding_type '{p}': only 'absolute' is supported"
            )));
        }
    }
    let config = ModelConfig {
        layers,
        d_model: d,
        heads,
        kv_heads: heads,
        ff_dim: ff,
        norm: NormKind::LayerNorm,
        norm_eps: key_f64(json, "layer_norm_eps", 1e-12),
        activation: activation(act, "hidden_act")?,
        layout: Layout::PostNorm,
        position: Position::Learned { max_positions },
        causal: false,
        vocab,
        bias: true,
    };
    config.validate()?;
    let mut pos = t.get("embeddings.position_embeddings.weight", &[max_positions, d])?;
    // Inputs are one segment (token type 0): its embedding is the same at every position.
    let tt_name = "embeddings.token_type_embeddings.weight";
    if t.has(tt_name) {
        let types = key_usize(json, "type_vocab_size").unwrap_or(2);
        if types == 0 {
            return Err(ModelError::Config(format!(
                "config.json type_vocab_size 0, but {tt_name} is present and inputs are \
                 segment 0: it needs at least 1 row (BERT uses 2)"
            )));
        }
        let tt = t.get(tt_name, &[types, d])?;
        for row in pos.chunks_mut(d) {
            row.iter_mut().zip(&tt[..d]).for_each(|(p, e)| *p += e);
        }
    }
    let layer = |i: usize| -> Result<LayerWeights, ModelError> {
        let p = format!("encoder.layer.{i}.");
        Ok(LayerWeights {
            q: t.linear(&format!("{p}attention.self.query"), d, d)?,
            k: t.linear(&format!("{p}attention.self.key"), d, d)?,
            v: t.linear(&format!("{p}attention.self.value"), d, d)?,
            o: t.linear(&format!("{p}attention.output.dense"), d, d)?,
            attn_norm: t.layer_norm(&format!("{p}attention.output.LayerNorm"), d)?,
            up: t.linear(&format!("{p}intermediate.dense"), ff, d)?,
            gate: None,
            down: t.linear(&format!("{p}output.dense"), d, ff)?,
            ffn_norm: t.layer_norm(&format!("{p}output.LayerNorm"), d)?,
        })
    };
    Ok(ModelWeights {
        token_embedding: Some(t.get("embeddings.word_embeddings.weight", &[vocab, d])?),
        position_embedding: Some(pos),
        embed_norm: Some(t.layer_norm("embeddings.LayerNorm", d)?),
        layers: (0..layers).map(layer).collect::<Result<_, _>>()?,
        final_norm: None,
        // The masked-LM head is not loaded: the encoder's states are what is measured.
        lm_head: LmHead::None,
        config,
    })
}

fn load_gpt2(json: &Value, t: &Tensors) -> Result<ModelWeights, ModelError> {
    let d = key_usize(json, "n_embd")?;
    let layers = key_usize(json, "n_layer")?;
    let heads = key_usize(json, "n_head")?;
    let max_positions = key_usize(json, "n_positions")?;
    let vocab = key_usize(json, "vocab_size")?;
    let ff = json
        .get("n_inner")
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .unwrap_or(4 * d);
    let act = json
        .get("activation_function")
        .and_then(Value::as_str)
        .unwrap_or("gelu_new");
    let config = ModelConfig {
        layers,
        d_model: d,
        heads,
        kv_heads: heads,
        ff_dim: ff,
        norm: NormKind::LayerNorm,
        norm_eps: key_f64(json, "layer_norm_epsilon", 1e-5),
        activation: activation(act, "activation_function")?,
        layout: Layout::PreNorm,
        position: Position::Learned { max_positions },
        causal: true,
        vocab,
        bias: true,
    };
    config.validate()?;
    let layer = |i: usize| -> Result<LayerWeights, ModelError> {
        let p = format!("h.{i}.");
        // c_attn holds q, k and v side by side: after the transpose, in consecutive rows.
        let qkv = t.conv1d(&format!("{p}attn.c_attn"), d, 3 * d)?;
        let bias = qkv.bias.unwrap_or_default();
        let part = |j: usize| Linear {
            weight: qkv.weight[j * d * d..][..d * d].to_vec(),
            bias: Some(bias[j * d..][..d].to_vec()),
            out_dim: d,
            in_dim: d,
        };
        Ok(LayerWeights {
            attn_norm: t.layer_norm(&format!("{p}ln_1"), d)?,
            q: part(0),
            k: part(1),
            v: part(2),
            o: t.conv1d(&format!("{p}attn.c_proj"), d, d)?,
            ffn_norm: t.layer_norm(&format!("{p}ln_2"), d)?,
            up: t.conv1d(&format!("{p}mlp.c_fc"), d, ff)?,
            gate: None,
            down: t.conv1d(&format!("{p}mlp.c_proj"), ff, d)?,
        })
    };
    Ok(ModelWeights {
        token_embedding: Some(t.get("wte.weight", &[vocab, d])?),
        position_embedding: Some(t.get("wpe.weight", &[max_positions, d])?),
        embed_norm: None,
        layers: (0..layers).map(layer).collect::<Result<_, _>>()?,
        final_norm: Some(t.layer_norm("ln_f", d)?),
        lm_head: LmHead::Tied,
        config,
    })
}

fn load_llama(json: &Value, t: &Tensors) -> Result<ModelWeights, ModelError> {
    let d = key_usize(json, "hidden_size")?;
    let layers = key_usize(json, "num_hidden_layers")?;
    let heads = key_usize(json, "num_attention_heads")?;
    let kv_heads = json
        .get("num_key_value_heads")
        .and_then(Value::as_u64)
        .map_or(heads, |v| v as usize);
    let ff = key_usize(json, "intermediate_size")?;
    let vocab = key_usize(json, "vocab_size")?;
    let act = json
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("silu");
    let refuse = |m: String| Err(ModelError::Unsupported(format!("config.json {m}")));
    if act != "silu" {
        return refuse(format!(
            "hidden_act '{act}': Llama models here use silu (SwiGLU)"
        ));
    }
    if json.get("rope_scaling").is_some_and(|v| !v.is_null()) {
        return refuse("sets rope_scaling: only plain rotary positions are supported".into());
    }
    for key in ["attention_bias", "mlp_bias"] {
        if json.get(key).and_then(Value::as_bool) == Some(true) {
            return refuse(format!("sets {key}: Llama layers without biases only"));
        }
    }
    if let Some(hd) = json.get("head_dim").and_then(Value::as_u64) {
        if heads == 0 || hd as usize * heads != d {
            return refuse(format!(
                "head_dim {hd} with {heads} heads does not span hidden_size {d}"
            ));
        }
    }
    let config = ModelConfig {
        ff_dim: ff,
        norm_eps: key_f64(json, "rms_norm_eps", 1e-6),
        position: Position::Rotary {
            base: key_f64(json, "rope_theta", 10000.0),
        },
        ..ModelConfig::llama_like(layers, d, heads, kv_heads, vocab)
    };
    config.validate()?;
    let hd = config.head_dim();
    let rms = |name: String| -> Result<Norm, ModelError> {
        Ok(Norm {
            gamma: t.get(&format!("{name}.weight"), &[d])?,
            beta: None,
        })
    };
    let layer = |i: usize| -> Result<LayerWeights, ModelError> {
        let p = format!("layers.{i}.");
        Ok(LayerWeights {
            attn_norm: rms(format!("{p}input_layernorm"))?,
            q: t.linear_no_bias(&format!("{p}self_attn.q_proj"), heads * hd, d)?,
            k: t.linear_no_bias(&format!("{p}self_attn.k_proj"), kv_heads * hd, d)?,
            v: t.linear_no_bias(&format!("{p}self_attn.v_proj"), kv_heads * hd, d)?,
            o: t.linear_no_bias(&format!("{p}self_attn.o_proj"), d, heads * hd)?,
            ffn_norm: rms(format!("{p}post_attention_layernorm"))?,
            up: t.linear_no_bias(&format!("{p}mlp.up_proj"), ff, d)?,
            gate: Some(t.linear_no_bias(&format!("{p}mlp.gate_proj"), ff, d)?),
            down: t.linear_no_bias(&format!("{p}mlp.down_proj"), d, ff)?,
        })
    };
    // Llama's config defaults to separate output weights; SmolLM2 ties them.
    let tied = json
        .get("tie_word_embeddings")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let lm_head = if tied {
        LmHead::Tied
    } else {
        LmHead::Separate(t.get("lm_head.weight", &[vocab, d])?)
    };
    Ok(ModelWeights {
        token_embedding: Some(t.get("embed_tokens.weight", &[vocab, d])?),
        position_embedding: None,
        embed_norm: None,
        layers: (0..layers).map(layer).collect::<Result<_, _>>()?,
        final_norm: Some(rms("norm".into())?),
        lm_head,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BERT config.json with `type_vocab_size: 0` (and a token type table of no rows) is
    /// refused with the field named; it used to panic slicing row 0 of the empty table.
    #[test]
    fn bert_with_type_vocab_size_0_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "model_type": "bert",
            "hidden_size": 4,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "intermediate_size": 8,
            "max_position_embeddings": 8,
            "vocab_size": 10,
            "type_vocab_size": 0,
        });
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let pos = vec![0u8; 8 * 4 * 4];
        let views = vec![
            (
                "embeddings.position_embeddings.weight",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![8, 4], &pos).unwrap(),
            ),
            (
                "embeddings.token_type_embeddings.weight",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![0, 4], &[]).unwrap(),
            ),
        ];
        std::fs::write(
            dir.path().join("model.safetensors"),
            safetensors::serialize(views, None).unwrap(),
        )
        .unwrap();
        let err = load_checkpoint(dir.path()).unwrap_err().to_string();
        assert!(err.contains("type_vocab_size 0"), "{err}");
    }
}
