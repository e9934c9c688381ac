//! Text corpora: a UTF-8 file, a folder of `.txt`/`.md` files, or a `.jsonl` file with a
//! `text` field per line; tokenised once, then cut into windows of n tokens at seeded
//! random offsets inside single documents.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{TextError, Tokenizer};

/// One document: the text of a file, or of one line of a `.jsonl` file.
#[derive(Clone, Debug)]
pub struct Document {
    /// `path` or `path:line`.
    pub origin: String,
    pub text: String,
}

/// What a run read, for its records: enough to tell two corpora apart and to see what
/// was skipped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusInfo {
    pub path: String,
    pub files: usize,
    pub bytes: u64,
    pub documents: usize,
    /// SHA-256 over every file's path (relative to `path`) and bytes, in path order.
    pub sha256: String,
    /// Tokens over all documents (filled in by [`TokenizedCorpus`]).
    pub tokens: u64,
    /// Documents long enough for the longest window, and those skipped as too short.
    pub documents_used: usize,
    pub documents_skipped: usize,
    pub tokenizer: String,
}

/// Reads a corpus; every document is valid UTF-8 and not empty.
pub fn read_corpus(path: &Path) -> Result<(Vec<Document>, CorpusInfo), TextError> {
    let meta = std::fs::metadata(path).map_err(|e| TextError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    if meta.is_dir() {
        collect_text_files(path, &mut files)?;
        files.sort();
        if files.is_empty() {
            return Err(TextError::Corpus(format!(
                "{} holds no .txt or .md files (searched recursively): point --text at a \
                 folder of text files, a UTF-8 file or a .jsonl file",
                path.display()
            )));
        }
    } else {
        files.push(path.to_path_buf());
    }
    let mut hash = Sha256::new();
    let mut docs = Vec::new();
    let mut bytes = 0u64;
    for file in &files {
        let raw = std::fs::read(file).map_err(|e| TextError::Io {
            path: file.display().to_string(),
            message: e.to_string(),
        })?;
        let rel = file.strip_prefix(path).unwrap_or(file);
        hash.update(rel.to_string_lossy().as_bytes());
        hash.update([0u8]);
        hash.update((raw.len() as u64).to_le_bytes());
        hash.update(&raw);
        bytes += raw.len() as u64;
        let is_jsonl = file.extension().is_some_and(|x| x == "jsonl");
        docs.extend(documents_of(raw, &file.display().to_string(), is_jsonl)?);
    }
    if docs.is_empty() {
        return Err(TextError::Corpus(format!(
            "{} holds no text (every document is empty)",
            path.display()
        )));
    }
    let info = CorpusInfo {
        path: path.display().to_string(),
        files: files.len(),
        bytes,
        documents: docs.len(),
        sha256: format!("{:x}", hash.finalize()),
        tokens: 0,
        documents_used: 0,
        documents_skipped: 0,
        tokenizer: String::new(),
    };
    Ok((docs, info))
}

/// The documents of one file's bytes, named `origin` in messages: the whole text, or with
/// `jsonl` the `text` field of each line. Empty documents are left out.
pub fn documents_of(raw: Vec<u8>, origin: &str, jsonl: bool) -> Result<Vec<Document>, TextError> {
    let text = String::from_utf8(raw).map_err(|e| {
        TextError::Corpus(format!(
            "{origin} is not valid UTF-8 (first bad byte at offset {}): convert it, e.g. \
             `iconv -f latin1 -t utf-8`, or leave it out",
            e.utf8_error().valid_up_to()
        ))
    })?;
    let mut docs = Vec::new();
    if jsonl {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let origin = format!("{origin}:{}", i + 1);
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|e| TextError::Corpus(format!("{origin}: not a JSON object: {e}")))?;
            let text = value.get("text").and_then(|t| t.as_str()).ok_or_else(|| {
                TextError::Corpus(format!(
                    "{origin}: no string field \"text\" (each line of a .jsonl corpus is an \
                     object with the document in \"text\")"
                ))
            })?;
            if !text.trim().is_empty() {
                docs.push(Document {
                    origin,
                    text: text.to_string(),
                });
            }
        }
    } else if !text.trim().is_empty() {
        docs.push(Document {
            origin: origin.to_string(),
            text,
        });
    }
    Ok(docs)
}

