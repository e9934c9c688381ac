//! The GPU forward pass against the f64 reference, layer by layer, for each layout; the rope
//! kernel; and checkpoints (BERT, GPT-2 and Llama as safetensors, Llama as GGUF) written here
//! and loaded back.

mod common;

use std::path::Path;

use ceiling_core::model::gguf::{self, GgmlType, GgufFile};
use ceiling_core::model::{
    load_checkpoint, load_model, reference as model_ref, ForwardInput, LmHead, ModelConfig,
    ModelWeights, ProbeStates,
};
use ceiling_core::reference::{self, compare};
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
    // The masked-LM head is not loaded.
    expect.lm_head = LmHead::None;
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

// ---- Llama: safetensors and GGUF ----

/// A small Llama whose every width is a multiple of 32, as the quantised GGUF blocks need.
fn small_llama(head: LmHead) -> ModelWeights {
    let mut c = ModelConfig::llama_like(2, 64, 4, 2, 96);
    c.ff_dim = 96;
    c.position = ceiling_core::model::Position::Rotary { base: 100000.0 };
    c.norm_eps = 1e-5;
    let mut w = ModelWeights::random(&c, 31).unwrap();
    if matches!(head, LmHead::Separate(_)) {
        let mut rng = rng("small_llama_head");
        w.lm_head = LmHead::Separate(random(&mut rng, 96 * 64));
    }
    w
}

fn llama_config(w: &ModelWeights) -> serde_json::Value {
    let c = &w.config;
    let base = match c.position {
        ceiling_core::model::Position::Rotary { base } => base,
        _ => unreachable!(),
    };
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": c.d_model,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads,
        "intermediate_size": c.ff_dim,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": base,
        "vocab_size": c.vocab,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "rope_scaling": null,
        "tie_word_embeddings": w.lm_head == LmHead::Tied,
    })
}

fn llama_entries(w: &ModelWeights, dtype: Dtype) -> Vec<Entry> {
    let c = &w.config;
    let (d, ff, hd) = (c.d_model, c.ff_dim, c.head_dim());
    let mut e = vec![
        entry(
            "model.embed_tokens.weight",
            w.token_embedding.as_ref().unwrap(),
            &[c.vocab, d],
            dtype,
        ),
        entry(
            "model.norm.weight",
            &w.final_norm.as_ref().unwrap().gamma,
            &[d],
            dtype,
        ),
    ];
    if let LmHead::Separate(head) = &w.lm_head {
        e.push(entry("lm_head.weight", head, &[c.vocab, d], dtype));
    }
    for (i, l) in w.layers.iter().enumerate() {
        let p = format!("model.layers.{i}.");
        let lin = |name: &str, x: &ceiling_core::model::Linear| {
            entry(
                &format!("{p}{name}.weight"),
                &x.weight,
                &[x.out_dim, x.in_dim],
                dtype,
            )
        };
        e.push(entry(
            &format!("{p}input_layernorm.weight"),
            &l.attn_norm.gamma,
            &[d],
            dtype,
        ));
        e.push(entry(
            &format!("{p}post_attention_layernorm.weight"),
            &l.ffn_norm.gamma,
            &[d],
            dtype,
        ));
        e.push(lin("self_attn.q_proj", &l.q));
        e.push(lin("self_attn.k_proj", &l.k));
        e.push(lin("self_attn.v_proj", &l.v));
        e.push(lin("self_attn.o_proj", &l.o));
        e.push(lin("mlp.gate_proj", l.gate.as_ref().unwrap()));
        e.push(lin("mlp.up_proj", &l.up));
        e.push(lin("mlp.down_proj", &l.down));
        assert_eq!(
            (l.q.out_dim, l.k.out_dim, l.up.out_dim),
            (c.heads * hd, c.kv_heads * hd, ff)
        );
    }
    e
}

