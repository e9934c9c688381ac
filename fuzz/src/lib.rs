//! Fuzz targets for every reader of untrusted files, the seeds they start from, and a
//! mutation loop that runs them on the stable toolchain without AFL.
//!
//! A target takes arbitrary bytes and hands them to a reader as a user's file would be: it
//! may return any error, but must not panic, abort, hang or allocate without bound. The
//! same [`run`] serves the AFL++ binary (`cargo xtask fuzz`), the replay of the crashes found
//! so far (`fuzz/regressions/<target>/`, in `tests/replay.rs`) and the short mutation run of
//! `cargo test` (`tests/mutate.rs`).
//!
//! | target | reader |
//! |---|---|
//! | `safetensors` | `model.safetensors` of a BERT, GPT-2 or Llama checkpoint (first byte picks the family's config.json) |
//! | `hf_config` | a checkpoint's `config.json` (beside tensors for all three families) |
//! | `model_config` | a `ModelConfig` JSON (`--config FILE`): parsed, validated, sized |
//! | `gguf` | a GGUF file: header, metadata, tensors, the Llama loader and the tokenizer |
//! | `tokenizer_json` | a checkpoint's `tokenizer.json` (Hugging Face `tokenizers`), then encoding and decoding |
//! | `tokens` | `--tokens` files: a JSON array of ids (first byte even) or id lines (odd) |
//! | `corpus` | a `--text` file: plain text (first byte even) or `.jsonl` (odd) |
//! | `results` | result JSON as resume and report read it: a point file, run.json, a loss run's run.json and window file, summary.json (first byte picks) |

pub mod fixtures;

use std::sync::OnceLock;

use ceiling_core::model::gguf::{self, GgmlType};
use ceiling_core::model::{self, ModelConfig, ModelError, ModelWeights};
use ceiling_core::sweep::{self, results, summary, LengthResult};
use ceiling_core::text;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The targets. `cargo xtask fuzz` reads this list out of this file (it does not depend on
/// this crate), so it keeps the form `pub const TARGETS: [&str; N] = [...]`.
pub const TARGETS: [&str; 8] = [
    "safetensors",
    "hf_config",
    "model_config",
    "gguf",
    "tokenizer_json",
    "tokens",
    "corpus",
    "results",
];

/// Runs `target` on `data`. Errors are the reader's answer and are ignored; a panic is a
/// finding. Unknown targets panic (a harness error, not a finding).
pub fn run(target: &str, data: &[u8]) {
    match target {
        "safetensors" => safetensors_target(data),
        "hf_config" => hf_config_target(data),
        "model_config" => model_config_target(data),
        "gguf" => gguf_target(data),
        "tokenizer_json" => tokenizer_json_target(data),
        "tokens" => tokens_target(data),
        "corpus" => corpus_target(data),
        "results" => results_target(data),
        other => panic!(
            "unknown fuzz target '{other}': one of {}",
            TARGETS.join(", ")
        ),
    }
}

// ---- checkpoints ----

/// Tiny configs of the three checkpoint families.
fn family_configs() -> [String; 3] {
    [
        serde_json::json!({
            "model_type": "bert", "hidden_size": 4, "num_hidden_layers": 1,
            "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 8,
            "vocab_size": 10, "type_vocab_size": 2,
        }),
        serde_json::json!({
            "model_type": "gpt2", "n_embd": 4, "n_layer": 1, "n_head": 1, "n_positions": 8,
            "vocab_size": 10,
        }),
        serde_json::json!({
            "model_type": "llama", "hidden_size": 4, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 8,
            "vocab_size": 10, "max_position_embeddings": 16, "tie_word_embeddings": true,
        }),
    ]
    .map(|v| v.to_string())
}

/// The tensors a config asks for, found by asking the loader: each missing tensor is added
/// (shape [1]), and each tensor of the wrong shape is given the shape it expects, until the
/// checkpoint loads. Zeros throughout.
fn tensors_for(config: &str) -> Vec<(String, Vec<usize>)> {
    let mut tensors: Vec<(String, Vec<usize>)> = Vec::new();
    for _ in 0..200 {
        match model::parse_checkpoint(config, "config.json", &serialize(&tensors), "st") {
            Err(ModelError::Missing(name)) => tensors.push((name, vec![1])),
            Err(ModelError::Shape {
                tensor, expected, ..
            }) => {
                let shape: Vec<usize> = serde_json::from_str(&expected).expect("a shape");
                let t = tensors
                    .iter_mut()
                    .find(|(n, _)| *n == tensor)
                    .expect("a tensor we wrote");
                t.1 = shape;
            }
            _ => break,
        }
    }
    tensors
}

fn serialize(tensors: &[(String, Vec<usize>)]) -> Vec<u8> {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, s)| vec![0u8; 4 * s.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .expect("a view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("serialised")
}

/// A valid model.safetensors per family.
fn family_tensors() -> &'static [Vec<u8>; 3] {
    static T: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    T.get_or_init(|| family_configs().map(|c| serialize(&tensors_for(&c))))
}

/// One safetensors file holding the tensors of all three families.
fn all_tensors() -> &'static [u8] {
    static T: OnceLock<Vec<u8>> = OnceLock::new();
    T.get_or_init(|| {
        let mut all: Vec<(String, Vec<usize>)> = Vec::new();
        for c in family_configs() {
            for t in tensors_for(&c) {
                if !all.iter().any(|(n, _)| *n == t.0) {
                    all.push(t);
                }
            }
        }
        serialize(&all)
    })
}

