//! `ceiling loss`: next-token loss along the context. S windows of N tokens of real text
//! (or given token ids), one causal forward each, the loss at every position from the
//! LM-head kernel; per-position means with bootstrap intervals over windows, written as
//! JSON, CSV and plots. Resumable per window.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_core::model::load_model;
use ceiling_core::text::TokenizedCorpus;
use ceiling_host::loss::{self, LossConfig, LossCurve, LossHeader};
use ceiling_host::model::GpuModel;
use ceiling_host::{AdapterRequest, Gpu};
use ceiling_shaders::Precision;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a checkpoint directory of a model with a language-model head.
    #[arg(long)]
    model: PathBuf,
    /// Real text: a UTF-8 file, a folder of .txt/.md/.jsonl files, or a .jsonl file with a
    /// "text" field per line; windows start at offsets drawn from --seed.
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    text: Option<PathBuf>,
    /// Token ids instead: one window per line, ids separated by spaces (all lines as long).
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Tokens per window (N); with --tokens, the length of its lines.
    #[arg(long)]
    context: Option<usize>,
    /// Windows (S); with --tokens, its lines.
    #[arg(long, default_value_t = 64)]
    windows: usize,
    /// Seed of the window offsets and of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Bootstrap resamples of the windows for the intervals.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Storage precision of weights and activations: f32 or f16.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Results directory.
    #[arg(long, default_value = "results/loss")]
    out: PathBuf,
}

/// `summary.json`.
#[derive(Serialize)]
struct Summary<'a> {
    #[serde(flatten)]
    header: &'a LossHeader,
    lm_head_plan: Option<String>,
    #[serde(flatten)]
    curve: &'a LossCurve,
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// One window of ids per line, all lines as long.
fn read_token_lines(path: &Path) -> Result<(Vec<u32>, usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut ids = Vec::new();
    let mut n = None;
    let mut windows = 0;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row: Vec<u32> = line
            .split_whitespace()
            .map(|t| {
                t.parse().with_context(|| {
                    format!("{}:{}: '{t}' is not a token id", path.display(), i + 1)
                })
            })
            .collect::<Result<_>>()?;
        match n {
            None => n = Some(row.len()),
            Some(n) if n != row.len() => bail!(
                "{}:{}: {} ids where the first window has {n}: every line is one window of \
                 the same length",
                path.display(),
                i + 1,
                row.len()
            ),
            _ => {}
        }
        ids.extend(row);
        windows += 1;
    }
    let Some(n) = n else {
        bail!("{} holds no token ids", path.display());
    };
    Ok((ids, n, windows))
}