#[test]
fn llama_as_safetensors_and_as_gguf_gives_the_same_model_and_states() {
    for head in [LmHead::Tied, LmHead::Separate(Vec::new())] {
        let w = small_llama(head);
        let dir = tempfile::tempdir().unwrap();
        write_checkpoint(dir.path(), llama_config(&w), &llama_entries(&w, Dtype::F32));
        let from_st = load_model(dir.path()).unwrap();
        assert_eq!(from_st.weights, w, "safetensors round trip");
        assert!(from_st.tokenizer.is_none());
        // GGUF as llama.cpp writes it: Q and K rows permuted, undone at load.
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, gguf::write_llama(&w, GgmlType::F32).unwrap()).unwrap();
        let from_gguf = load_model(&path).unwrap();
        assert_eq!(from_gguf.weights, w, "GGUF round trip");
        let raw = GgufFile::open(&path).unwrap();
        let q_rows = raw.tensor_f32("blk.0.attn_q.weight").unwrap();
        assert_ne!(q_rows, w.layers[0].q.weight, "the file holds permuted rows");

        // The same hidden states from both, and the f64 reference agrees.
        let gpu = gpu();
        let ids: Vec<u32> = (0..2 * 11).map(|i| (i * 37 % 96) as u32).collect();
        let input = ForwardInput::Tokens {
            ids: &ids,
            batch: 2,
            n: 11,
        };
        let probes: Vec<usize> = (0..11).collect();
        let a = GpuModel::new(gpu, &from_st.weights, Precision::F32)
            .unwrap()
            .forward(gpu, &input, &probes)
            .unwrap();
        let b = GpuModel::new(gpu, &from_gguf.weights, Precision::F32)
            .unwrap()
            .forward(gpu, &input, &probes)
            .unwrap();
        assert_eq!(a.hidden, b.hidden);
        let want = model_ref::forward(&w, &input, &probes).unwrap();
        compare_states("llama gguf", &b, &want, model_tolerance(Precision::F32));
    }
}

#[test]
fn quantised_gguf_llama_stays_close_to_its_f32_model() {
    let w = small_llama(LmHead::Tied);
    let gpu = gpu();
    let ids: Vec<u32> = (0..16).map(|i| (i * 53 % 96) as u32).collect();
    let input = ForwardInput::Tokens {
        ids: &ids,
        batch: 1,
        n: 16,
    };
    let probes: Vec<usize> = (0..16).collect();
    let exact = model_ref::forward(&w, &input, &probes).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Relative error of the last hidden state: shrinks with more bits.
    let mut errors = Vec::new();
    for dtype in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
        GgmlType::F16,
    ] {
        let path = dir.path().join(format!("{dtype}.gguf"));
        std::fs::write(&path, gguf::write_llama(&w, dtype).unwrap()).unwrap();
        let q = load_model(&path).unwrap().weights;
        // The dequantised model on the GPU matches its own f64 reference...
        let got = GpuModel::new(gpu, &q, Precision::F32)
            .unwrap()
            .forward(gpu, &input, &probes)
            .unwrap();
        let want = model_ref::forward(&q, &input, &probes).unwrap();
        compare_states(
            &format!("llama {dtype}"),
            &got,
            &want,
            model_tolerance(Precision::F32),
        );
        // ...and is a small perturbation of the unquantised one.
        let last = got.hidden.last().unwrap();
        let err = compare(last, exact.hidden.last().unwrap()).rel;
        eprintln!("{dtype}: last hidden state relative error {err:.3e} against the f32 model");
        errors.push(err);
    }
    assert!(errors[0] < 0.3 && errors[1] < 0.3, "4-bit: {errors:?}");
    assert!(errors[2] < 0.02, "8-bit: {errors:?}");
    assert!(errors[3] < 2e-3, "f16: {errors:?}");
    assert!(errors[2] < errors[0] && errors[3] < errors[2], "{errors:?}");
}

