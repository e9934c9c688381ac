//! `ceiling hidden`: per-layer hidden states of a model for given token ids, windows of real
//! text or random inputs, written as safetensors, for diffing against another
//! implementation; with the mean next-token loss when the model has a language-model head.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ceiling_core::memory;
use ceiling_core::model::{
    load_model, reference, ModelConfig, ModelWeights, ProbeStates, RandomInput,
};
use ceiling_core::text::TokenizedCorpus;
use ceiling_host::model::GpuModel;
use ceiling_shaders::Precision;

use super::tensors::Output;

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// A GGUF file (llama architecture) or a Hugging Face checkpoint directory
    /// (config.json + model.safetensors; BERT, GPT-2 or Llama).
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    model: Option<PathBuf>,
    /// A ceiling model config (JSON); weights are drawn from --seed.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Token ids: a JSON array of ids (one sequence) or an array of equal-length arrays.
    /// Without it, random inputs of --batch x --n are drawn from --seed.
    #[arg(long, conflicts_with = "text")]
    tokens: Option<PathBuf>,
    /// Real text: a UTF-8 file, a folder of .txt/.md files, or a .jsonl file with a "text"
    /// field per line. --batch windows of --n tokens at offsets drawn from --seed.
    #[arg(long)]
    text: Option<PathBuf>,
    /// Seed of random weights and random inputs.
    #[arg(long, default_value_t = 0, value_parser = super::count::<u64>)]
    seed: u64,
    /// Sequences of random inputs or text windows.
    #[arg(long, default_value_t = 1, value_parser = super::count::<usize>)]
    batch: usize,
    /// Length of random inputs or text windows (special tokens such as BOS included).
    #[arg(long, default_value_t = 16, value_parser = super::count::<usize>)]
    n: usize,
    /// Positions to keep, comma-separated (default: every position).
    #[arg(long, value_delimiter = ',', value_parser = super::count::<usize>)]
    positions: Option<Vec<usize>>,
    /// Storage precision of weights and activations: f32 or f16.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Also run the f64 CPU reference and print the relative error per layer (slow on big models).
    #[arg(long)]
    check: bool,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<(Vec<u32>, usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let w = ceiling_core::text::parse_token_json(&text, &path.display().to_string())?;
    Ok((w.ids, w.windows, w.n))
}

