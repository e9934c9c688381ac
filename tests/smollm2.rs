//! The real model: SmolLM2-135M-Instruct (Q4_1 GGUF, fetched by `cargo xtask fetch model`;
//! `cargo xtask test` fetches it first) reading English, on the GPU against the f64 CPU
//! forward, with its own tokenizer and a next-token loss that only a correctly loaded
//! model reaches.

mod common;

use std::path::PathBuf;

use ceiling_core::model::gguf::permute_rows_for_gguf;
use ceiling_core::model::{load_model, reference as model_ref, ForwardInput, LoadedModel};
use ceiling_core::reference::{compare, next_token_loss};
use ceiling_host::model::GpuModel;
use ceiling_shaders::Precision;
use common::*;

/// Public-domain English (Austen, Pride and Prejudice, 1813).
const TEXT: &str = "It is a truth universally acknowledged, that a single man in possession \
of a good fortune, must be in want of a wife. However little known the feelings or views of \
such a man may be on his first entering a neighbourhood, this truth is so well fixed in the \
minds of the surrounding families, that he is considered the rightful property of some one \
or other of their daughters.";

fn smollm2() -> LoadedModel {
    let path = std::env::var_os("CEILING_SMOLLM2")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("data/models/SmolLM2-135M-Instruct.Q4_1.gguf")
        });
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask fetch model` (or `cargo xtask test`, which fetches it)",
        path.display()
    );
    load_model(&path).unwrap()
}

/// Mean next-token loss of `ids` from final-norm states [n, d].
fn mean_nll(m: &LoadedModel, states: &[f32], ids: &[u32]) -> f64 {
    let d = m.weights.config.d_model;
    let n = ids.len();
    let head = m.weights.output_embedding().unwrap();
    let losses = next_token_loss(head, d, &states[..(n - 1) * d], &ids[1..]);
    losses.iter().map(|l| l.nll).sum::<f64>() / losses.len() as f64
}

#[test]
fn smollm2_reads_english_on_the_gpu_as_the_f64_reference_does() {
    let m = smollm2();
    let c = &m.weights.config;
    assert_eq!(
        (
            c.layers,
            c.d_model,
            c.heads,
            c.kv_heads,
            c.head_dim(),
            c.vocab
        ),
        (30, 576, 9, 3, 64, 49152)
    );
    let tok = m
        .tokenizer
        .as_ref()
        .expect("the GGUF file carries its tokenizer");
    let ids = tok.encode(TEXT).unwrap();
    assert_eq!(tok.decode(&ids).unwrap(), TEXT, "byte-level BPE round trip");
    assert!(tok.prefix().is_empty(), "SmolLM2 asks for no BOS");

    assert!(ids.len() >= 64, "{} tokens", ids.len());
    let n = 64;
    let ids = &ids[..n];
    let input = ForwardInput::Tokens { ids, batch: 1, n };
    let probes: Vec<usize> = (0..n).collect();
    let gpu = gpu();
    let model = GpuModel::new(gpu, &m.weights, Precision::F32).unwrap();
    let got = model.forward(gpu, &input, &probes).unwrap();
    let want = model_ref::forward(&m.weights, &input, &probes).unwrap();
    let mut worst: f64 = 0.0;
    for (l, (g, w)) in got.hidden.iter().zip(&want.hidden).enumerate() {
        let e = compare(g, w);
        eprintln!("layer {l}: hidden {e}");
        worst = worst.max(e.rel);
    }
    assert!(worst < 1e-4, "worst layer relative error {worst:.3e}");

    let gpu_nll = mean_nll(&m, got.final_norm.as_ref().unwrap(), ids);
    let cpu_states: Vec<f32> = want
        .final_norm
        .as_ref()
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect();
    let cpu_nll = mean_nll(&m, &cpu_states, ids);
    eprintln!(
        "mean next-token loss over {} predictions: GPU {gpu_nll:.4}, f64 {cpu_nll:.4} nats",
        n - 1
    );
    assert!((gpu_nll - cpu_nll).abs() < 1e-3, "{gpu_nll} vs {cpu_nll}");
    // The LM-head kernel gives the same loss without the logits.
    let (scores, plan) = model.next_token_loss(gpu, ids, 1, n).unwrap();
    let kernel_nll = scores.chunks(4).map(|s| s[1] as f64).sum::<f64>() / (n - 1) as f64;
    eprintln!("LM-head kernel ({plan}): {kernel_nll:.4} nats");
    assert!(
        (kernel_nll - cpu_nll).abs() < 1e-3,
        "{kernel_nll} vs {cpu_nll}"
    );
    // ln(49152) = 10.8 nats is a uniform guess; a trained model on plain English is far below.
    assert!(
        gpu_nll < 4.5,
        "loss {gpu_nll:.3}: is the model loaded correctly?"
    );

    // With llama.cpp's Q/K row order left in place the model still runs, but reads worse:
    // this is what undoing the permutation at load buys.
    let mut permuted = m.weights.clone();
    let hd = c.head_dim();
    for l in &mut permuted.layers {
        l.q.weight = permute_rows_for_gguf(&l.q.weight, c.heads * hd, c.d_model, c.heads).unwrap();
        l.k.weight =
            permute_rows_for_gguf(&l.k.weight, c.kv_heads * hd, c.d_model, c.kv_heads).unwrap();
    }
    let bad = GpuModel::new(gpu, &permuted, Precision::F32)
        .unwrap()
        .forward(gpu, &input, &probes)
        .unwrap();
    let bad_nll = mean_nll(&m, bad.final_norm.as_ref().unwrap(), ids);
    eprintln!("with the GGUF row order left in place: {bad_nll:.4} nats");
    // (4.8 against 3.5 nats at n = 32 on lavapipe; the gap grows with the context.)
    assert!(bad_nll > 1.25 * gpu_nll, "{bad_nll} vs {gpu_nll}");
}
