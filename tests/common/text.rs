//! Files of the tiny byte-level BPE vocabulary the fuzz seeds use too
//! (`ceiling_fuzz::fixtures`): its tokenizer.json, and a small Llama GGUF that carries it.

use std::path::Path;

use ceiling_core::model::gguf::{self, GgmlType};
use ceiling_core::model::{ModelConfig, ModelWeights};

use ceiling_fuzz::fixtures::bpe_vocab;

/// [`bpe_vocab`] as tokenizer.json (no post-processor), pretty-printed, with its
/// `"truncation": null` replaced by `extra` when given.
pub fn write_bpe_json(path: &Path, extra: &str) {
    let json = ceiling_fuzz::fixtures::bpe_tokenizer_json(serde_json::Value::Null);
    let mut text = serde_json::to_string_pretty(&json).unwrap();
    if !extra.is_empty() {
        text = text.replacen("\"truncation\": null", extra, 1);
    }
    std::fs::write(path, text).unwrap();
}

pub fn id(token: &str) -> u32 {
    bpe_vocab().0.iter().position(|t| t == token).unwrap() as u32
}

/// A 2-layer Llama over [`bpe_vocab`] as a GGUF file with its tokenizer, as llama.cpp's
/// converter writes one (SmolLM2's layout: byte-level BPE, no BOS).
pub fn llama_gguf_with_tokenizer(path: &Path) -> ModelWeights {
    let mut c = ModelConfig::llama_like(2, 32, 4, 2, bpe_vocab().0.len());
    c.ff_dim = 64;
    let w = ModelWeights::random(&c, 5).unwrap();
    let mut writer = gguf::llama_writer(&w, GgmlType::F32).unwrap();
    ceiling_fuzz::fixtures::add_bpe_tokenizer(&mut writer, None).unwrap();
    std::fs::write(path, writer.to_bytes()).unwrap();
    w
}

/// A 1-layer GPT-2 over [`bpe_vocab`] with `positions` learned positions, as a Hugging Face
/// directory (config.json, model.safetensors) with the vocabulary's tokenizer.json: a token
/// model with a tokenizer whose context has a limit. `normalizer` replaces the tokenizer's
/// `"normalizer": null` when given.
pub fn gpt2_dir_with_tokenizer(dir: &Path, positions: usize, normalizer: Option<&str>) {
    use ceiling_core::model::Position;
    use safetensors::tensor::TensorView;
    let vocab = bpe_vocab().0.len();
    let mut c = ModelConfig::gpt2_like(1, 16, 2, vocab);
    c.position = Position::Learned {
        max_positions: positions,
    };
    let w = ModelWeights::random(&c, 9).unwrap();
    let (d, ff) = (c.d_model, c.ff_dim);
    // Conv1D weights are stored [in, out]: the transpose of the model's [out, in].
    let t = |x: &[f32], rows: usize, cols: usize| -> Vec<f32> {
        let mut out = vec![0.0; x.len()];
        for r in 0..rows {
            for k in 0..cols {
                out[k * rows + r] = x[r * cols + k];
            }
        }
        out
    };
    let mut e: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        (
            "transformer.wte.weight".into(),
            vec![vocab, d],
            w.token_embedding.clone().unwrap(),
        ),
        (
            "transformer.wpe.weight".into(),
            vec![positions, d],
            w.position_embedding.clone().unwrap(),
        ),
    ];
    let f = w.final_norm.as_ref().unwrap();
    e.push(("transformer.ln_f.weight".into(), vec![d], f.gamma.clone()));
    e.push((
        "transformer.ln_f.bias".into(),
        vec![d],
        f.beta.clone().unwrap(),
    ));
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("transformer.h.{i}.");
        let qkv: Vec<f32> = [&l.q, &l.k, &l.v]
            .iter()
            .flat_map(|x| x.weight.clone())
            .collect();
        let qkv_b: Vec<f32> = [&l.q, &l.k, &l.v]
            .iter()
            .flat_map(|x| x.bias.clone().unwrap())
            .collect();
        e.push((
            format!("{p}attn.c_attn.weight"),
            vec![d, 3 * d],
            t(&qkv, 3 * d, d),
        ));
        e.push((format!("{p}attn.c_attn.bias"), vec![3 * d], qkv_b));
        for (name, lin, o, k) in [
            ("attn.c_proj", &l.o, d, d),
            ("mlp.c_fc", &l.up, ff, d),
            ("mlp.c_proj", &l.down, d, ff),
        ] {
            e.push((
                format!("{p}{name}.weight"),
                vec![k, o],
                t(&lin.weight, o, k),
            ));
            e.push((
                format!("{p}{name}.bias"),
                vec![o],
                lin.bias.clone().unwrap(),
            ));
        }
        for (name, n) in [("ln_1", &l.attn_norm), ("ln_2", &l.ffn_norm)] {
            e.push((format!("{p}{name}.weight"), vec![d], n.gamma.clone()));
            e.push((format!("{p}{name}.bias"), vec![d], n.beta.clone().unwrap()));
        }
    }
    let config = serde_json::json!({
        "model_type": "gpt2", "n_embd": d, "n_layer": 1, "n_head": 2,
        "n_positions": positions, "vocab_size": vocab, "layer_norm_epsilon": 1e-5,
        "activation_function": "gelu_new"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = e
        .into_iter()
        .map(|(name, shape, data)| {
            assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
            let b = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, b)
        })
        .collect();
    let views: Vec<(String, TensorView)> = bytes
        .iter()
        .map(|(name, shape, b)| {
            (
                name.clone(),
                TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(
        dir.join("model.safetensors"),
        safetensors::serialize(views, None).unwrap(),
    )
    .unwrap();
    let json = dir.join("tokenizer.json");
    write_bpe_json(&json, "");
    if let Some(norm) = normalizer {
        let text = std::fs::read_to_string(&json).unwrap();
        let changed = text.replacen("\"normalizer\": null", norm, 1);
        assert_ne!(changed, text, "the tokenizer.json has a normalizer slot");
        std::fs::write(&json, changed).unwrap();
    }
}