pub fn run(args: Args, adapter: &ceiling_host::AdapterRequest) -> anyhow::Result<()> {
    // The output is checked before any model is loaded or run.
    super::kernel::check_output_path(&args.out, "--out")?;
    for (flag, input) in [
        ("--model", &args.model),
        ("--config", &args.config),
        ("--tokens", &args.tokens),
        ("--text", &args.text),
    ] {
        if let Some(path) = input {
            if super::kernel::same_file(path, &args.out) {
                bail!(
                    "--out {} is the {flag} file: writing it would destroy that input; choose \
                     another --out",
                    args.out.display()
                );
            }
        }
    }
    let precision = args.precision;
    let (weights, tokenizer, source) = match (&args.model, &args.config) {
        (Some(path), _) => {
            let start = std::time::Instant::now();
            let m = load_model(path).with_context(|| format!("loading {}", path.display()))?;
            eprintln!(
                "loaded {} in {:.2} s",
                m.source,
                start.elapsed().as_secs_f64()
            );
            (m.weights, m.tokenizer, m.source)
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config: ModelConfig = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid model config", path.display()))?;
            (
                ModelWeights::random(&config, args.seed)?,
                None,
                format!("config {} seed {}", path.display(), args.seed),
            )
        }
        (None, None) => bail!("give --model PATH or --config FILE"),
    };
    let config = &weights.config;
    check_sizes(&args, config)?;
    let mut corpus = None;
    let (input, batch, n) = match (&args.tokens, &args.text) {
        (Some(path), _) => {
            let (ids, batch, n) = read_tokens(path)?;
            (RandomInput::Tokens(ids), batch, n)
        }
        (None, Some(path)) => {
            let Some(tokenizer) = &tokenizer else {
                bail!("--text needs a model with a tokenizer (a GGUF file, or a checkpoint with tokenizer.json)");
            };
            // Read, tokenise and check the corpus before any GPU work.
            let mut c = TokenizedCorpus::load(path, tokenizer)?;
            c.prepare(args.n)?;
            let ids = c.windows(args.n, args.batch, args.seed)?;
            corpus = Some(c.info);
            (RandomInput::Tokens(ids), args.batch, args.n)
        }
        (None, None) => (
            RandomInput::draw(config, args.batch, args.n, args.seed.wrapping_add(1)),
            args.batch,
            args.n,
        ),
    };
    if let (RandomInput::Tokens(ids), true) = (&input, config.vocab > 0) {
        if let Some(bad) = ids.iter().find(|&&t| t as usize >= config.vocab) {
            bail!(
                "token id {bad} is outside the model's vocabulary of {}",
                config.vocab
            );
        }
    }
    let positions = args.positions.clone().unwrap_or_else(|| (0..n).collect());
    let gpu = ceiling_host::Gpu::new(adapter)?;
    let model = GpuModel::new(&gpu, &weights, precision)?;
    let states = model.forward(&gpu, &input.as_input(batch, n), &positions)?;
    eprintln!(
        "{} layers, d_model {}, batch {batch} x n {n}, {} positions on {} ({precision})",
        config.layers,
        config.d_model,
        positions.len(),
        gpu.name()
    );
    let want = match args.check {
        true => Some(reference::forward(
            &weights,
            &input.as_input(batch, n),
            &positions,
        )?),
        false => None,
    };
    if let Some(want) = &want {
        for (l, (g, c)) in states.hidden.iter().zip(&want.hidden).enumerate() {
            eprintln!(
                "layer {l}: hidden {}, attn_out {}",
                ceiling_core::reference::compare(g, c),
                ceiling_core::reference::compare(&states.attn_out[l], &want.attn_out[l])
            );
        }
    }
    // Next-token loss at every position but the last, from the final-norm states.
    let mut loss = None;
    if let (RandomInput::Tokens(ids), Some(head), Some(last)) =
        (&input, weights.output_embedding(), &states.final_norm)
    {
        if positions.len() == n && positions.iter().enumerate().all(|(i, &p)| i == p) && n > 1 {
            let nll = |rows: &[f32]| mean_next_token_nll(head, config.d_model, rows, ids, batch, n);
            let gpu_nll = nll(last);
            eprintln!(
                "mean next-token loss over {} predictions: {gpu_nll:.4} nats",
                batch * (n - 1)
            );
            if let Some(cpu) = want.as_ref().and_then(|w| w.final_norm.as_ref()) {
                let rows: Vec<f32> = cpu.iter().map(|&v| v as f32).collect();
                eprintln!("  f64 reference forward: {:.4} nats", nll(&rows));
            }
            loss = Some(gpu_nll);
        }
    }
    let mut meta = HashMap::new();
    meta.insert("config".into(), serde_json::to_string(config)?);
    meta.insert("source".into(), source);
    meta.insert("adapter".into(), serde_json::to_string(&gpu.summary)?);
    meta.insert("precision".into(), precision.to_string());
    meta.insert("seed".into(), args.seed.to_string());
    meta.insert("positions".into(), serde_json::to_string(&positions)?);
    meta.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
    if let Some(c) = &corpus {
        meta.insert("corpus".into(), serde_json::to_string(c)?);
    }
    if let Some(l) = loss {
        meta.insert("mean_next_token_nll".into(), l.to_string());
    }
    meta.insert(
        "layout".into(),
        "embeddings, hidden.L, attn_out.L, final_norm: [batch, positions, d_model]; \
         n_eff.L, entropy.L: [batch, heads, positions]"
            .into(),
    );
    write_states(&args.out, &states, meta)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

/// Refuses --batch and --n that the model cannot take or the host cannot hold, in checked
/// arithmetic, before any input is drawn or read.
fn check_sizes(args: &Args, config: &ModelConfig) -> anyhow::Result<()> {
    let (batch, n) = (args.batch, args.n);
    if batch == 0 || n == 0 {
        bail!("--batch {batch} and --n {n} must both be at least 1");
    }
    if let Some(max) = config.max_len() {
        if n > max && args.tokens.is_none() {
            bail!("--n {n} exceeds the model's {max} learned positions: use --n {max} or less");
        }
    }
    let d = config.d_model as u64;
    let positions = args.positions.as_ref().map_or(n, Vec::len) as u64;
    let layers = config.layers as u64;
    // Inputs (ids, or vectors of width d), the states kept at the positions (embeddings,
    // hidden and attention output per layer, final norm) and their attention statistics.
    let input = memory::product(&[
        batch as u64,
        n as u64,
        if config.vocab > 0 { 1 } else { d },
        4,
    ]);
    let states = memory::product(&[batch as u64, positions, d, 4, 2 * layers + 2]);
    let stats = memory::product(&[batch as u64, positions, config.heads as u64, 8, layers]);
    let total = [input, states, stats]
        .into_iter()
        .try_fold(0u64, |acc, b| acc.checked_add(b?));
    memory::check_host(
        &format!(
            "--batch {batch} x --n {n} ({positions} positions kept, d_model {d}, {layers} layers): \
             the inputs and states"
        ),
        total,
        "use a smaller --batch or --n, or keep fewer --positions",
    )
    .map_err(anyhow::Error::msg)
}

/// Mean over sequences and positions t < n-1 of -log p(ids[t+1]) from final-norm states
/// [batch, n, d].
fn mean_next_token_nll(
    head: &[f32],
    d: usize,
    states: &[f32],
    ids: &[u32],
    batch: usize,
    n: usize,
) -> f64 {
    let mut rows = Vec::with_capacity(batch * (n - 1) * d);
    let mut targets = Vec::with_capacity(batch * (n - 1));
    for b in 0..batch {
        rows.extend_from_slice(&states[b * n * d..][..(n - 1) * d]);
        targets.extend_from_slice(&ids[b * n + 1..][..n - 1]);
    }
    let losses = ceiling_core::reference::next_token_loss(head, d, &rows, &targets);
    losses.iter().map(|l| l.nll).sum::<f64>() / losses.len() as f64
}

fn write_states(
    path: &Path,
    s: &ProbeStates<f32>,
    meta: HashMap<String, String>,
) -> anyhow::Result<()> {
    let rows = vec![s.batch, s.probes.len(), s.d_model];
    let spread = vec![s.batch, s.heads, s.probes.len()];
    let f32s = |name: String, shape: &Vec<usize>, v: &[f32]| {
        Output::new(name, shape.clone(), v.to_vec(), Precision::F32)
    };
    let mut outputs = vec![f32s("embeddings".into(), &rows, &s.embeddings)];
    for l in 0..s.hidden.len() {
        outputs.push(f32s(format!("hidden.{l}"), &rows, &s.hidden[l]));
        outputs.push(f32s(format!("attn_out.{l}"), &rows, &s.attn_out[l]));
        outputs.push(f32s(format!("n_eff.{l}"), &spread, &s.n_eff[l]));
        outputs.push(f32s(format!("entropy.{l}"), &spread, &s.entropy[l]));
    }
    if let Some(f) = &s.final_norm {
        outputs.push(f32s("final_norm".into(), &rows, f));
    }
    super::tensors::write_atomic(path, "--out", &outputs, meta)
}
