//! `ceiling emerge`: in-context emergence (claim 3). The induction and few-shot tasks at
//! growing context lengths through a causal language model; per layer the Fisher SNR of the
//! label and a linear read-out's accuracy, the model's own accuracy and label log-probability;
//! then a logistic fit of read-out accuracy against log SNR, and whether one threshold fits
//! every layer and task. Resumable per (task, length); see docs/METHOD.md.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_core::adapter::AdapterSummary;
use ceiling_core::emergence::{threshold_report, AccuracyPoint, ThresholdReport, Verdict};
use ceiling_core::model::load_model;
use ceiling_core::sweep::results::{read_json, write_json};
use ceiling_host::emergence::{self, EmergencePoint, Task, TaskTokens};
use ceiling_host::model::GpuModel;
use ceiling_host::{AdapterRequest, Gpu};
use ceiling_shaders::Precision;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a checkpoint directory of a causal language model.
    #[arg(long)]
    model: PathBuf,
    /// Tasks, comma-separated: induction, fewshot.
    #[arg(long, value_delimiter = ',', default_values = ["induction", "fewshot"], value_parser = Task::parse)]
    tasks: Vec<Task>,
    /// Context lengths in tokens, comma-separated.
    #[arg(long, value_delimiter = ',', default_values = ["8", "16", "32", "64", "128", "256"], value_parser = super::count::<usize>)]
    lengths: Vec<usize>,
    /// Samples per task and length.
    #[arg(long, default_value_t = 256)]
    samples: usize,
    /// Layers probed, comma-separated (default: every layer).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<usize>,
    /// Seed of the samples.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Storage precision of weights and activations: f32 or f16.
    #[arg(long, default_value = "f32")]
    precision: Precision,
    /// Results directory.
    #[arg(long, default_value = "results/emerge")]
    out: PathBuf,
}

/// What fixes every number of a run: a results folder holds one of these (`run.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct EmergeConfig {
    model: String,
    samples: usize,
    layers: Vec<usize>,
    seed: u64,
    precision: Precision,
    tokens: TaskTokens,
}

#[derive(Serialize, Deserialize)]
struct Header {
    tool: String,
    version: String,
    adapter: AdapterSummary,
    config: EmergeConfig,
}

/// `emergence.json`.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    header: &'a Header,
    points: &'a [EmergencePoint],
    /// Read-out accuracy against ln(Fisher SNR), one group per task and layer; chance 0.5.
    threshold: Option<&'a ThresholdReport>,
    /// Why there is no threshold fit, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold_error: Option<String>,
}

fn point_path(dir: &Path, task: Task, n: usize) -> PathBuf {
    dir.join("points")
        .join(format!("{}-n{n:06}.json", task.name()))
}

