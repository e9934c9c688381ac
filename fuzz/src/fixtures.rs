//! What the fuzz seeds share with the integration tests of the `ceiling` crate
//! (`tests/common/`, a dev-dependency on this crate): the per-run seed of a randomised test,
//! and a tiny byte-level BPE vocabulary as tokenizer.json and as GGUF metadata.

use ceiling_core::model::gguf::{GgufValue, GgufWriter};
use ceiling_core::model::ModelError;

/// A fresh seed per run (nanoseconds of the clock), or the one `var` holds, to repeat a run.
/// The caller prints it.
pub fn seed_from_env(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// GPT-2's map from bytes to the printable characters byte-level BPE works on.
pub fn byte_chars() -> Vec<char> {
    let printable: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut extra = 0;
    (0..256u32)
        .map(|b| {
            if printable.contains(&b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// A byte-level BPE vocabulary: every byte, then the merges' results, then
/// `<|endoftext|>` (the last id).
pub fn bpe_vocab() -> (Vec<String>, Vec<(String, String)>) {
    let mut tokens: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
    let merges: Vec<(String, String)> = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("2", "0")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    for (a, b) in &merges {
        tokens.push(format!("{a}{b}"));
    }
    tokens.push("<|endoftext|>".into());
    (tokens, merges)
}

/// [`bpe_vocab`] as a Hugging Face tokenizer.json, `<|endoftext|>` its special token, with
/// `post_processor` (`null` for none).
pub fn bpe_tokenizer_json(post_processor: serde_json::Value) -> serde_json::Value {
    let (tokens, merges) = bpe_vocab();
    let end = tokens.len() - 1;
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i.into()))
        .collect();
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [{"id": end, "content": "<|endoftext|>", "single_word": false,
            "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
            "use_regex": true},
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
            "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
            "continuing_subword_prefix": null, "end_of_word_suffix": null,
            "fuse_unk": false, "byte_fallback": false, "vocab": vocab, "merges": merges}
    })
}

/// Writes [`bpe_vocab`] into `writer` as llama.cpp's converter writes a byte-level BPE
/// tokenizer (SmolLM2's pre-tokenizer), adding `bos` first to every sequence when given.
pub fn add_bpe_tokenizer(writer: &mut GgufWriter, bos: Option<u32>) -> Result<(), ModelError> {
    let (tokens, merges) = bpe_vocab();
    let strings = |v: Vec<String>| GgufValue::Array(v.into_iter().map(GgufValue::String).collect());
    let types: Vec<GgufValue> = (0..tokens.len())
        .map(|i| GgufValue::I32(if i == tokens.len() - 1 { 3 } else { 1 }))
        .collect();
    let merges: Vec<String> = merges.iter().map(|(a, b)| format!("{a} {b}")).collect();
    writer
        .meta("tokenizer.ggml.model", GgufValue::String("gpt2".into()))?
        .meta("tokenizer.ggml.pre", GgufValue::String("smollm".into()))?
        .meta("tokenizer.ggml.tokens", strings(tokens))?
        .meta("tokenizer.ggml.merges", strings(merges))?
        .meta("tokenizer.ggml.token_type", GgufValue::Array(types))?
        .meta(
            "tokenizer.ggml.add_bos_token",
            GgufValue::Bool(bos.is_some()),
        )?;
    if let Some(id) = bos {
        writer.meta("tokenizer.ggml.bos_token_id", GgufValue::U32(id))?;
    }
    Ok(())
}
