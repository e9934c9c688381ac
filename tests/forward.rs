//! The GPU forward pass against the f64 reference, layer by layer, for each layout; the rope
//! kernel; and Hugging Face checkpoints (BERT, GPT-2) written here and loaded back.

mod common;

use std::path::Path;

use ceiling_core::model::{
    load_checkpoint, reference as model_ref, ForwardInput, ModelConfig, ModelWeights, ProbeStates,
};
use ceiling_core::reference::{self, compare};
use ceiling_host::kernels;
use ceiling_host::model::GpuModel;
use ceiling_shaders::Precision;
use common::*;
use rand::Rng;
use safetensors::{tensor::TensorView, Dtype};

fn round(precision: Precision) -> impl Fn(f32) -> f32 {
    move |v| match precision {
        Precision::F32 => v,
        Precision::F16 => half::f16::from_f32(v).to_f32(),
    }
}

/// Whole-model tolerance: per-kernel rounding compounds over the layers.
fn model_tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 5e-3,
    }
}

/// Compares every probed quantity, printing the relative error per layer.
fn compare_states(what: &str, gpu: &ProbeStates<f32>, cpu: &ProbeStates<f64>, tol: f64) -> f64 {
    let mut worst: f64 = 0.0;
    let mut check = |name: String, out: &[f32], want: &[f64]| {
        let e = compare(out, want);
        eprintln!("{what} {name}: {e}");
        assert!(e.rel < tol, "{what} {name}: {e} exceeds {tol:e}");
        worst = worst.max(e.rel);
    };
    check("embeddings".into(), &gpu.embeddings, &cpu.embeddings);
    assert_eq!(gpu.hidden.len(), cpu.hidden.len());
    for l in 0..cpu.hidden.len() {
        check(
            format!("layer {l} attn_out"),
            &gpu.attn_out[l],
            &cpu.attn_out[l],
        );
        check(format!("layer {l} hidden"), &gpu.hidden[l], &cpu.hidden[l]);
        check(format!("layer {l} n_eff"), &gpu.n_eff[l], &cpu.n_eff[l]);
        check(
            format!("layer {l} entropy"),
            &gpu.entropy[l],
            &cpu.entropy[l],
        );
    }
    match (&gpu.final_norm, &cpu.final_norm) {
        (Some(g), Some(c)) => check("final_norm".into(), g, c),
        (None, None) => {}
        _ => panic!("{what}: final norm present on one side only"),
    }
    worst
}

enum Inputs {
    Tokens(Vec<u32>),
    Vectors(Vec<f32>),
}

fn run_model(what: &str, w: &ModelWeights, batch: usize, n: usize, probes: &[usize], seed: &str) {
    let gpu = gpu();
    let mut rng = rng(seed);
    let c = &w.config;
    let inputs = if c.vocab > 0 {
        Inputs::Tokens(
            (0..batch * n)
                .map(|_| rng.random_range(0..c.vocab as u32))
                .collect(),
        )
    } else {
        Inputs::Vectors(random(&mut rng, batch * n * c.d_model))
    };
    for precision in precisions() {
        let model = GpuModel::new(gpu, w, precision).unwrap();
        let (input, rounded_x);
        let ref_w = w.map_values(round(precision));
        match &inputs {
            Inputs::Tokens(ids) => {
                input = ForwardInput::Tokens { ids, batch, n };
                rounded_x = Vec::new();
            }
            Inputs::Vectors(x) => {
                input = ForwardInput::Vectors { x, batch, n };
                rounded_x = x.iter().map(|&v| round(precision)(v)).collect::<Vec<_>>();
            }
        }
        let ref_input = match input {
            ForwardInput::Vectors { .. } => ForwardInput::Vectors {
                x: &rounded_x,
                batch,
                n,
            },
            other => other,
        };
        let got = model.forward(gpu, &input, probes).unwrap();
        let want = model_ref::forward(&ref_w, &ref_input, probes).unwrap();
        let worst = compare_states(
            &format!("{what} {precision}"),
            &got,
            &want,
            model_tolerance(precision),
        );
        eprintln!("{what} {precision}: worst relative error {worst:.3e}");
    }
}

#[test]
fn gpt2_like_prenorm_gelu_learned_positions() {
    let c = ModelConfig::gpt2_like(2, 32, 4, 50);
    let w = ModelWeights::random(&c, 11).unwrap();
    run_model("gpt2-like", &w, 2, 9, &[0, 4, 8], "gpt2_like");
}