pub fn run(args: Args, adapter: &AdapterRequest) -> Result<()> {
    let precision = match args.precision.as_str() {
        "f32" => Precision::F32,
        "f16" => Precision::F16,
        p => bail!("--precision must be f32 or f16, got '{p}'"),
    };
    // Everything is read and checked before the adapter is opened.
    let m = load_model(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let config = &m.weights.config;
    if m.weights.output_embedding().is_none() {
        bail!(
            "{} has no output embedding (language-model head): next-token loss needs a \
             causal language model",
            args.model.display()
        );
    }
    let (ids, n, windows, input, corpus) = match (&args.text, &args.tokens) {
        (Some(path), _) => {
            let Some(n) = args.context else {
                bail!("give --context N, the tokens per window");
            };
            let Some(tok) = &m.tokenizer else {
                bail!(
                    "{} has no tokenizer to read --text with",
                    args.model.display()
                );
            };
            let mut c = TokenizedCorpus::load(path, tok)?;
            c.prepare(n)?;
            if args.windows == 0 {
                bail!("--windows must be at least 1");
            }
            let ids = c.windows(n, args.windows, args.seed)?;
            let input = format!("text {} (sha256 {})", path.display(), c.info.sha256);
            (ids, n, args.windows, input, Some(c.info))
        }
        (None, Some(path)) => {
            let (ids, n, windows) = read_token_lines(path)?;
            if let Some(c) = args.context.filter(|&c| c != n) {
                bail!(
                    "--context {c} but the windows of {} have {n} ids",
                    path.display()
                );
            }
            let input = format!("tokens {} (sha256 {})", path.display(), sha256_of(path)?);
            (ids, n, windows, input, None)
        }
        (None, None) => bail!("give --text PATH or --tokens FILE"),
    };
    if n < 2 {
        bail!("windows of {n} token(s) hold no next token to predict: use --context 2 or more");
    }
    if let Some(max) = config.max_len() {
        if n > max {
            bail!("--context {n} exceeds the model's {max} positions");
        }
    }
    if let Some((i, bad)) = ids
        .iter()
        .enumerate()
        .find(|(_, &t)| t as usize >= config.vocab)
    {
        bail!(
            "token id {bad} (window {}, position {}) is outside the model's vocabulary of {}",
            i / n,
            i % n,
            config.vocab
        );
    }

    let gpu = Gpu::new(adapter)?;
    let header = LossHeader {
        tool: "ceiling".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        adapter: gpu.summary.clone(),
        config: LossConfig {
            model: m.source.clone(),
            input,
            context: n,
            windows,
            seed: args.seed,
            precision: precision.to_string(),
        },
        corpus,
    };
    loss::start_run(&args.out, &header)?;
    eprintln!(
        "{}: {windows} windows of {n} tokens on {} ({precision}), results in {}",
        m.source,
        gpu.name(),
        args.out.display()
    );
    let model = GpuModel::new(&gpu, &m.weights, precision)?;
    // About 4096 tokens per forward.
    let batch = (4096 / n).clamp(1, windows);
    let bar = ProgressBar::new(windows as u64);
    bar.set_style(
        ProgressStyle::with_template("  [{bar:30}] {pos}/{len} windows {elapsed} (eta {eta})")
            .unwrap()
            .progress_chars("=> "),
    );
    let plan = loss::run_windows(&gpu, &model, &ids, n, batch, &args.out, &mut |done| {
        bar.set_position(done as u64)
    })?;
    bar.finish_and_clear();

    let scores = loss::load_windows(&args.out, windows, n)?;
    let (curve, _replicates) = loss::loss_curve(&scores, args.bootstrap, args.seed);
    let summary = Summary {
        header: &header,
        lm_head_plan: plan,
        curve: &curve,
    };
    ceiling_host::sweep::results::write_json(&args.out.join("summary.json"), &summary)?;
    write_csv(&args.out.join("loss.csv"), &curve)?;
    println!(
        "mean next-token loss {:.4} nats over {} windows x {} positions; by position:",
        curve.mean_nll,
        curve.windows,
        n - 1
    );
    println!(
        "{:>8}  {:>8}  {:>19}  {:>8}  {:>6}",
        "position", "loss", "95% CI", "entropy", "top-1"
    );
    let mut t = 1;
    while t < n {
        let i = t - 1;
        println!(
            "{t:>8}  {:>8.4}  [{:>8.4}, {:>8.4}]  {:>8.4}  {:>6.3}",
            curve.nll_mean[i],
            curve.nll_lo[i],
            curve.nll_hi[i],
            curve.entropy_mean[i],
            curve.top1_accuracy[i]
        );
        t *= 2;
    }
    crate::plot::after_results("loss", || loss_plot(&args.out, &curve));
    eprintln!(
        "results: {} (summary.json, loss.csv, loss.svg/png)",
        args.out.display()
    );
    Ok(())
}

fn write_csv(path: &Path, c: &LossCurve) -> Result<()> {
    let tmp = path.with_extension("csv.tmp");
    let mut w =
        csv::Writer::from_path(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    w.write_record([
        "position",
        "nll_mean",
        "nll_lo",
        "nll_hi",
        "entropy_mean",
        "top1_accuracy",
    ])?;
    for i in 0..c.positions.len() {
        w.write_record([
            c.positions[i].to_string(),
            c.nll_mean[i].to_string(),
            c.nll_lo[i].to_string(),
            c.nll_hi[i].to_string(),
            c.entropy_mean[i].to_string(),
            c.top1_accuracy[i].to_string(),
        ])?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Loss against position on log-log axes, at about 60 log-spaced positions.
fn loss_plot(dir: &Path, c: &LossCurve) -> Result<()> {
    let len = c.positions.len();
    let mut picks: Vec<usize> = (0..60)
        .map(|k| ((len as f64).powf(k as f64 / 59.0).round() as usize).clamp(1, len) - 1)
        .collect();
    picks.dedup();
    let series = vec![crate::plot::Series {
        label: "mean next-token loss (95% CI over windows)".into(),
        points: picks
            .iter()
            .map(|&i| {
                (
                    c.positions[i] as f64,
                    c.nll_mean[i],
                    c.nll_lo[i],
                    c.nll_hi[i],
                )
            })
            .collect(),
        fit: None,
    }];
    crate::plot::loglog(
        &dir.join("loss"),
        &crate::plot::Labels {
            title: "next-token loss along the context",
            x: "position (tokens of context)",
            y: "loss (nats)",
        },
        &series,
        None,
    )?;
    Ok(())
}