fn safetensors_target(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let config = &family_configs()[pick as usize % 3];
    let _ = model::parse_checkpoint(config, "config.json", rest, "model.safetensors");
}

fn hf_config_target(data: &[u8]) {
    let Ok(config) = std::str::from_utf8(data) else {
        return;
    };
    let _ = model::parse_checkpoint(config, "config.json", all_tensors(), "model.safetensors");
}

fn model_config_target(data: &[u8]) {
    let Ok(config) = serde_json::from_slice::<ModelConfig>(data) else {
        return;
    };
    if config.validate().is_ok() {
        let _ = config.weight_count();
        let _ = config.weight_bytes();
        let _ = config.max_len();
        let _ = config.head_dim();
    }
}

// ---- GGUF ----

/// A 1-layer Llama of width 32 as GGUF in `dtype`, with the byte-level BPE tokenizer of
/// [`fixtures::bpe_vocab`] (adding `Ġthe` as BOS) when `tokenizer`.
fn small_gguf(dtype: GgmlType, tokenizer: bool) -> Vec<u8> {
    let mut c = ModelConfig::llama_like(1, 32, 2, 1, fixtures::bpe_vocab().0.len());
    c.ff_dim = 32;
    let w = ModelWeights::random(&c, 5).expect("weights");
    let mut writer = gguf::llama_writer(&w, dtype).expect("writer");
    if tokenizer {
        fixtures::add_bpe_tokenizer(&mut writer, Some(258)).expect("metadata");
    }
    writer.to_bytes()
}

fn gguf_target(data: &[u8]) {
    let Ok(file) = gguf::GgufFile::parse(data.to_vec(), "fuzz.gguf") else {
        return;
    };
    let _ = gguf::load_llama(&file);
    if let Ok(tok) = text::Tokenizer::from_gguf(&file, "fuzz.gguf") {
        if let Ok(ids) = tok.encode("the theory of the 20 thesis") {
            let _ = tok.decode(&ids);
        }
        let _ = tok.decode(&[0, 1, 2, u32::MAX]);
    }
}

/// The byte-level BPE tokenizer.json of [`fixtures::bpe_vocab`], which puts its special token
/// first.
fn bpe_json() -> String {
    let end = fixtures::bpe_vocab().0.len() - 1;
    fixtures::bpe_tokenizer_json(serde_json::json!({"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [end],
            "tokens": ["<|endoftext|>"]}}}))
    .to_string()
}

fn tokenizer_json_target(data: &[u8]) {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tok) = text::Tokenizer::from_json(json, "tokenizer.json") {
        if let Ok(ids) = tok.encode("the theory of the 20 thesis <|endoftext|>") {
            let _ = tok.decode(&ids);
        }
        let _ = tok.encode_plain_batch(&["a", "", "\u{e9}t\u{e9}"]);
        let _ = tok.decode(&[0, 1, 2, u32::MAX]);
        let _ = tok.prefix();
        let _ = tok.vocab_size();
    }
}

// ---- token files and corpora ----

fn tokens_target(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let _ = if pick % 2 == 0 {
        text::parse_token_json(text, "tokens.json")
    } else {
        text::parse_token_lines(text, "tokens.txt")
    };
}