#[test]
fn llama_like_prenorm_rms_swiglu_rotary_gqa_vectors() {
    let c = ModelConfig::llama_like(2, 32, 4, 2, 0);
    let w = ModelWeights::random(&c, 12).unwrap();
    run_model("llama-like", &w, 2, 11, &[10, 3], "llama_like");
}

#[test]
fn bert_like_postnorm_bidirectional() {
    let c = ModelConfig::bert_like(2, 32, 2, 40);
    let w = ModelWeights::random(&c, 13).unwrap();
    run_model("bert-like", &w, 3, 7, &[6, 0], "bert_like");
}

#[test]
fn single_token_sequence() {
    let c = ModelConfig::gpt2_like(1, 16, 2, 10);
    let w = ModelWeights::random(&c, 14).unwrap();
    run_model("n=1", &w, 1, 1, &[0], "single_token");
}

#[test]
fn rope_kernel_matches_reference() {
    let gpu = gpu();
    let mut rng = rng("rope");
    for (rows, seq, head_dim, rot_dim, pos0) in
        [(3, 5, 8, 8, 0), (2, 7, 12, 6, 100), (1, 1, 2, 2, 0)]
    {
        let x = random(&mut rng, rows * seq * head_dim);
        for precision in precisions() {
            let t = gpu.upload("x", &x, precision).unwrap();
            kernels::rope(gpu, &t, seq, head_dim, rot_dim, 10000.0, pos0).unwrap();
            let mut want = stored(&x, precision);
            reference::rope(&mut want, seq, head_dim, rot_dim, 10000.0, pos0);
            assert_close(
                &format!("rope rows {rows} seq {seq} hd {head_dim} rot {rot_dim} pos0 {pos0} {precision}"),
                &gpu.download(&t).unwrap(),
                &want,
                tolerance(precision),
            );
        }
    }
    let t = gpu.upload("x", &[1.0; 10], Precision::F32).unwrap();
    assert!(kernels::rope(gpu, &t, 5, 2, 3, 10000.0, 0).is_err());
    assert!(kernels::rope(gpu, &t, 3, 2, 2, 10000.0, 0).is_err());
}

#[test]
fn bad_forward_input_is_an_error() {
    let gpu = gpu();
    let c = ModelConfig::gpt2_like(1, 16, 2, 10);
    let w = ModelWeights::random(&c, 1).unwrap();
    let model = GpuModel::new(gpu, &w, Precision::F32).unwrap();
    let ids = [1u32, 2, 3];
    let input = ForwardInput::Tokens {
        ids: &ids,
        batch: 1,
        n: 3,
    };
    let e = model.forward(gpu, &input, &[5]).unwrap_err().to_string();
    assert!(e.contains("probe position 5"), "{e}");
    let x = [0.5f32; 40]; // not 1 x 3 x 16
    let input = ForwardInput::Vectors {
        x: &x,
        batch: 1,
        n: 3,
    };
    assert!(model.forward(gpu, &input, &[0]).is_err());
}

// ---- Hugging Face checkpoints ----

struct Entry {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Vec<u8>,
}

fn entry(name: &str, data: &[f32], shape: &[usize], dtype: Dtype) -> Entry {
    assert_eq!(data.len(), shape.iter().product::<usize>(), "{name}");
    let bytes = dtype_bytes(data, dtype);
    Entry {
        name: name.into(),
        shape: shape.to_vec(),
        dtype,
        bytes,
    }
}

fn write_checkpoint(dir: &Path, config: serde_json::Value, entries: &[Entry]) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let views: Vec<(String, TensorView)> = entries
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                TensorView::new(e.dtype, e.shape.clone(), &e.bytes).unwrap(),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
}

fn transpose(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = w[r * cols + c];
        }
    }
    out
}

