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
