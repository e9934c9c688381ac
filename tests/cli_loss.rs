//! `ceiling loss` on a small GGUF Llama written here: the summary's arrays, resuming, and
//! bad input refused before any GPU work.

mod common;

use common::text::llama_gguf_with_tokenizer;
use common::{run_ceiling, stderr_of};

#[test]
fn loss_writes_per_position_curves_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "the theme then the 2026 ".repeat(40)).unwrap();
    let out = dir.path().join("loss");
    let (m, t, o) = (
        model.to_str().unwrap(),
        text.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let args = [
        "loss",
        "--model",
        m,
        "--text",
        t,
        "--context",
        "24",
        "--windows",
        "6",
        "--bootstrap",
        "50",
        "--out",
        o,
    ];
    let first = run_ceiling(&args);
    assert!(first.status.success());
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
    };
    let s = read();
    let positions = s["positions"].as_array().unwrap();
    assert_eq!(positions.len(), 23);
    assert_eq!(positions[0], 1);
    let mean = s["nll_mean"].as_array().unwrap();
    let (lo, hi) = (
        s["nll_lo"].as_array().unwrap(),
        s["nll_hi"].as_array().unwrap(),
    );
    for i in 0..23 {
        let (m, l, h) = (
            mean[i].as_f64().unwrap(),
            lo[i].as_f64().unwrap(),
            hi[i].as_f64().unwrap(),
        );
        assert!(
            m > 0.0 && l <= m && m <= h,
            "position {}: {l} {m} {h}",
            i + 1
        );
    }
    assert_eq!(s["windows"], 6);
    assert_eq!(s["corpus"]["documents_used"], 1);
    assert!(out.join("loss.csv").exists() && out.join("windows/w-000005.json").exists());

    // Resuming scores nothing again and gives the same numbers.
    let w0 = std::fs::read_to_string(out.join("windows/w-000000.json")).unwrap();
    assert!(run_ceiling(&args).status.success());
    assert_eq!(read()["nll_mean"], s["nll_mean"]);
    assert_eq!(
        std::fs::read_to_string(out.join("windows/w-000000.json")).unwrap(),
        w0
    );
    // Another configuration in the same folder is refused.
    let mut other = args;
    other[8] = "7";
    let o2 = run_ceiling(&other);
    assert!(!o2.status.success() && stderr_of(&o2).contains("another configuration"));
    // A damaged window file is named, with the remedy.
    std::fs::write(out.join("windows/w-000003.json"), "{").unwrap();
    let o3 = run_ceiling(&args);
    assert!(!o3.status.success());
    assert!(
        stderr_of(&o3).contains("w-000003.json") && stderr_of(&o3).contains("delete"),
        "{}",
        stderr_of(&o3)
    );
}

#[test]
fn loss_takes_token_windows_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let w = llama_gguf_with_tokenizer(&model);
    let vocab = w.config.vocab;
    let m = model.to_str().unwrap();
    let tokens = dir.path().join("ids.txt");
    let run = |content: &str, extra: &[&str]| {
        std::fs::write(&tokens, content).unwrap();
        let out = dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        let mut args = vec!["loss", "--model", m, "--tokens", tokens.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--bootstrap", "20", "--out", out.to_str().unwrap()]);
        let o = run_ceiling(&args);
        (o, out)
    };
    let (o, out) = run("1 2 3 4 5\n5 4 3 2 1\n", &[]);
    assert!(o.status.success());
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["positions"].as_array().unwrap().len(), 4);
    assert_eq!(s["windows"], 2);

    let (o, out) = run("1 2 3\n1 2\n", &[]);
    assert!(
        !o.status.success() && stderr_of(&o).contains(":2: 2 ids"),
        "{}",
        stderr_of(&o)
    );
    assert!(!out.exists(), "nothing is written for bad input");
    let (o, _) = run(&format!("1 {vocab} 3\n"), &[]);
    assert!(!o.status.success() && stderr_of(&o).contains("outside the model's vocabulary"));
    let (o, _) = run("1 x 3\n", &[]);
    assert!(!o.status.success() && stderr_of(&o).contains("'x' is not a token id"));
    let (o, _) = run("7\n", &[]);
    assert!(!o.status.success() && stderr_of(&o).contains("no next token"));
    let (o, _) = run("1 2 3\n", &["--context", "4"]);
    assert!(!o.status.success() && stderr_of(&o).contains("--context 4"));
}
