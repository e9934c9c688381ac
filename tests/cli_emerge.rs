//! `ceiling emerge`: the induction and few-shot tasks through the small GGUF Llama of
//! tests/common/text.rs, checked against the f64 forward of the same samples; resuming, and
//! what is refused before any GPU work.

mod common;

use std::path::Path;

use ceiling_core::model::{load_model, reference, ForwardInput};
use ceiling_core::stats::{fisher_snr_debiased, Moments};
use ceiling_host::emergence::{draw_sample, Task, TaskTokens};
use common::text::llama_gguf_with_tokenizer;
use common::{assert_refused, run_ceiling, stderr_of};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn emerge(model: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "emerge",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ceiling(&args)
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The label log-probability, the model's two-way accuracy and layer 0's Fisher SNR of the
/// run equal those of the f64 forward over the samples the run draws (seed 4, the stream of
/// each task and length, one batch).
#[test]
fn emerge_measures_what_the_f64_forward_of_its_samples_gives() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let out = dir.path().join("out");
    let (samples, seed) = (24usize, 4u64);
    let args = ["--lengths", "8,16", "--samples", "24", "--seed", "4"];
    let o = emerge(&model, &out, &args);
    assert!(o.status.success(), "{}", stderr_of(&o));
    let report = read_json(&out.join("emergence.json"));
    let points = report["points"].as_array().unwrap();
    assert_eq!(points.len(), 4, "two tasks, two lengths");
    assert!(
        report["threshold"].is_object() || report["threshold_error"].is_string(),
        "{report}"
    );
    let csv = std::fs::read_to_string(out.join("emergence.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 4 * 2, "a row per point and layer");

    let m = load_model(&model).unwrap();
    let c = &m.weights.config;
    let (d, vocab) = (c.d_model, c.vocab);
    let tokens = TaskTokens::for_model(vocab, m.tokenizer.as_ref()).unwrap();
    let head = m.weights.output_embedding().unwrap();
    for p in points {
        let task = Task::parse(p["task"].as_str().unwrap()).unwrap();
        let n = p["n"].as_u64().unwrap() as usize;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(((task as u64) << 32) + n as u64);
        let (mut ids, mut labels) = (Vec::new(), Vec::new());
        for _ in 0..samples {
            let (s, y) = draw_sample(task, &tokens, n, &mut rng);
            ids.extend(s);
            labels.push(y);
        }
        let input = ForwardInput::Tokens {
            ids: &ids,
            batch: samples,
            n,
        };
        let states = reference::forward(&m.weights, &input, &[n - 1]).unwrap();
        let last = states.final_norm.as_ref().unwrap();
        let (mut lp, mut right) = (0.0, 0usize);
        for (x, &y) in last.chunks(d).zip(&labels) {
            let logits: Vec<f64> = head
                .chunks(d)
                .map(|e| e.iter().zip(x).map(|(&w, &v)| w as f64 * v).sum())
                .collect();
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            let (good, bad) = (tokens.labels[y] as usize, tokens.labels[1 - y] as usize);
            lp += logits[good] - lse;
            right += (logits[good] > logits[bad]) as usize;
        }
        let want_lp = lp / samples as f64;
        let got_lp = p["label_logprob"].as_f64().unwrap();
        assert!(
            (got_lp - want_lp).abs() < 1e-3 * want_lp.abs().max(1.0),
            "{task:?} n = {n}: label log-prob {got_lp} vs f64 {want_lp}"
        );
        let got_acc = p["model_accuracy"].as_f64().unwrap();
        assert_eq!(got_acc, right as f64 / samples as f64, "{task:?} n = {n}");

        let mut classes = [Moments::new(d), Moments::new(d)];
        for (row, &y) in states.hidden[0].chunks(d).zip(&labels) {
            classes[y].push(row).unwrap();
        }
        let want = fisher_snr_debiased(&classes[1], &classes[0]).unwrap();
        let got = p["layers"][0]["fisher_snr"].as_f64().unwrap();
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1e-2),
            "{task:?} n = {n}: layer 0 Fisher SNR {got} vs f64 {want}"
        );
    }

    // The same command reads every point back; another sample count is refused.
    let again = emerge(&model, &out, &args);
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert_eq!(
        stderr_of(&again).matches("resumed from disk").count(),
        4,
        "{}",
        stderr_of(&again)
    );
    assert_eq!(
        read_json(&out.join("emergence.json"))["points"],
        report["points"]
    );
    let o = emerge(&model, &out, &["--lengths", "8", "--samples", "32"]);
    assert_refused(&o, &["another configuration"]);
}

#[test]
fn bad_emerge_requests_are_refused_before_any_gpu_work() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    llama_gguf_with_tokenizer(&model);
    let out = dir.path().join("out");
    let refused = |model: &Path, extra: &[&str], want: &str| {
        assert_refused(&emerge(model, &out, extra), &[want]);
        assert!(!out.exists(), "{extra:?} wrote results");
    };
    refused(
        &model,
        &["--tasks", "translation"],
        "unknown task 'translation'",
    );
    refused(
        &model,
        &["--lengths", "4", "--tasks", "fewshot"],
        "needs at least 6 tokens",
    );
    refused(&model, &["--lengths", "x"], "not a whole number");
    refused(&model, &["--samples", "3"], "at least 8 samples");
    refused(&model, &["--layers", "7"], "layer 7 is beyond");
}