/// BERT layout tensors of random bert-like weights (token type table random too), with
/// the word embeddings in `dtype`.
fn bert_entries(w: &ModelWeights, tt: &[f32], dtype: Dtype) -> Vec<Entry> {
    let c = &w.config;
    let (d, ff) = (c.d_model, c.ff_dim);
    let mut e = vec![
        entry(
            "embeddings.word_embeddings.weight",
            w.token_embedding.as_ref().unwrap(),
            &[c.vocab, d],
            dtype,
        ),
        entry(
            "embeddings.position_embeddings.weight",
            w.position_embedding.as_ref().unwrap(),
            &[c.max_len().unwrap(), d],
            Dtype::F32,
        ),
        entry(
            "embeddings.token_type_embeddings.weight",
            tt,
            &[2, d],
            Dtype::F32,
        ),
    ];
    let en = w.embed_norm.as_ref().unwrap();
    e.push(entry(
        "embeddings.LayerNorm.weight",
        &en.gamma,
        &[d],
        Dtype::F32,
    ));
    e.push(entry(
        "embeddings.LayerNorm.bias",
        en.beta.as_ref().unwrap(),
        &[d],
        Dtype::F32,
    ));
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("encoder.layer.{i}.");
        for (name, lin, o, k) in [
            ("attention.self.query", &l.q, d, d),
            ("attention.self.key", &l.k, d, d),
            ("attention.self.value", &l.v, d, d),
            ("attention.output.dense", &l.o, d, d),
            ("intermediate.dense", &l.up, ff, d),
            ("output.dense", &l.down, d, ff),
        ] {
            e.push(entry(
                &format!("{p}{name}.weight"),
                &lin.weight,
                &[o, k],
                Dtype::F32,
            ));
            e.push(entry(
                &format!("{p}{name}.bias"),
                lin.bias.as_ref().unwrap(),
                &[o],
                Dtype::F32,
            ));
        }
        for (name, n) in [
            ("attention.output.LayerNorm", &l.attn_norm),
            ("output.LayerNorm", &l.ffn_norm),
        ] {
            e.push(entry(
                &format!("{p}{name}.weight"),
                &n.gamma,
                &[d],
                Dtype::F32,
            ));
            e.push(entry(
                &format!("{p}{name}.bias"),
                n.beta.as_ref().unwrap(),
                &[d],
                Dtype::F32,
            ));
        }
    }
    e
}

fn bert_config(c: &ModelConfig) -> serde_json::Value {
    serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": c.d_model,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": c.ff_dim,
        "max_position_embeddings": c.max_len().unwrap(),
        "vocab_size": c.vocab,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
        "position_embedding_type": "absolute"
    })
}

#[test]
fn bert_checkpoint_loads_and_matches_reference() {
    let mut c = ModelConfig::bert_like(2, 32, 4, 30);
    c.ff_dim = 48;
    c.position = ceiling_core::model::Position::Learned { max_positions: 16 };
    let w = ModelWeights::random(&c, 21).unwrap();
    let mut rng = rng("bert_checkpoint");
    let tt = random(&mut rng, 2 * c.d_model);
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(
        dir.path(),
        bert_config(&c),
        &bert_entries(&w, &tt, Dtype::BF16),
    );
    let loaded = load_checkpoint(dir.path()).unwrap();
    assert_eq!(loaded.config, c);
    // Token type 0 is folded into the positions; the word embeddings went through bf16.
    let mut expect = w.clone();
    for row in expect
        .position_embedding
        .as_mut()
        .unwrap()
        .chunks_mut(c.d_model)
    {
        row.iter_mut().zip(&tt).for_each(|(p, t)| *p += t);
    }
    for v in expect.token_embedding.as_mut().unwrap() {
        *v = half::bf16::from_f32(*v).to_f32();
    }
    assert_eq!(loaded, expect);
    run_model(
        "bert checkpoint",
        &loaded,
        2,
        9,
        &[8, 2],
        "bert_checkpoint_forward",
    );
}

