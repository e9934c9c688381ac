//! Tokenizers and corpora on small files the tests write themselves (no GPU).

mod common;

use std::path::Path;

use ceiling_core::model::load_model;
use ceiling_core::text::{read_corpus, TextError, TokenizedCorpus, Tokenizer};
use common::text::{id, llama_gguf_with_tokenizer, write_bpe_json};

#[test]
fn byte_level_bpe_gives_the_merged_ids_and_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    write_bpe_json(&path, "");
    let tok = Tokenizer::from_json_file(&path).unwrap();
    // "the" has no leading space: t + he; " the" merges all the way to one token.
    assert_eq!(
        tok.encode("the the").unwrap(),
        vec![id("t"), id("he"), id("Ġthe")]
    );
    assert!(tok.prefix().is_empty());
    for text in [
        "the the",
        "Unicode: naïve café — 東京 🙂, tabs\tand\nnewlines  double  spaces",
        " leading and trailing ",
        "<|endoftext|>between<|endoftext|>",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "round trip of {text:?}");
    }
    // The special token is matched whole.
    let ids = tok.encode("a<|endoftext|>b").unwrap();
    assert_eq!(ids[1], id("<|endoftext|>"));
}

#[test]
fn truncation_and_padding_in_the_file_are_switched_off() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    // As all-MiniLM-L6-v2 ships it: truncation at 128 and padding to 128.
    write_bpe_json(
        &path,
        "\"truncation\": {\"direction\": \"Right\", \"max_length\": 128, \"strategy\": \
         \"LongestFirst\", \"stride\": 0}, \"padding\": {\"strategy\": {\"Fixed\": 128}, \
         \"direction\": \"Right\", \"pad_to_multiple_of\": null, \"pad_id\": 0, \
         \"pad_type_id\": 0, \"pad_token\": \"!\"}, \"old_padding\": null",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"old_padding\": null,", "");
    let text = text.replacen("\"padding\": null,", "", 1);
    std::fs::write(&path, text).unwrap();
    let tok = Tokenizer::from_json_file(&path).unwrap();
    let long = "the ".repeat(300);
    // "the" = t + he, then 299 x "Ġthe", then the trailing space: 302 ids, not 128.
    assert_eq!(
        tok.encode(&long).unwrap().len(),
        2 + 299 + 1,
        "cut or padded"
    );
    assert_eq!(tok.encode("the").unwrap().len(), 2, "padded");
}

#[test]
fn a_broken_tokenizer_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{ not json").unwrap();
    let e = Tokenizer::from_json_file(&path).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}

fn tokenizer(dir: &Path) -> Tokenizer {
    let path = dir.join("tokenizer.json");
    write_bpe_json(&path, "");
    Tokenizer::from_json_file(&path).unwrap()
}

#[test]
fn corpora_are_files_folders_or_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::write(root.join("a.txt"), "the the the").unwrap();
    std::fs::write(root.join("sub/b.md"), "# the\nthe").unwrap();
    std::fs::write(root.join("sub/deeper/c.txt"), "the").unwrap();
    std::fs::write(root.join("sub/ignored.bin"), [0xff, 0xfe]).unwrap();
    std::fs::write(root.join("empty.txt"), "  \n").unwrap();
    let (docs, info) = read_corpus(&root).unwrap();
    assert_eq!(info.files, 4);
    assert_eq!(docs.len(), 3, "the empty file is no document");
    assert!(docs[0].origin.ends_with("a.txt"));
    let hash = info.sha256.clone();
    std::fs::write(root.join("a.txt"), "the the thE").unwrap();
    assert_ne!(
        read_corpus(&root).unwrap().1.sha256,
        hash,
        "content is hashed"
    );

    let jsonl = dir.path().join("c.jsonl");
    std::fs::write(
        &jsonl,
        "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"id\": 2}\n",
    )
    .unwrap();
    let (docs, info) = read_corpus(&jsonl).unwrap();
    assert_eq!((docs.len(), info.files), (2, 1));
    assert_eq!(docs[1].text, "two");
    assert!(docs[1].origin.ends_with("c.jsonl:3"));
}

#[test]
fn bad_corpora_are_refused_with_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9").unwrap();
    let e = read_corpus(&bad).unwrap_err().to_string();
    assert!(
        e.contains("latin1.txt") && e.contains("UTF-8") && e.contains("offset 3"),
        "{e}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = read_corpus(&empty).unwrap_err().to_string();
    assert!(e.contains("no .txt"), "{e}");

    let blank = dir.path().join("blank.txt");
    std::fs::write(&blank, "\n\n").unwrap();
    assert!(matches!(read_corpus(&blank), Err(TextError::Corpus(_))));

    let jsonl = dir.path().join("bad.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n").unwrap();
    let e = read_corpus(&jsonl).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl:2") && e.contains("\"text\""), "{e}");

    let missing = dir.path().join("nope.txt");
    let e = read_corpus(&missing).unwrap_err().to_string();
    assert!(e.contains("nope.txt"), "{e}");

    // Too short for the context: refused before any window is cut.
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "the the").unwrap();
    let tok = tokenizer(dir.path());
    let mut c = TokenizedCorpus::load(&short, &tok).unwrap();
    let e = c.prepare(64).unwrap_err().to_string();
    assert!(e.contains("64") && e.contains("longest has 3"), "{e}");
}

