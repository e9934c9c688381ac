//! Tokenizers through the Hugging Face `tokenizers` crate: from a checkpoint's `tokenizer.json`
//! or built in memory from a GGUF file's `tokenizer.ggml.*` metadata. Never hand-written BPE.

use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::AddedToken;

use super::TextError;
use crate::model::gguf::{GgufFile, GgufValue};

/// A model's tokenizer, and the special tokens it puts before a text (BOS, BERT's CLS).
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Added before every window of a corpus: the tokens the model's tokenizer puts first.
    prefix: Vec<u32>,
    /// Whether `inner`'s own post-processor adds the specials (tokenizer.json); a GGUF
    /// tokenizer has none, and `encode` prepends `prefix` itself.
    post_processor_adds: bool,
    source: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({}, prefix {:?})", self.source, self.prefix)
    }
}

fn err(source: &str, e: impl std::fmt::Display) -> TextError {
    TextError::Tokenizer {
        origin: source.to_string(),
        message: e.to_string(),
    }
}

impl Tokenizer {
    /// From a `tokenizer.json`. Truncation and padding are switched off: some checkpoints
    /// (all-MiniLM-L6-v2) turn both on at 128, which would silently cut long texts.
    pub fn from_json_file(path: &Path) -> Result<Self, TextError> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| TextError::Io {
            path: source.clone(),
            message: e.to_string(),
        })?;
        Self::from_json(&text, &source)
    }

    /// From the text of a `tokenizer.json`, named `source` in messages.
    pub fn from_json(text: &str, source: &str) -> Result<Self, TextError> {
        let source = source.to_string();
        // The tokenizers crate panics on some malformed files (found by fuzzing): on a syntax
        // error inside "decoder" (an `expect` in its deserializer), so the syntax is checked
        // first and the tokenizer built from the parsed value; and on a template that names
        // a special token it does not define (an index on first use), which the encodings
        // below reach. Any panic of it while building is an error naming the file.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| err(&source, format!("not valid JSON: {e}")))?;
        let build = std::panic::AssertUnwindSafe(|| Self::from_value(value, &source));
        // The panic is the crate's, not a bug here: no "thread panicked" line for it (and no
        // aborting hook, e.g. a fuzzer's), only the error below.
        static HOOK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let guard = HOOK.lock().unwrap_or_else(|e| e.into_inner());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let built = std::panic::catch_unwind(build);
        std::panic::set_hook(hook);
        drop(guard);
        built.unwrap_or_else(|_| {
            Err(err(
                &source,
                "not a tokenizer.json the tokenizers crate can use (it failed on this file)",
            ))
        })
    }

    fn from_value(value: serde_json::Value, source: &str) -> Result<Self, TextError> {
        let source = source.to_string();
        let mut inner: tokenizers::Tokenizer =
            serde_json::from_value(value).map_err(|e| err(&source, e))?;
        inner
            .with_truncation(None)
            .map_err(|e| err(&source, e))?
            .with_padding(None);
        // The specials the post-processor puts before a text: what it adds in front of "a"
        // beyond the plain encoding.
        let plain = inner.encode("a", false).map_err(|e| err(&source, e))?;
        let full = inner.encode("a", true).map_err(|e| err(&source, e))?;
        let (plain, full) = (plain.get_ids(), full.get_ids());
        let prefix = full
            .windows(plain.len().max(1))
            .position(|w| w == plain)
            .map(|at| full[..at].to_vec())
            .unwrap_or_default();
        Ok(Self {
            inner,
            prefix,
            post_processor_adds: true,
            source,
        })
    }

    /// From a GGUF file's metadata: byte-level BPE (`tokenizer.ggml.model` "gpt2") with its
    /// tokens, merges and token types, the pre-tokenizer llama.cpp uses for
    /// `tokenizer.ggml.pre`, and BOS when `tokenizer.ggml.add_bos_token` asks for it.
    pub fn from_gguf(file: &GgufFile, source: &str) -> Result<Self, TextError> {
        let e = |m: String| err(source, m);
        let string = |key: &str| file.get(key).and_then(GgufValue::as_str);
        let model = string("tokenizer.ggml.model")
            .ok_or_else(|| e("no tokenizer.ggml.model in the metadata".into()))?;
        if model != "gpt2" {
            return Err(e(format!(
                "tokenizer.ggml.model '{model}': only byte-level BPE ('gpt2') is supported"
            )));
        }
        let strings = |key: &str| -> Result<Vec<String>, TextError> {
            file.get(key)
                .and_then(GgufValue::as_array)
                .ok_or_else(|| e(format!("no array {key} in the metadata")))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| e(format!("{key} holds a non-string")))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| e(format!("merge '{m}' is not two tokens")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let types: Vec<u64> = match file.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .as_array()
                .ok_or_else(|| e("tokenizer.ggml.token_type is not an array".into()))?
                .iter()
                .map(|t| t.as_u64().unwrap_or(1))
                .collect(),
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(e(format!(
                "{} token types for {} tokens",
                types.len(),
                tokens.len()
            )));
        }
        let vocab: tokenizers::models::bpe::Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|x| e(x.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let byte_level = ByteLevel::new(false, true, true);
        let pre: PreTokenizerWrapper = match string("tokenizer.ggml.pre").unwrap_or("default") {
            // llama.cpp splits every digit before the GPT-2 regex for these.
            "smollm" | "starcoder" | "refact" | "codeshell" => {
                Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            "default" | "gpt2" | "gpt-2" => byte_level.into(),
            other => {
                return Err(e(format!(
                    "tokenizer.ggml.pre '{other}' is not supported: supported are default, \
                     gpt2, smollm, starcoder, refact, codeshell"
                )))
            }
        };
        inner.with_pre_tokenizer(Some(pre));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        // Control tokens (type 3) are matched whole in text, as llama.cpp does.
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|x| e(x.to_string()))?;
        let add_bos = file
            .get("tokenizer.ggml.add_bos_token")
            .map(|v| matches!(v, GgufValue::Bool(true)))
            .unwrap_or(false);
        let bos = file
            .get("tokenizer.ggml.bos_token_id")
            .and_then(GgufValue::as_u64);
        let prefix = match (add_bos, bos) {
            (true, Some(id)) if (id as usize) < tokens.len() => vec![id as u32],
            (true, _) => return Err(e(
                "add_bos_token is set but tokenizer.ggml.bos_token_id is missing or out of range"
                    .into(),
            )),
            _ => Vec::new(),
        };
        Ok(Self {
            inner,
            prefix,
            post_processor_adds: false,
            source: source.to_string(),
        })
    }

    /// The ids of `text` as the model reads a whole text: with its special tokens (what
    /// Python's `tokenizers` gives for `tok.encode(text).ids`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        if self.post_processor_adds {
            let enc = self
                .inner
                .encode(text, true)
                .map_err(|e| err(&self.source, e))?;
            return Ok(enc.get_ids().to_vec());
        }
        let ids = self.encode_plain(text)?;
        Ok(self.prefix.iter().copied().chain(ids).collect())
    }

    /// The ids of `text` without special tokens (a document of a corpus).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| err(&self.source, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Many documents at once (on the `tokenizers` thread pool), without special tokens.
    pub fn encode_plain_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, TextError> {
        let encs = self
            .inner
            .encode_batch(texts.to_vec(), false)
            .map_err(|e| err(&self.source, e))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Text back from ids, special tokens kept.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TextError> {
        self.inner
            .decode(ids, false)
            .map_err(|e| err(&self.source, e))
    }

    /// Tokens put before each window of a corpus (BOS, CLS), possibly none.
    pub fn prefix(&self) -> &[u32] {
        &self.prefix
    }

    /// The ids of the special tokens (BOS, EOS, chat markers): tokens no text should hold.
    pub fn special_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .chain(self.prefix.iter().copied())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Ids in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Where the tokenizer came from (a path), for run records.
    pub fn source(&self) -> &str {
        &self.source
    }
}