pub fn run(args: Args, adapter: &AdapterRequest) -> Result<()> {
    let precision = args.precision;
    let tasks = args.tasks.clone();
    let mut lengths = args.lengths.clone();
    lengths.sort_unstable();
    lengths.dedup();
    if args.samples < 8 {
        bail!(
            "--samples {}: the read-out and the SNR need at least 8 samples (256 or more for \
             intervals narrower than the effects)",
            args.samples
        );
    }
    // Everything is read and checked before the adapter is opened.
    let m = load_model(&args.model).with_context(|| format!("loading {}", args.model.display()))?;
    let mc = &m.weights.config;
    if mc.vocab == 0 || m.weights.output_embedding().is_none() {
        bail!(
            "{} has no output embedding (language-model head): the tasks read the model's \
             prediction of the label token, so they need a language model",
            args.model.display()
        );
    }
    if !mc.causal {
        bail!(
            "{} is not causal: the tasks ask for the next token, which a bidirectional model \
             does not predict",
            args.model.display()
        );
    }
    for &task in &tasks {
        if let Some(&n) = lengths.iter().find(|&&n| n < task.min_len()) {
            bail!(
                "--lengths {n}: the {} task needs at least {} tokens",
                task.name(),
                task.min_len()
            );
        }
    }
    if let (Some(max), Some(&longest)) = (mc.max_len(), lengths.last()) {
        if longest > max {
            bail!("--lengths {longest} exceeds the model's {max} positions");
        }
    }
    let layers = if args.layers.is_empty() {
        (0..mc.layers).collect()
    } else {
        args.layers.clone()
    };
    if let Some(&l) = layers.iter().find(|&&l| l >= mc.layers) {
        bail!(
            "layer {l} is beyond the model's {} layers (0..{})",
            mc.layers,
            mc.layers - 1
        );
    }
    let tokens = TaskTokens::for_model(mc.vocab, m.tokenizer.as_ref())?;

    let gpu = Gpu::new(adapter)?;
    let header = Header {
        tool: "ceiling".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        adapter: gpu.summary.clone(),
        config: EmergeConfig {
            model: m.source.clone(),
            samples: args.samples,
            layers: layers.clone(),
            seed: args.seed,
            precision,
            tokens: tokens.clone(),
        },
    };
    start_run(&args.out, &header)?;
    eprintln!(
        "{}: {} on {} ({precision}), {} samples per point; tokens: {}; results in {}",
        m.source,
        tasks
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", "),
        gpu.name(),
        args.samples,
        tokens.source,
        args.out.display()
    );
    let model = GpuModel::new(&gpu, &m.weights, precision)?;
    let mut points = Vec::new();
    for &task in &tasks {
        for &n in &lengths {
            let path = point_path(&args.out, task, n);
            let point: EmergencePoint = if path.exists() {
                let p: EmergencePoint = read_json(&path).with_context(|| {
                    format!("delete {} to measure this point again", path.display())
                })?;
                eprintln!("  {:<9} n = {n:>6}  (resumed from disk)", task.name());
                p
            } else {
                let bar = ProgressBar::new(args.samples as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix} [{bar:30}] {pos}/{len} samples {elapsed}",
                    )?
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{:<9} n = {n:>6}", task.name()));
                let p = emergence::measure_point(
                    &gpu,
                    &model,
                    &tokens,
                    task,
                    n,
                    args.samples,
                    &layers,
                    args.seed,
                    &mut |d| bar.set_position(d as u64),
                )?;
                bar.finish_and_clear();
                write_json(&path, &p)?;
                eprintln!(
                    "  {:<9} n = {n:>6}  model accuracy {:.3}, label log-prob {:.3}  {:.1} s",
                    task.name(),
                    p.model_accuracy,
                    p.label_logprob,
                    p.seconds
                );
                p
            };
            points.push(point);
        }
    }

    let accuracy: Vec<AccuracyPoint> = points
        .iter()
        .flat_map(|p| {
            p.layers.iter().map(move |l| AccuracyPoint {
                group: format!("{}/L{}", p.task.name(), l.layer),
                snr: l.fisher_snr,
                correct: (l.readout_accuracy * l.readout_trials as f64)
                    .round()
                    .max(0.0) as u64,
                trials: l.readout_trials as u64,
            })
        })
        .collect();
    let (threshold, threshold_error) = match threshold_report(&accuracy, 0.5) {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let report = Report {
        header: &header,
        points: &points,
        threshold: threshold.as_ref(),
        threshold_error,
    };
    write_json(&args.out.join("emergence.json"), &report)?;
    write_csv(&args.out.join("emergence.csv"), &points)?;
    print_table(
        &points,
        threshold.as_ref(),
        report.threshold_error.as_deref(),
    );
    Ok(())
}

/// Writes `run.json`, or checks that the folder holds a run of the same configuration
/// (other tasks and lengths may be added to it).
fn start_run(dir: &Path, header: &Header) -> Result<()> {
    let path = dir.join("run.json");
    if path.exists() {
        let old: Header = read_json(&path)?;
        if old.config != header.config {
            bail!(
                "{} holds a run of another configuration (model, samples, layers, seed, \
                 precision or task tokens differ): choose another --out directory",
                dir.display()
            );
        }
        return Ok(());
    }
    write_json(&path, header)?;
    Ok(())
}