fn corpus_target(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let _ = text::documents_of(rest.to_vec(), "corpus", pick % 2 == 1);
}

// ---- result JSON ----

const RUN_JSON: &str = include_str!("../seeds/results/run.json");
const POINT_16: &str = include_str!("../seeds/results/point.json");
const POINT_32: &str = include_str!("../seeds/results/point-32.json");
const SUMMARY: &str = include_str!("../seeds/results/summary.json");

fn base_header() -> results::RunHeader {
    serde_json::from_str(RUN_JSON).expect("the seed run.json")
}

fn base_points() -> Vec<LengthResult> {
    [POINT_16, POINT_32]
        .map(|p| serde_json::from_str(p).expect("a seed point"))
        .to_vec()
}

fn loss_header() -> ceiling_host::loss::LossHeader {
    ceiling_host::loss::LossHeader {
        tool: "ceiling".into(),
        version: "0.1.0".into(),
        adapter: base_header().adapter,
        config: ceiling_host::loss::LossConfig {
            model: "gguf m.gguf".into(),
            input: "tokens t.txt (sha256 00)".into(),
            context: 8,
            windows: 2,
            seed: 0,
            precision: ceiling_host::Precision::F32,
        },
        corpus: None,
    }
}

fn window(index: usize) -> ceiling_host::loss::WindowScores {
    ceiling_host::loss::WindowScores {
        index,
        nll: vec![3.5, 3.0, 2.5, 2.7, 2.2, 2.0, 1.9],
        entropy: vec![4.0, 3.5, 3.0, 3.1, 2.8, 2.5, 2.4],
        top1: vec![0, 1, 0, 1, 1, 0, 1],
    }
}

/// What resume and report do with a point: check it as load_points does, summarise it with
/// the other points of its run (fits, intervals), and write its CSV rows.
fn use_points(header: results::RunHeader, points: Vec<LengthResult>) {
    if results::check_points(&header.config, &points).is_err() {
        return;
    }
    let s = sweep::build_summary(header, points);
    let _ = summary::csv_text(&s);
    let _ = serde_json::to_string(&s);
}

fn results_target(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 5 {
        0 => {
            let Ok(p) = serde_json::from_slice::<LengthResult>(rest) else {
                return;
            };
            let mut header = base_header();
            header.config.lengths.push(p.n);
            let mut points = base_points();
            points.retain(|q| q.n != p.n);
            points.push(p);
            use_points(header, points);
        }
        1 => {
            let Ok(h) = serde_json::from_slice::<results::RunHeader>(rest) else {
                return;
            };
            let base = base_header();
            let _ = base.config.point_differences(&h.config);
            let _ = base.config.union_lengths(&h.config.lengths);
            let _ = h.config.validate();
            use_points(h, base_points());
        }
        2 => {
            let Ok(h) = serde_json::from_slice::<ceiling_host::loss::LossHeader>(rest) else {
                return;
            };
            let _ = h.config == loss_header().config;
        }
        3 => {
            let Ok(w) = serde_json::from_slice::<ceiling_host::loss::WindowScores>(rest) else {
                return;
            };
            let n = w.nll.len() + 1;
            let windows = [w.clone(), window(1)];
            for (n, windows) in [(n, &windows[..1]), (8, &windows[..])] {
                if windows
                    .iter()
                    .enumerate()
                    .all(|(i, w)| ceiling_host::loss::check_window(w, i, n).is_ok())
                {
                    let _ = ceiling_host::loss::loss_curve(windows, 20, 0);
                }
            }
        }
        _ => {
            let _ = serde_json::from_slice::<sweep::Summary>(rest);
        }
    }
}

// ---- seeds ----

