//! A tiny byte-level BPE vocabulary, as tokenizer.json and as GGUF metadata, and a small
//! Llama that reads it.

use std::path::Path;

use ceiling_core::model::gguf::{self, GgmlType, GgufValue};
use ceiling_core::model::{ModelConfig, ModelWeights};

/// GPT-2's map from bytes to the printable characters byte-level BPE works on.
pub fn byte_chars() -> Vec<char> {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut chars = vec!['\0'; 256];
    let mut extra = 0;
    for b in 0..256u32 {
        if !printable.contains(&b) {
            chars[b as usize] = char::from_u32(256 + extra).unwrap();
            extra += 1;
        } else {
            chars[b as usize] = char::from_u32(b).unwrap();
        }
    }
    printable.clear();
    chars
}

/// A byte-level BPE vocabulary: every byte, then the merges' results.
pub fn bpe_vocab() -> (Vec<String>, Vec<(String, String)>) {
    let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    let merges = vec![
        ("Ġ".to_string(), "t".to_string()),
        ("h".to_string(), "e".to_string()),
        ("Ġt".to_string(), "he".to_string()),
        ("2".to_string(), "0".to_string()),
    ];
    for (a, b) in &merges {
        tokens.push(format!("{a}{b}"));
    }
    tokens.push("<|endoftext|>".into());
    (tokens, merges)
}

pub fn write_bpe_json(path: &Path, extra: &str) {
    let (tokens, merges) = bpe_vocab();
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    let end = tokens.len() - 1;
    let json = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": end, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
            "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
            "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    });
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
    let (tokens, merges) = bpe_vocab();
    let mut c = ModelConfig::llama_like(2, 32, 4, 2, tokens.len());
    c.ff_dim = 64;
    let w = ModelWeights::random(&c, 5).unwrap();
    let strings = |v: Vec<String>| GgufValue::Array(v.into_iter().map(GgufValue::String).collect());
    let types: Vec<GgufValue> = (0..tokens.len())
        .map(|i| GgufValue::I32(if i == tokens.len() - 1 { 3 } else { 1 }))
        .collect();
    let mut writer = gguf::llama_writer(&w, GgmlType::F32).unwrap();
    writer
        .meta("tokenizer.ggml.model", GgufValue::String("gpt2".into()))
        .unwrap()
        .meta("tokenizer.ggml.pre", GgufValue::String("smollm".into()))
        .unwrap()
        .meta("tokenizer.ggml.tokens", strings(tokens))
        .unwrap()
        .meta(
            "tokenizer.ggml.merges",
            strings(merges.iter().map(|(a, b)| format!("{a} {b}")).collect()),
        )
        .unwrap()
        .meta("tokenizer.ggml.token_type", GgufValue::Array(types))
        .unwrap()
        .meta("tokenizer.ggml.add_bos_token", GgufValue::Bool(false))
        .unwrap();
    std::fs::write(path, writer.to_bytes()).unwrap();
    w
}