fn collect_text_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TextError> {
    let entries = std::fs::read_dir(dir).map_err(|e| TextError::Io {
        path: dir.display().to_string(),
        message: e.to_string(),
    })?;
    for entry in entries {
        let path = entry
            .map_err(|e| TextError::Io {
                path: dir.display().to_string(),
                message: e.to_string(),
            })?
            .path();
        if path.is_dir() {
            collect_text_files(&path, out)?;
        } else if path
            .extension()
            .is_some_and(|x| x == "txt" || x == "md" || x == "jsonl")
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A corpus as token ids, one list per document, ready to cut windows from.
#[derive(Clone, Debug)]
pub struct TokenizedCorpus {
    pub documents: Vec<Vec<u32>>,
    pub origins: Vec<String>,
    /// Put before each window (the tokenizer's BOS or CLS).
    pub prefix: Vec<u32>,
    pub info: CorpusInfo,
}

impl TokenizedCorpus {
    /// Reads and tokenises `path`.
    pub fn load(path: &Path, tokenizer: &Tokenizer) -> Result<Self, TextError> {
        let (docs, mut info) = read_corpus(path)?;
        let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
        let documents = tokenizer.encode_plain_batch(&texts)?;
        info.tokens = documents.iter().map(|d| d.len() as u64).sum();
        info.tokenizer = tokenizer.source().to_string();
        Ok(Self {
            documents,
            origins: docs.into_iter().map(|d| d.origin).collect(),
            prefix: tokenizer.prefix().to_vec(),
            info,
        })
    }

    /// Checks that windows of `n` tokens (prefix included) can be cut, and records which
    /// documents are long enough. Call before any GPU work.
    pub fn prepare(&mut self, n: usize) -> Result<(), TextError> {
        let body = self.body_len(n)?;
        let used = self.documents.iter().filter(|d| d.len() >= body).count();
        self.info.documents_used = used;
        self.info.documents_skipped = self.documents.len() - used;
        if used == 0 {
            let longest = self.documents.iter().map(Vec::len).max().unwrap_or(0);
            return Err(TextError::Corpus(format!(
                "no document of {} is {body} tokens long (needed for windows of {n} tokens; \
                 the longest has {longest}): use shorter contexts or longer documents (a \
                 folder of files joins nothing: each file is one document)",
                self.info.path
            )));
        }
        Ok(())
    }

    fn body_len(&self, n: usize) -> Result<usize, TextError> {
        if n <= self.prefix.len() {
            return Err(TextError::Corpus(format!(
                "windows of {n} tokens leave no room for text after the {} special token(s) \
                 the model puts first",
                self.prefix.len()
            )));
        }
        Ok(n - self.prefix.len())
    }

    /// `count` windows of `n` tokens [count * n], each the prefix and then `n - prefix`
    /// consecutive tokens of one document. Starts are uniform over every position where a
    /// window fits (longer documents give more windows), drawn from `seed`.
    pub fn windows(&self, n: usize, count: usize, seed: u64) -> Result<Vec<u32>, TextError> {
        let body = self.body_len(n)?;
        // Cumulative count of window starts per document.
        let mut ends = Vec::with_capacity(self.documents.len());
        let mut total = 0u64;
        for d in &self.documents {
            total += (d.len() + 1).saturating_sub(body) as u64;
            ends.push(total);
        }
        if total == 0 {
            return Err(TextError::Corpus(format!(
                "no document of {} is {body} tokens long",
                self.info.path
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::with_capacity(count * n);
        for _ in 0..count {
            let pick = rng.random_range(0..total);
            let doc = ends.partition_point(|&e| e <= pick);
            let start = (pick - if doc == 0 { 0 } else { ends[doc - 1] }) as usize;
            out.extend_from_slice(&self.prefix);
            out.extend_from_slice(&self.documents[doc][start..start + body]);
        }
        Ok(out)
    }
}