/// The inputs each target starts from: valid files of its format (and their variants).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let with = |pick: u8, body: &[u8]| {
        let mut v = vec![pick];
        v.extend_from_slice(body);
        v
    };
    match target {
        "safetensors" => family_tensors()
            .iter()
            .enumerate()
            .map(|(i, t)| with(i as u8, t))
            .collect(),
        "hf_config" => family_configs().map(String::into_bytes).to_vec(),
        "model_config" => [
            ModelConfig::gpt2_like(2, 64, 4, 100),
            ModelConfig::llama_like(2, 64, 4, 2, 100),
            ModelConfig::bert_like(1, 32, 2, 50),
        ]
        .iter()
        .map(|c| serde_json::to_vec(c).expect("config JSON"))
        .collect(),
        "gguf" => vec![
            small_gguf(GgmlType::F32, true),
            small_gguf(GgmlType::Q8_0, false),
            small_gguf(GgmlType::Q4_1, true),
        ],
        "tokenizer_json" => vec![bpe_json().into_bytes()],
        "tokens" => vec![
            with(0, b"[1, 2, 3, 4]"),
            with(0, b"[[1, 2], [3, 4], [5, 6]]"),
            with(1, b"1 2 3\n4 5 6\n\n7 8 9\n"),
        ],
        "corpus" => vec![
            with(0, "In the beginning\nwas the word.\u{e9}\n".as_bytes()),
            with(
                1,
                b"{\"text\": \"first document\"}\n\n{\"text\": \"second\", \"id\": 2}\n",
            ),
        ],
        "results" => {
            let header = serde_json::to_vec(&loss_header()).expect("JSON");
            let window = serde_json::to_vec(&window(0)).expect("JSON");
            vec![
                with(0, POINT_16.as_bytes()),
                with(1, RUN_JSON.as_bytes()),
                with(2, &header),
                with(3, &window),
                with(4, SUMMARY.as_bytes()),
            ]
        }
        other => panic!("unknown fuzz target '{other}'"),
    }
}

// ---- a mutation loop for the stable toolchain ----

/// Numbers that break size arithmetic, as text and as little-endian bytes.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    0x1_0000_0000,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    u64::MAX - 7,
];

/// One mutation of `input` (bit flips, bytes, numbers, cuts, copies, splices with `pool`).
pub fn mutate(rng: &mut ChaCha8Rng, input: &[u8], pool: &[Vec<u8>]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        let at = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..9) {
            0 if len > 0 => v[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => v[at] = rng.random(),
            2 => {
                let k = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let bytes: Vec<u8> = if rng.random() {
                    k.to_le_bytes()[..[1, 2, 4, 8][rng.random_range(0..4)]].to_vec()
                } else {
                    let s = if rng.random() {
                        format!("-{k}")
                    } else {
                        k.to_string()
                    };
                    s.into_bytes()
                };
                let end = (at + bytes.len()).min(len);
                v.splice(at..end, bytes);
            }
            3 if len > 0 => {
                let end = rng.random_range(at..=len.min(at + 64));
                v.drain(at..end);
            }
            4 if len > 0 => {
                let end = rng.random_range(at..=len.min(at + 64));
                let copy = v[at..end].to_vec();
                let to = rng.random_range(0..=v.len());
                v.splice(to..to, copy);
            }
            5 => {
                let other = &pool[rng.random_range(0..pool.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    let end = rng.random_range(from..=other.len().min(from + 256));
                    v.splice(at..at, other[from..end].iter().copied());
                }
            }
            6 => v.truncate(at),
            7 => {
                let text = [
                    "null", "[]", "{}", "\"\"", "1e309", "-0", "NaN", "true", "[[]]", ",",
                ];
                let t = text[rng.random_range(0..text.len())];
                v.splice(at..at, t.bytes());
            }
            _ => {
                let k = rng.random_range(1..=8);
                v.splice(at..at, (0..k).map(|_| rng.random::<u8>()));
            }
        }
    }
    v.truncate(1 << 20);
    v
}

/// Runs `target` on mutations of its seeds (and of the inputs so far) for `seconds`,
/// from `seed`. Returns the executions, or the first input that panicked.
pub fn mutate_for(target: &str, seconds: f64, seed: u64) -> Result<u64, Vec<u8>> {
    let seeds = seeds(target);
    let mut pool = seeds.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let start = std::time::Instant::now();
    let mut execs = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        let base = &pool[rng.random_range(0..pool.len())];
        let input = mutate(&mut rng, base, &seeds);
        let ok = std::panic::catch_unwind(|| run(target, &input)).is_ok();
        execs += 1;
        if !ok {
            return Err(input);
        }
        // Keep a few mutants as bases, so mutations stack up.
        if rng.random_range(0..64) == 0 {
            if pool.len() < 256 {
                pool.push(input);
            } else {
                let i = rng.random_range(seeds.len()..pool.len());
                pool[i] = input;
            }
        }
    }
    Ok(execs)
}
