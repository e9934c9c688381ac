//! `ceiling sweep --preset model --probe`: the last token of the window (`last`) or the last
//! token of a fixed suffix after it (`suffix:TEXT`), with the small GGUF Llama and GPT-2 of
//! tests/common/text.rs and a corpus written here.

mod common;

use std::path::{Path, PathBuf};

use ceiling_core::model::{load_model, reference, ForwardInput};
use ceiling_core::stats::Moments;
use ceiling_core::text::TokenizedCorpus;
use common::text::{gpt2_dir_with_tokenizer, llama_gguf_with_tokenizer};
use common::{assert_refused, run_ceiling, stderr_of};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Three documents of a few hundred tokens, each a different mix of words.
fn corpus(dir: &Path) -> PathBuf {
    let root = dir.join("corpus");
    std::fs::create_dir_all(&root).unwrap();
    for (i, name) in ["a.txt", "b.txt", "c.txt"].iter().enumerate() {
        let text: String = (0..120)
            .map(|k| ["the ", "then ", "theme ", "2026 ", "at "][(k * (i + 1) + k / 7) % 5])
            .collect();
        std::fs::write(root.join(name), text).unwrap();
    }
    root
}

const SUFFIX: &str = " then the theme?";

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `ceiling sweep --preset model` of `model`, with `extra` arguments after the common ones.
fn sweep(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sweep",
        "--preset",
        "model",
        "--model",
        model.to_str().unwrap(),
        "--samples",
        "12",
        "--bootstrap",
        "20",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ceiling(&args)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// V of every site at every length of a summary, as (n, site, V).
fn variances(summary: &serde_json::Value) -> Vec<(u64, String, f64)> {
    let mut v = Vec::new();
    for p in summary["points"].as_array().unwrap() {
        for s in p["sites"].as_array().unwrap() {
            v.push((
                p["n"].as_u64().unwrap(),
                s["site"].as_str().unwrap().to_string(),
                s["variance"].as_f64().unwrap_or(f64::NAN),
            ));
        }
    }
    v
}

#[test]
fn a_suffix_sweep_runs_records_its_probe_and_refuses_another_probe() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let out = dir.path().join("out");
    let probe = format!("suffix:{SUFFIX}");
    let text = root.to_str().unwrap();
    let args = ["--text", text, "--lengths", "8,16,32", "--probe", &probe];
    let o = sweep(&model, &out, &args);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let tok = load_model(&model).unwrap().tokenizer.unwrap();
    let ids = tok.encode_plain(SUFFIX).unwrap();
    assert!(
        stderr_of(&o).contains(&format!(
            "probe at the last token of the suffix {SUFFIX:?} ({} tokens {ids:?}",
            ids.len()
        )),
        "{}",
        stderr_of(&o)
    );
    let summary = read_json(&out.join("model/summary.json"));
    // The points are reported at the context length n, not n + s.
    let ns: Vec<u64> = summary["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, vec![8, 16, 32]);
    let v = variances(&summary);
    assert_eq!(v.len(), 3 * 4, "two layers, two sites each, three lengths");
    for (n, site, var) in &v {
        assert!(var.is_finite() && *var > 0.0, "n = {n}, {site}: V = {var}");
    }
    let run = read_json(&out.join("model/run.json"));
    assert_eq!(run["config"]["probe"], probe.as_str());
    assert_eq!(summary["config"]["probe"], probe.as_str());

    // The same command resumes; another probe is refused, naming the field and the option.
    let again = sweep(&model, &out, &args);
    assert!(again.status.success(), "{}", stderr_of(&again));
    let last = ["--text", text, "--lengths", "8,16,32", "--probe", "last"];
    let o = sweep(&model, &out, &last);
    assert_refused(
        &o,
        &[
            "another configuration",
            &format!("probe \"{probe}\" -> \"last\" (--probe)"),
        ],
    );

    // A run.json written before --probe existed reads as `last`: the default resumes it,
    // a suffix is refused.
    let old = dir.path().join("old");
    let o = sweep(&model, &old, &["--text", text, "--lengths", "8"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let header = old.join("model/run.json");
    let mut run = read_json(&header);
    assert_eq!(run["config"]["probe"], "last");
    run["config"].as_object_mut().unwrap().remove("probe");
    std::fs::write(&header, run.to_string()).unwrap();
    let o = sweep(&model, &old, &["--text", text, "--lengths", "8,16"]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let o = sweep(
        &model,
        &old,
        &["--text", text, "--lengths", "8", "--probe", &probe],
    );
    assert_refused(&o, &[&format!("probe \"last\" -> \"{probe}\" (--probe)")]);

    // Random ids as the context (no --text): the suffix follows them.
    let ids = dir.path().join("ids");
    let o = sweep(&model, &ids, &["--lengths", "8,16", "--probe", &probe]);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("model: uniform random ids, probe at"),
        "{}",
        stderr_of(&o)
    );
    let v = variances(&read_json(&ids.join("model/summary.json")));
    assert!(v.iter().all(|(_, _, x)| x.is_finite() && *x > 0.0), "{v:?}");
}

/// The windows a sweep cuts in its first batch: `count` windows of `n` tokens from the seed's
/// `stream`, whose first u64 seeds the corpus draw.
fn drawn_windows(c: &TokenizedCorpus, n: usize, count: usize, seed: u64, stream: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    c.windows(n, count, rng.random()).unwrap()
}

/// The stream of the windows of a causal model's `--probe last` sweep, cut once for every
/// length (`PREFIX_STREAM` in the sweep's run.rs).
const PREFIX_STREAM: u64 = 1 << 48;

/// The trace of the covariance of rows of width d.
fn v_of(rows: &[f64], d: usize) -> f64 {
    let mut mo = Moments::new(d);
    for r in rows.chunks(d) {
        mo.push(r).unwrap();
    }
    mo.trace_variance()
}

/// The sweep's V at n = 8 is that of the hidden states at the suffix's last token of the
/// sweep's own windows, recomputed here with the f64 forward: the windows are those the
/// sweep cuts (its seed's stream for n, one batch of 12), with the suffix's ids appended.
/// The `last` sweep of the same seed matches the states at the last token of its own
/// windows (the prefix stream's: the model is causal), which differ.
#[test]
fn the_suffix_probe_is_the_hidden_state_at_the_suffix_last_token() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let text = root.to_str().unwrap();
    let probe = format!("suffix:{SUFFIX}");
    let (n, samples, seed) = (8usize, 12usize, 3u64);
    let with_suffix = dir.path().join("suffix");
    let o = sweep(
        &model,
        &with_suffix,
        &["--text", text, "--lengths", "8", "--probe", &probe],
    );
    assert!(o.status.success(), "{}", stderr_of(&o));
    let plain = dir.path().join("last");
    let o = sweep(&model, &plain, &["--text", text, "--lengths", "8"]);
    assert!(o.status.success(), "{}", stderr_of(&o));

    let m = load_model(&model).unwrap();
    let tok = m.tokenizer.as_ref().unwrap();
    let suffix = tok.encode_plain(SUFFIX).unwrap();
    assert!(suffix.len() >= 3, "{suffix:?}");
    let mut c = TokenizedCorpus::load(&root, tok).unwrap();
    c.prepare(n).unwrap();
    let windows = drawn_windows(&c, n, samples, seed, n as u64);
    let with: Vec<u32> = windows
        .chunks(n)
        .flat_map(|w| w.iter().chain(&suffix).copied())
        .collect();
    let len = n + suffix.len();
    let states = |ids: &[u32], len: usize| {
        let input = ForwardInput::Tokens {
            ids,
            batch: samples,
            n: len,
        };
        reference::forward(&m.weights, &input, &[len - 1]).unwrap()
    };
    let at_suffix = states(&with, len);
    let at_last = states(&drawn_windows(&c, n, samples, seed, PREFIX_STREAM), n);
    let d = m.weights.config.d_model;
    let swept_suffix = variances(&read_json(&with_suffix.join("model/summary.json")));
    let swept_last = variances(&read_json(&plain.join("model/summary.json")));
    for l in 0..m.weights.config.layers {
        for (site, s, x) in [
            ("attn", &at_suffix.attn_out[l], &at_last.attn_out[l]),
            ("hidden", &at_suffix.hidden[l], &at_last.hidden[l]),
        ] {
            let name = format!("L{l}.{site}");
            let find = |v: &[(u64, String, f64)]| v.iter().find(|p| p.1 == name).unwrap().2;
            let (want_s, want_l) = (v_of(s, d), v_of(x, d));
            let (got_s, got_l) = (find(&swept_suffix), find(&swept_last));
            eprintln!("{name}: suffix {got_s:.6e} (f64 {want_s:.6e}), last {got_l:.6e} (f64 {want_l:.6e})");
            assert!((got_s / want_s - 1.0).abs() < 1e-3, "{name}: suffix probe");
            assert!((got_l / want_l - 1.0).abs() < 1e-3, "{name}: last probe");
            assert!(
                (want_s / want_l - 1.0).abs() > 0.05,
                "{name}: the suffix changes nothing?"
            );
        }
    }
}

/// With a causal model and `--probe last`, one forward of the grid's longest windows gives
/// every length: each point's V and per-head n_eff are those of the f64 forward at position
/// n - 1 of the same 32-token windows (the prefix stream's), the points say so, and a point
/// deleted and measured again alone comes back the same (the draws do not depend on which
/// lengths are still to measure).
#[test]
fn a_causal_last_sweep_measures_every_length_on_prefixes_of_one_set_of_windows() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let text = root.to_str().unwrap();
    let out = dir.path().join("out");
    let args = ["--text", text, "--lengths", "8,16,32"];
    let o = sweep(&model, &out, &args);
    assert!(o.status.success(), "{}", stderr_of(&o));
    assert!(
        stderr_of(&o).contains("one forward of the longest length's windows gives every length"),
        "{}",
        stderr_of(&o)
    );
    let summary = read_json(&out.join("model/summary.json"));
    let points = summary["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert!(points.iter().all(|p| p["prefix_of"] == 32), "{points:?}");

    let m = load_model(&model).unwrap();
    let mut c = TokenizedCorpus::load(&root, m.tokenizer.as_ref().unwrap()).unwrap();
    c.prepare(32).unwrap();
    let (samples, seed) = (12, 3);
    let (d, heads) = (m.weights.config.d_model, m.weights.config.heads);
    let windows = drawn_windows(&c, 32, samples, seed, PREFIX_STREAM);
    let input = ForwardInput::Tokens {
        ids: &windows,
        batch: samples,
        n: 32,
    };
    let lengths = [8usize, 16, 32];
    let probes: Vec<usize> = lengths.iter().map(|n| n - 1).collect();
    let states = reference::forward(&m.weights, &input, &probes).unwrap();
    let swept = variances(&summary);
    for (p, (&n, point)) in lengths.iter().zip(points).enumerate() {
        let layers = point["n_eff_heads"].as_array().unwrap();
        assert_eq!(layers.len(), m.weights.config.layers);
        for (l, per_head) in layers.iter().enumerate() {
            for (site, all) in [("attn", &states.attn_out[l]), ("hidden", &states.hidden[l])] {
                let rows: Vec<f64> = all
                    .chunks(probes.len() * d)
                    .flat_map(|s| s[p * d..][..d].to_vec())
                    .collect();
                let want = v_of(&rows, d);
                let name = format!("L{l}.{site}");
                let got = swept
                    .iter()
                    .find(|x| x.0 == n as u64 && x.1 == name)
                    .unwrap()
                    .2;
                assert!(
                    (got / want - 1.0).abs() < 1e-3,
                    "n = {n}, {name}: {got} vs f64 {want}"
                );
            }
            // Spreads are [batch, heads, probes]: head h's mean n_eff at this probe.
            let per_head = per_head.as_array().unwrap();
            assert_eq!(per_head.len(), heads);
            for (h, got) in per_head.iter().enumerate() {
                let want: f64 = (0..samples)
                    .map(|b| states.n_eff[l][(b * heads + h) * probes.len() + p])
                    .sum::<f64>()
                    / samples as f64;
                let got = got.as_f64().unwrap();
                assert!(
                    (got / want - 1.0).abs() < 1e-3,
                    "n = {n}, L{l} head {h}: n_eff {got} vs f64 {want}"
                );
            }
        }
    }

    // n = 16 measured again alone: the same windows, so the same point.
    let point = out.join("model/points/n-000016.json");
    let before = read_json(&point);
    std::fs::remove_file(&point).unwrap();
    let o = sweep(&model, &out, &args);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let after = read_json(&point);
    for (a, b) in before["sites"]
        .as_array()
        .unwrap()
        .iter()
        .zip(after["sites"].as_array().unwrap())
    {
        let (va, vb) = (
            a["variance"].as_f64().unwrap(),
            b["variance"].as_f64().unwrap(),
        );
        assert!(
            (va / vb - 1.0).abs() < 1e-5,
            "{}: {va} then {vb}",
            a["site"]
        );
        assert_eq!(
            a["variance_boot"].as_array().unwrap().len(),
            b["variance_boot"].as_array().unwrap().len()
        );
    }
}

#[test]
fn bad_probes_are_refused_before_any_gpu_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let root = corpus(dir.path());
    let text = root.to_str().unwrap();
    let out = dir.path().join("out");
    let refused = |model: &Path, extra: &[&str], want: &[&str]| {
        assert_refused(&sweep(model, &out, extra), want);
        assert!(!out.exists(), "{extra:?} wrote results");
    };
    let with = |lengths: &str, p: &str| -> Vec<String> {
        ["--text", text, "--lengths", lengths, "--probe", p]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };

    refused(
        &model,
        &strs(&with("8", "first")),
        &["unknown probe 'first'", "suffix:TEXT"],
    );
    refused(
        &model,
        &strs(&with("8", "suffix:")),
        &["--probe suffix: has no text"],
    );

    // A tokenizer that strips its input: a suffix of spaces tokenises to nothing.
    let stripping = dir.path().join("gpt2-strip");
    std::fs::create_dir(&stripping).unwrap();
    gpt2_dir_with_tokenizer(
        &stripping,
        16,
        Some(r#""normalizer": {"type": "Strip", "strip_left": true, "strip_right": true}"#),
    );
    refused(
        &stripping,
        &strs(&with("8", "suffix:   ")),
        &["the suffix \"   \" tokenises to no tokens"],
    );

    // 16 positions: the longest context n and the suffix's s tokens must fit together.
    let gpt2 = dir.path().join("gpt2");
    std::fs::create_dir(&gpt2).unwrap();
    gpt2_dir_with_tokenizer(&gpt2, 16, None);
    let tok = load_model(&gpt2).unwrap().tokenizer.unwrap();
    let s = tok.encode_plain(SUFFIX).unwrap().len();
    assert!((2..8).contains(&s), "{s}");
    let probe = format!("suffix:{SUFFIX}");
    let too_long = 16 - s + 1;
    refused(
        &gpt2,
        &strs(&with(&format!("8,{too_long}"), &probe)),
        &[
            &format!("n = {too_long}"),
            &format!("s = {s} tokens"),
            "is 17",
            "16 positions",
            &format!("--max-n {}", 16 - s),
        ],
    );
    let ok = dir.path().join("ok");
    let o = sweep(&gpt2, &ok, &strs(&with(&format!("8,{}", 16 - s), &probe)));
    assert!(o.status.success(), "{}", stderr_of(&o));

    // A model without a tokenizer has no ids for the suffix: a random GPT-2-like config fed
    // random tokens.
    let config = dir.path().join("config.json");
    let mut c = ceiling_core::model::ModelConfig::gpt2_like(1, 16, 2, 40);
    c.position = ceiling_core::model::Position::Learned { max_positions: 32 };
    std::fs::write(&config, serde_json::to_string(&c).unwrap()).unwrap();
    let o = run_ceiling(&[
        "sweep",
        "--preset",
        "model",
        "--config",
        config.to_str().unwrap(),
        "--lengths",
        "8",
        "--probe",
        &probe,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_refused(&o, &["needs a model with a tokenizer"]);
    assert!(!out.exists());

    // The controls have no tokens to append a suffix to.
    let o = run_ceiling(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "8",
        "--probe",
        &probe,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_refused(&o, &["belongs to --preset model"]);
    assert!(!out.exists());
}
