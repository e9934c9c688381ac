//! Real language in: tokenizers and text corpora.

mod corpus;
mod tokenizer;
mod tokens;

pub use corpus::{documents_of, read_corpus, CorpusInfo, Document, TokenizedCorpus};
pub use tokenizer::Tokenizer;
pub use tokens::{parse_token_json, parse_token_lines, TokenWindows};

/// Why a text or tokenizer could not be used; names the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("tokenizer {origin}: {message}")]
    Tokenizer { origin: String, message: String },
    #[error("{0}")]
    Corpus(String),
}