fn write_csv(path: &Path, points: &[EmergencePoint]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "task",
        "n",
        "layer",
        "fisher_snr",
        "readout_accuracy",
        "readout_trials",
        "model_accuracy",
        "label_logprob",
        "label_logprob_se",
        "top1_accuracy",
    ])?;
    for p in points {
        for l in &p.layers {
            w.write_record([
                p.task.name().to_string(),
                p.n.to_string(),
                l.layer.to_string(),
                l.fisher_snr.to_string(),
                l.readout_accuracy.to_string(),
                l.readout_trials.to_string(),
                p.model_accuracy.to_string(),
                p.label_logprob.to_string(),
                p.label_logprob_se.to_string(),
                p.top1_accuracy.to_string(),
            ])?;
        }
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    ceiling_core::sweep::results::write_atomic(path, &bytes)?;
    Ok(())
}

fn print_table(points: &[EmergencePoint], t: Option<&ThresholdReport>, error: Option<&str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{:<9} {:>6}  {:>9} {:>8}  {:>12}  layers: Fisher SNR / read-out accuracy",
        "task", "n", "model acc", "top-1", "label ln p"
    );
    for p in points {
        let layers: Vec<String> = p
            .layers
            .iter()
            .map(|l| format!("L{} {:.3}/{:.2}", l.layer, l.fisher_snr, l.readout_accuracy))
            .collect();
        let _ = writeln!(
            out,
            "{:<9} {:>6}  {:>9.3} {:>8.3}  {:>6.3}±{:<5.3}  {}",
            p.task.name(),
            p.n,
            p.model_accuracy,
            p.top1_accuracy,
            p.label_logprob,
            p.label_logprob_se,
            layers.join("  ")
        );
    }
    match (t, error) {
        (Some(t), _) => {
            let _ = writeln!(out, "{}", threshold_text(t));
        }
        (None, Some(e)) => {
            let _ = writeln!(out, "threshold: not fitted ({e})");
        }
        (None, None) => {}
    }
}

/// The threshold fits in words: the shared theta, each group's, and the verdict.
fn threshold_text(t: &ThresholdReport) -> String {
    let fmt = |x: Option<f64>| x.map_or("n/a".to_string(), |v| format!("{v:.1}"));
    let mut lines = vec![format!(
        "threshold (read-out accuracy = 0.5 + 0.5 sigmoid(k (ln SNR - ln theta)), {} points, \
         {} left out): shared theta {:.3} [{:.3}, {:.3}], k {:.2}",
        t.shared.points,
        t.shared.left_out,
        t.shared.theta,
        t.shared_theta_ci.0,
        t.shared_theta_ci.1,
        t.shared.slope
    )];
    for (group, fit, ci) in &t.per_group {
        lines.push(format!(
            "  {group:<14} theta {:.3} [{:.3}, {:.3}], k {:.2}",
            fit.theta, ci.0, ci.1, fit.slope
        ));
    }
    let verdict = match t.one_threshold {
        Verdict::OneThresholdFits => "one threshold fits every layer and task",
        Verdict::ThresholdsDiffer => "the thresholds differ",
        Verdict::Undecided => "undecided",
    };
    lines.push(format!(
        "  AICc shared {} vs per group {}, likelihood-ratio p {}: {verdict}{}",
        fmt(t.aicc_shared),
        fmt(t.aicc_separate),
        // A p of 1e-9 is not "0.000".
        if t.lr_p_value < 1e-3 {
            format!("{:.1e}", t.lr_p_value)
        } else {
            format!("{:.3}", t.lr_p_value)
        },
        if t.note.is_empty() {
            String::new()
        } else {
            format!(" ({})", t.note)
        }
    ));
    lines.join("\n")
}
