//! The command line on real text: `ceiling tokenize`, `hidden --text` and
//! `sweep --preset model --text`, with a small GGUF Llama and corpora written here.

mod common;

use std::path::Path;

use ceiling_core::model::load_model;
use common::text::llama_gguf_with_tokenizer;
use common::{assert_refused, run_ceiling, stderr_of};

/// Three documents of a few hundred tokens, in a folder with a subfolder.
fn corpus(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("corpus");
    std::fs::create_dir_all(root.join("more")).unwrap();
    for (i, name) in ["a.txt", "b.md", "more/c.txt"].iter().enumerate() {
        let text: String = (0..120)
            .map(|k| ["the ", "then ", "theme ", "2026 "][(k * (i + 1)) % 4])
            .collect();
        std::fs::write(root.join(name), text).unwrap();
    }
    root
}

#[test]
fn tokenize_prints_the_ids_and_decodes_them_back() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let text = dir.path().join("t.txt");
    let content = "the theme, then 2026 — café\n";
    std::fs::write(&text, content).unwrap();
    let (m, t) = (model.to_str().unwrap(), text.to_str().unwrap());
    let o = run_ceiling(&["tokenize", "--model", m, "--text", t]);
    assert!(o.status.success());
    let ids: Vec<u32> = String::from_utf8(o.stdout)
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let tok = load_model(&model).unwrap().tokenizer.unwrap();
    assert_eq!(ids, tok.encode(content).unwrap());
    let o = run_ceiling(&["tokenize", "--model", m, "--text", t, "--decode"]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), content);

    std::fs::write(&text, b"caf\xe9").unwrap();
    let o = run_ceiling(&["tokenize", "--model", m, "--text", t]);
    assert!(!o.status.success() && stderr_of(&o).contains("not valid UTF-8"));
}

#[test]
fn hidden_reads_windows_of_text_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let out = dir.path().join("h.safetensors");
    let args = |n: &str| {
        vec![
            "hidden".to_string(),
            "--model".into(),
            model.display().to_string(),
            "--text".into(),
            root.display().to_string(),
            "--n".into(),
            n.into(),
            "--batch".into(),
            "3".into(),
            "--check".into(),
            "--out".into(),
            out.display().to_string(),
        ]
    };
    let run = |n: &str| {
        let a = args(n);
        run_ceiling(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = run("24");
    assert!(o.status.success());
    let err = stderr_of(&o);
    assert!(
        err.contains("mean next-token loss over 69 predictions"),
        "{err}"
    );
    assert!(err.contains("f64 reference forward"), "{err}");
    let bytes = std::fs::read(&out).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().as_ref().unwrap();
    let corpus: serde_json::Value = serde_json::from_str(&meta["corpus"]).unwrap();
    assert_eq!(corpus["files"], 3);
    assert_eq!(corpus["documents_skipped"], 0);
    assert_eq!(corpus["sha256"].as_str().unwrap().len(), 64);
    let loss: f64 = meta["mean_next_token_nll"].parse().unwrap();
    assert!(loss.is_finite() && loss > 0.0);

    // Longer than every document: refused before any GPU work, the old file kept.
    std::fs::remove_file(&out).unwrap();
    let o = run("5000");
    assert_refused(&o, &["no document"]);
    assert!(!out.exists());
}

#[test]
fn sweep_of_a_model_on_text_records_its_corpus_and_refuses_a_changed_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let out = dir.path().join("out");
    let (m, r, o) = (
        model.to_str().unwrap(),
        root.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let sweep = || {
        run_ceiling(&[
            "sweep",
            "--preset",
            "model",
            "--model",
            m,
            "--text",
            r,
            "--lengths",
            "8,16,32",
            "--samples",
            "12",
            "--bootstrap",
            "20",
            "--out",
            o,
        ])
    };
    assert!(sweep().status.success());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["corpus"]["documents"], 3);
    assert!(summary["corpus"]["tokens"].as_u64().unwrap() > 300);
    assert_eq!(summary["points"].as_array().unwrap().len(), 3);
    assert_eq!(
        summary["config"]["text"]["sha256"],
        summary["corpus"]["sha256"]
    );

    // The corpus changes under the run: resuming refuses it.
    std::fs::write(root.join("a.txt"), "the ".repeat(200)).unwrap();
    let again = sweep();
    assert!(!again.status.success());
    assert!(
        stderr_of(&again).contains("another configuration"),
        "{}",
        stderr_of(&again)
    );

    // A model without a tokenizer cannot read text.
    let bare = dir.path().join("bare.gguf");
    let w = load_model(&model).unwrap().weights;
    std::fs::write(
        &bare,
        ceiling_core::model::gguf::write_llama(&w, ceiling_core::model::gguf::GgmlType::F32)
            .unwrap(),
    )
    .unwrap();
    let o2 = dir.path().join("out2");
    let o = run_ceiling(&[
        "sweep",
        "--preset",
        "model",
        "--model",
        bare.to_str().unwrap(),
        "--text",
        r,
        "--lengths",
        "8",
        "--out",
        o2.to_str().unwrap(),
    ]);
    assert_refused(&o, &["tokenizer"]);
}