#[test]
fn gpt2_checkpoint_maps_conv1d_weights() {
    let mut c = ModelConfig::gpt2_like(2, 16, 2, 20);
    c.position = ceiling_core::model::Position::Learned { max_positions: 12 };
    let w = ModelWeights::random(&c, 22).unwrap();
    let (d, ff) = (c.d_model, c.ff_dim);
    let mut e = vec![
        entry(
            "transformer.wte.weight",
            w.token_embedding.as_ref().unwrap(),
            &[20, d],
            Dtype::F32,
        ),
        entry(
            "transformer.wpe.weight",
            w.position_embedding.as_ref().unwrap(),
            &[12, d],
            Dtype::F32,
        ),
    ];
    let fnorm = w.final_norm.as_ref().unwrap();
    e.push(entry(
        "transformer.ln_f.weight",
        &fnorm.gamma,
        &[d],
        Dtype::F32,
    ));
    e.push(entry(
        "transformer.ln_f.bias",
        fnorm.beta.as_ref().unwrap(),
        &[d],
        Dtype::F32,
    ));
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("transformer.h.{i}.");
        // c_attn: [in, 3 * out], q | k | v along the output columns.
        let qkv: Vec<f32> = [&l.q, &l.k, &l.v]
            .iter()
            .flat_map(|x| x.weight.clone())
            .collect();
        let qkv_b: Vec<f32> = [&l.q, &l.k, &l.v]
            .iter()
            .flat_map(|x| x.bias.clone().unwrap())
            .collect();
        e.push(entry(
            &format!("{p}attn.c_attn.weight"),
            &transpose(&qkv, 3 * d, d),
            &[d, 3 * d],
            Dtype::F32,
        ));
        e.push(entry(
            &format!("{p}attn.c_attn.bias"),
            &qkv_b,
            &[3 * d],
            Dtype::F32,
        ));
        for (name, lin, o, k) in [
            ("attn.c_proj", &l.o, d, d),
            ("mlp.c_fc", &l.up, ff, d),
            ("mlp.c_proj", &l.down, d, ff),
        ] {
            e.push(entry(
                &format!("{p}{name}.weight"),
                &transpose(&lin.weight, o, k),
                &[k, o],
                Dtype::F32,
            ));
            e.push(entry(
                &format!("{p}{name}.bias"),
                lin.bias.as_ref().unwrap(),
                &[o],
                Dtype::F32,
            ));
        }
        for (name, n) in [("ln_1", &l.attn_norm), ("ln_2", &l.ffn_norm)] {
            e.push(entry(
                &format!("{p}{name}.weight"),
                &n.gamma,
                &[d],
                Dtype::F32,
            ));
            e.push(entry(
                &format!("{p}{name}.bias"),
                n.beta.as_ref().unwrap(),
                &[d],
                Dtype::F32,
            ));
        }
    }
    let config = serde_json::json!({
        "model_type": "gpt2", "n_embd": d, "n_layer": 2, "n_head": 2, "n_positions": 12,
        "vocab_size": 20, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"
    });
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), config, &e);
    let loaded = load_checkpoint(dir.path()).unwrap();
    assert_eq!(loaded, w);
}

#[test]
fn bad_checkpoints_name_the_problem() {
    let c = ModelConfig::bert_like(1, 16, 2, 10);
    let mut c = c;
    c.ff_dim = 24;
    c.position = ceiling_core::model::Position::Learned { max_positions: 8 };
    let w = ModelWeights::random(&c, 23).unwrap();
    let tt = vec![0.25; 2 * 16];
    let dir = tempfile::tempdir().unwrap();
    let all = bert_entries(&w, &tt, Dtype::F16);
    // A missing tensor.
    let missing: Vec<Entry> = bert_entries(&w, &tt, Dtype::F16)
        .into_iter()
        .filter(|e| e.name != "encoder.layer.0.attention.self.key.weight")
        .collect();
    write_checkpoint(dir.path(), bert_config(&c), &missing);
    let e = load_checkpoint(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("encoder.layer.0.attention.self.key.weight") && e.contains("missing"),
        "{e}"
    );
    // A shape that disagrees with the config.
    let mut cfg = bert_config(&c);
    cfg["intermediate_size"] = serde_json::json!(20);
    write_checkpoint(dir.path(), cfg, &all);
    let e = load_checkpoint(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("encoder.layer.0.intermediate.dense.weight"),
        "{e}"
    );
    // An unknown architecture.
    let mut cfg = bert_config(&c);
    cfg["model_type"] = serde_json::json!("t5");
    cfg["architectures"] = serde_json::json!(["T5Model"]);
    write_checkpoint(dir.path(), cfg, &all);
    let e = load_checkpoint(dir.path()).unwrap_err().to_string();
    assert!(e.contains("unknown architecture"), "{e}");
    // No files at all.
    let empty = tempfile::tempdir().unwrap();
    let e = load_checkpoint(empty.path()).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn hidden_cli_writes_states_that_match_the_reference() {
    let c = ModelConfig::llama_like(2, 16, 4, 2, 0);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("model.json");
    std::fs::write(&config, serde_json::to_string(&c).unwrap()).unwrap();
    let out = dir.path().join("states.safetensors");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_ceiling"))
        .args(["hidden", "--config"])
        .arg(&config)
        .args([
            "--seed",
            "5",
            "--batch",
            "2",
            "--n",
            "6",
            "--positions",
            "5,1",
            "--out",
        ])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let w = ModelWeights::random(&c, 5).unwrap();
    let input = ceiling_core::model::RandomInput::draw(&c, 2, 6, 6);
    let want = model_ref::forward(&w, &input.as_input(2, 6), &[5, 1]).unwrap();
    for l in 0..2 {
        let t = st.tensor(&format!("hidden.{l}")).unwrap();
        assert_eq!(t.shape(), &[2, 2, 16]);
        let got: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_close(&format!("cli hidden.{l}"), &got, &want.hidden[l], 1e-5);
    }
}