#[test]
fn windows_are_seeded_slices_of_single_documents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("corpus");
    std::fs::create_dir(&root).unwrap();
    // Document k is the letter k repeated: a window mixing documents would mix letters.
    for (k, letter) in ["a", "b", "c"].iter().enumerate() {
        std::fs::write(root.join(format!("{k}.txt")), letter.repeat(40 * (k + 1))).unwrap();
    }
    std::fs::write(root.join("tiny.txt"), "x").unwrap();
    let tok = tokenizer(dir.path());
    let mut c = TokenizedCorpus::load(&root, &tok).unwrap();
    c.prepare(8).unwrap();
    assert_eq!(c.info.documents_skipped, 1, "the one-token document");
    assert_eq!(c.info.documents_used, 3);
    assert_eq!(c.info.tokens, 40 + 80 + 120 + 1);
    let w = c.windows(8, 200, 7).unwrap();
    assert_eq!(w.len(), 8 * 200);
    let mut seen = [0usize; 3];
    for window in w.chunks(8) {
        assert!(
            window.iter().all(|&t| t == window[0]),
            "window crosses documents"
        );
        let k = ["a", "b", "c"]
            .iter()
            .position(|l| id(l) == window[0])
            .unwrap();
        seen[k] += 1;
    }
    // Starts are uniform over positions: the 120-token document gives most windows.
    assert!(seen[2] > seen[1] && seen[1] > seen[0], "{seen:?}");
    assert_eq!(c.windows(8, 200, 7).unwrap(), w, "same seed, same windows");
    assert_ne!(c.windows(8, 200, 8).unwrap(), w);
}

#[test]
fn a_gguf_tokenizer_gives_the_ids_of_the_same_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("tokenizer.json");
    write_bpe_json(&json, "");
    let from_json = Tokenizer::from_json_file(&json).unwrap();
    let gguf = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&gguf);
    let m = load_model(&gguf).unwrap();
    let from_gguf = m.tokenizer.as_ref().unwrap();
    assert!(from_gguf.prefix().is_empty());
    let text = "the theme: <|endoftext|> then the end";
    assert_eq!(
        from_gguf.encode(text).unwrap(),
        from_json.encode(text).unwrap()
    );
    assert_eq!(
        from_gguf.decode(&from_gguf.encode(text).unwrap()).unwrap(),
        text
    );
    // The smollm pre-tokenizer splits digits one by one; GPT-2's keeps runs together.
    let digits = from_gguf.encode("2026").unwrap();
    assert_eq!(digits, vec![id("2"), id("0"), id("2"), id("6")]);
    assert_eq!(
        from_json.encode("2026").unwrap(),
        vec![id("20"), id("2"), id("6")]
    );
}

/// A tokenizer.json with one bad byte inside "decoder" (`"use_regex": trqe`, found by the
/// `tokenizer_json` fuzz target) is an error naming the file; the tokenizers crate's
/// deserializer used to panic on it (an `expect` on the decoder's parse).
#[test]
fn a_tokenizer_json_with_a_bad_literal_in_decoder_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    write_bpe_json(&path, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let at = text.find("\"decoder\"").unwrap();
    let bad = format!(
        "{}{}",
        &text[..at],
        text[at..].replacen("\"use_regex\": true", "\"use_regex\": trqe", 1)
    );
    assert_ne!(bad, text);
    std::fs::write(&path, bad).unwrap();
    let e = Tokenizer::from_json_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("not valid JSON"),
        "{e}"
    );
}

/// A tokenizer.json whose post-processor template puts a special token it does not define
/// (found by the `tokenizer_json` fuzz target) is an error naming the file; the tokenizers
/// crate indexed its table on the first encoding and panicked.
#[test]
fn a_tokenizer_json_whose_template_names_an_undefined_special_token_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    write_bpe_json(&path, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let template = r#""post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {}}"#;
    let bad = text.replacen("\"post_processor\": null", template, 1);
    assert_ne!(bad, text);
    std::fs::write(&path, bad).unwrap();
    let e = Tokenizer::from_json_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("tokenizer.json") && e.contains("tokenizers crate"),
        "{e}"
    );
}