#[test]
fn bad_llama_files_name_the_problem() {
    let w = small_llama(LmHead::Tied);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = llama_config(&w);
    cfg["rope_scaling"] = serde_json::json!({"type": "linear", "factor": 2.0});
    write_checkpoint(dir.path(), cfg, &llama_entries(&w, Dtype::F16));
    let e = load_model(dir.path()).unwrap_err().to_string();
    assert!(e.contains("rope_scaling"), "{e}");
    // Untied config without lm_head.weight.
    let mut cfg = llama_config(&w);
    cfg["tie_word_embeddings"] = serde_json::json!(false);
    write_checkpoint(dir.path(), cfg, &llama_entries(&w, Dtype::F16));
    let e = load_model(dir.path()).unwrap_err().to_string();
    assert!(e.contains("lm_head.weight") && e.contains("missing"), "{e}");
    // A file that is not GGUF, and a truncated GGUF.
    let not = dir.path().join("x.gguf");
    std::fs::write(&not, b"GGML and then some").unwrap();
    let e = load_model(&not).unwrap_err().to_string();
    assert!(e.contains("x.gguf"), "{e}");
    let bytes = gguf::write_llama(&w, GgmlType::Q8_0).unwrap();
    std::fs::write(&not, &bytes[..bytes.len() - 100]).unwrap();
    let e = load_model(&not).unwrap_err().to_string();
    assert!(e.contains("x.gguf"), "{e}");
    // A file with another extension.
    let other = dir.path().join("model.bin");
    std::fs::write(&other, &bytes).unwrap();
    let e = load_model(&other).unwrap_err().to_string();
    assert!(e.contains(".gguf"), "{e}");
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

/// A forward whose states at every position outgrow one storage binding (as SmolLM2's do at
/// 4 x 256 tokens) still returns every slot: the states of a few sequences of the big batch
/// equal those of the same sequences run alone.
#[test]
fn probe_states_beyond_one_binding_are_split() {
    let gpu = gpu();
    let mut c = ModelConfig::llama_like(30, 32, 2, 2, 50);
    c.ff_dim = 64;
    let w = ModelWeights::random(&c, 41).unwrap();
    let n = 8;
    // 2 * 30 + 2 slots of [batch, n, 32] f32 beyond one binding.
    let batch = (gpu.max_binding() as usize / (62 * n * 32 * 4)) + 8;
    let ids: Vec<u32> = (0..batch * n).map(|i| (i * 7 % 50) as u32).collect();
    let probes: Vec<usize> = (0..n).collect();
    let model = GpuModel::new(gpu, &w, Precision::F32).unwrap();
    let big = model
        .forward(
            gpu,
            &ForwardInput::Tokens {
                ids: &ids,
                batch,
                n,
            },
            &probes,
        )
        .unwrap();
    assert!((62 * batch * n * 32 * 4) as u64 > gpu.max_binding());
    let few = 3;
    let small = model
        .forward(
            gpu,
            &ForwardInput::Tokens {
                ids: &ids[..few * n],
                batch: few,
                n,
            },
            &probes,
        )
        .unwrap();
    let head = |v: &[f32]| v[..few * n * 32].to_vec();
    for l in [0, 14, 29] {
        let e = compare(
            &head(&big.hidden[l]),
            &small.hidden[l]
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        );
        assert!(e.rel < 1e-5, "layer {l}: {e}");
        let e = compare(
            &head(&big.attn_out[l]),
            &small.attn_out[l]
                .iter()
                .map(|&v| v as f64)
                .collect::<Vec<_>>(),
        );
        assert!(e.rel < 1e-5, "attn {l}: {e}");
    }
    let f = big.final_norm.as_ref().unwrap();
    assert!(f.iter().all(|v| v.is_finite()), "a slot was never written");
}

/// The model's next-token scores through the LM-head kernel equal the f64 forward's final
/// states scored by the f64 reference, for tied and separate heads.
#[test]
fn next_token_loss_on_the_gpu_matches_the_reference() {
    let gpu = gpu();
    for head in [LmHead::Tied, LmHead::Separate(Vec::new())] {
        let w = small_llama(head);
        let (batch, n, d) = (2, 9, w.config.d_model);
        let ids: Vec<u32> = (0..batch * n).map(|i| (i * 29 % 96) as u32).collect();
        let model = GpuModel::new(gpu, &w, Precision::F32).unwrap();
        let (got, plan) = model.next_token_loss(gpu, &ids, batch, n).unwrap();
        assert_eq!(got.len(), batch * (n - 1) * 4);
        let probes: Vec<usize> = (0..n).collect();
        let input = ForwardInput::Tokens {
            ids: &ids,
            batch,
            n,
        };
        let want = model_ref::forward(&w, &input, &probes).unwrap();
        let states = want.final_norm.unwrap();
        for b in 0..batch {
            let rows: Vec<f32> = states[b * n * d..][..(n - 1) * d]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let scores = reference::next_token_loss(
                w.output_embedding().unwrap(),
                d,
                &rows,
                &ids[b * n + 1..][..n - 1],
            );
            for (t, s) in scores.iter().enumerate() {
                let g = &got[(b * (n - 1) + t) * 4..][..4];
                let close = |a: f32, r: f64| (a as f64 - r).abs() < 1e-4 * (1.0 + r.abs());
                assert!(
                    close(g[0], s.lse) && close(g[1], s.nll) && close(g[2], s.entropy),
                    "window {b} position {t}: {g:?} vs {s:?} ({plan})"
                );
            }
        }
    }
    // A model without a head, and windows with nothing to predict, are refused.
    let mut c = ModelConfig::bert_like(1, 16, 2, 10);
    c.ff_dim = 32;
    let w = ModelWeights {
        lm_head: LmHead::None,
        ..ModelWeights::random(&c, 3).unwrap()
    };
    let model = GpuModel::new(gpu, &w, Precision::F32).unwrap();
    let e = model
        .next_token_loss(gpu, &[1, 2, 3], 1, 3)
        .unwrap_err()
        .to_string();
    assert!(e.contains("output embedding"), "{e}");
    let w = small_llama(LmHead::Tied);
    let model = GpuModel::new(gpu, &w, Precision::F32).unwrap();
    let e = model
        .next_token_loss(gpu, &[1], 1, 1)
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 or more"), "{e}");
    let e = model
        .next_token_loss(gpu, &[1, 500], 1, 2)
        .unwrap_err()
        .to_string();
    assert!(e.contains("500"), "{e}");
}
