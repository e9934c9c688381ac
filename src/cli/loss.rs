//! `ceiling loss`: next-token loss along the context. S windows of N tokens of real text
//! (or given token ids), one causal forward each, the loss at every position from the
//! LM-head kernel; per-position means with bootstrap intervals over windows, written as
//! JSON, CSV and plots. Resumable per window.

use ceiling_core::stats::{quantile, QuantileRule};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_core::curve::{compare_curves, CurveComparison};
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
    precision: Precision,
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
    /// The loss curve in log-spaced bins of positions (x: mean position, y: mean loss), as
    /// fitted.
    fit_points: &'a [(f64, f64)],
    /// L = A t^-alpha and L = E + A t^-alpha over `fit_points`, with intervals from the
    /// window bootstrap; None when the curve is too short to fit.
    fits: Option<&'a CurveComparison>,
}

/// Log-spaced bins of positions: each bin's mean position and mean of `y`, so that every
/// factor of the context weighs the same in a fit (and 1023 noisy points become ~40).
fn log_bins(y: &[f64], bins: usize) -> Vec<(f64, f64)> {
    let len = y.len();
    let mut out = Vec::new();
    let mut start = 0;
    for b in 1..=bins {
        let end = ((len as f64).powf(b as f64 / bins as f64).round() as usize).clamp(start, len);
        if end > start {
            let pos = (start + 1..=end).map(|t| t as f64).sum::<f64>() / (end - start) as f64;
            let mean = y[start..end].iter().sum::<f64>() / (end - start) as f64;
            out.push((pos, mean));
            start = end;
        }
    }
    out
}

/// Bootstrap replicates used for the fits' intervals (each is one refit of both forms).
const FIT_REPLICATES: usize = 200;
const FIT_BINS: usize = 40;

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// One window of ids per line, all lines as long.
fn read_token_lines(path: &Path) -> Result<(Vec<u32>, usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let w = ceiling_core::text::parse_token_lines(&text, &path.display().to_string())?;
    Ok((w.ids, w.n, w.windows))
}

pub fn run(args: Args, adapter: &AdapterRequest) -> Result<()> {
    let precision = args.precision;
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
            precision,
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
    let (curve, replicates) = loss::loss_curve(&scores, args.bootstrap, args.seed);
    let fit_points = log_bins(&curve.nll_mean, FIT_BINS);
    let fit_replicates: Vec<Vec<(f64, f64)>> = replicates
        .iter()
        .take(FIT_REPLICATES)
        .map(|r| log_bins(r, FIT_BINS))
        .collect();
    let fits = match compare_curves(&fit_points, &fit_replicates) {
        Ok(f) => Some(f),
        Err(e) => {
            eprintln!("note: no fit of the loss curve: {e}");
            None
        }
    };
    let summary = Summary {
        header: &header,
        lm_head_plan: plan,
        curve: &curve,
        fit_points: &fit_points,
        fits: fits.as_ref(),
    };
    ceiling_core::sweep::results::write_json(&args.out.join("summary.json"), &summary)?;
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
    if let Some(f) = &fits {
        println!("fits of the curve in {FIT_BINS} log-spaced bins of positions t:");
        println!("{}", f.report("t"));
    }
    // The binned curve with percentile intervals from the same window resamples.
    let binned: Vec<(f64, f64, f64, f64)> = fit_points
        .iter()
        .enumerate()
        .map(|(i, &(x, y))| {
            let mut col: Vec<f64> = fit_replicates.iter().map(|r| r[i].1).collect();
            col.sort_by(f64::total_cmp);
            // No replicates: the point itself.
            let q = |p: f64| {
                if col.is_empty() {
                    y
                } else {
                    quantile(&col, p, QuantileRule::Nearest)
                }
            };
            (x, y, q(0.025), q(0.975))
        })
        .collect();
    crate::plot::after_results("loss", || {
        loss_plot(&args.out, &binned, curve.positions.len(), fits.as_ref())
    });
    eprintln!(
        "results: {} (summary.json, loss.csv, loss.svg/png)",
        args.out.display()
    );
    Ok(())
}

fn write_csv(path: &Path, c: &LossCurve) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
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
    let bytes = w.into_inner().context("encoding loss.csv")?;
    ceiling_core::files::write_atomic(path, &bytes)
        .with_context(|| format!("writing {} (nothing was written)", path.display()))?;
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Loss against position on log-log axes: the binned curve that was fitted (95% intervals
/// from the window resamples) and both fits over positions 1..=`last`.
fn loss_plot(
    dir: &Path,
    binned: &[(f64, f64, f64, f64)],
    last: usize,
    fits: Option<&CurveComparison>,
) -> Result<()> {
    let series = vec![crate::plot::Series {
        label: "mean loss, log-spaced bins of positions (95% CI over windows)".into(),
        points: binned.to_vec(),
        curves: Vec::new(),
    }];
    let mut series = series;
    if let Some(f) = fits {
        let last = last as f64;
        for (label, fit) in [
            (
                format!("power law: alpha {:.3}", f.power_law.alpha),
                &f.power_law,
            ),
            (
                format!(
                    "E + A t^-alpha: E {:.3}, alpha {:.3}",
                    f.pedestal.e, f.pedestal.alpha
                ),
                &f.pedestal,
            ),
        ] {
            let points = (0..50)
                .map(|k| {
                    let t = last.powf(k as f64 / 49.0);
                    let y = fit.e + fit.a * t.powf(-fit.alpha);
                    (t, y, y, y)
                })
                .collect();
            series.push(crate::plot::Series {
                label,
                points,
                curves: Vec::new(),
            });
        }
    }
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
