//! Real language in: tokenizers and text corpora.

mod corpus;
mod tokenizer;

pub use corpus::{read_corpus, CorpusInfo, Document, TokenizedCorpus};
pub use tokenizer::Tokenizer;

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
