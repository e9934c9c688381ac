//! `ceiling sweep`: context-length sweeps of the controls, with a progress bar per length,
//! a table of fits at the end, and a results directory (JSON, CSV, SVG and PNG plots).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use ceiling_core::curve::Choice;
use ceiling_core::process::Process;
use ceiling_host::sweep::{
    self, LengthResult, ModelSpec, Preset, Probe, Shard, Summary, SweepConfig, TextSpec,
};
use ceiling_host::{AdapterRequest, Gpu};
use ceiling_shaders::Precision;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// Presets to run, comma-separated: clt, ar1, sharp, sink, heavy, lrd, model.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "clt,ar1,sharp,sink,heavy,lrd"
    )]
    preset: Vec<String>,
    /// Context lengths, comma-separated (default: doubling from --min-n to --max-n).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["min_n", "max_n"], value_parser = super::count::<usize>)]
    lengths: Vec<usize>,
    /// Shortest context length of the doubling grid.
    #[arg(long, default_value_t = 16, value_parser = super::count::<usize>)]
    min_n: usize,
    /// Longest context length of the doubling grid.
    #[arg(long, default_value_t = 2048, value_parser = super::count::<usize>)]
    max_n: usize,
    /// Independent samples per context length.
    #[arg(long, default_value_t = 256, value_parser = super::count::<usize>)]
    samples: usize,
    /// Width of the inputs and of the attention head.
    #[arg(long, default_value_t = 32, value_parser = super::count::<usize>)]
    d_model: usize,
    /// Input process, overriding the preset's: gaussian, ar1:RHO, student-t:DF, cauchy,
    /// fgn:HURST, planted:STRENGTH. Only with a single preset.
    #[arg(long)]
    process: Option<String>,
    /// Multiplier on the 1/sqrt(d) logit scale, overriding the preset's.
    #[arg(long)]
    logit_gain: Option<f64>,
    /// Seed of weights and inputs.
    #[arg(long, default_value_t = 0, value_parser = super::count::<u64>)]
    seed: u64,
    /// Store tensors as f16 (f32 arithmetic).
    #[arg(long)]
    f16: bool,
    /// Bootstrap replicates per length.
    #[arg(long, default_value_t = 200, value_parser = super::count::<usize>)]
    bootstrap: usize,
    /// SNR threshold for the emergence point.
    #[arg(long, default_value_t = 1.0)]
    theta: f64,
    /// Results directory; each preset gets a folder inside it.
    #[arg(long, default_value = "results/sweep")]
    out: PathBuf,
    /// The `model` preset's model: a GGUF file (llama architecture) or a Hugging Face
    /// directory (config.json + model.safetensors; BERT, GPT-2, Llama).
    #[arg(long, conflicts_with = "config")]
    model: Option<PathBuf>,
    /// The `model` preset's input: windows of real text read by the model's tokenizer, from
    /// a UTF-8 file, a folder of .txt/.md files, or a .jsonl file with a "text" field.
    #[arg(long, requires = "model", conflicts_with = "unigram")]
    text: Option<PathBuf>,
    /// The `model` preset's model: a ModelConfig JSON file, weights drawn from --seed.
    /// Without --model or --config: a 2-layer GPT-2-like model of width 64 fed the process.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Token models of the `model` preset: a JSON array of weights, one per token of the
    /// vocabulary, to draw input ids from (default: uniform).
    #[arg(long)]
    unigram: Option<PathBuf>,
    /// Where the `model` preset probes each sample: `last` (the last token of the n-token
    /// window) or `suffix:TEXT` (TEXT, tokenised by the model's tokenizer without BOS, is
    /// appended after the n context tokens; the probe is its last token, so only the
    /// context varies between samples). A suffix needs a model with a tokenizer; with
    /// --text the context is real text, without it random ids.
    #[arg(long, default_value = "last")]
    probe: String,
    /// Layers probed by the `model` preset, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_parser = super::count::<usize>)]
    layers: Vec<usize>,
    /// Run part k of N of the grid of lengths (merge the parts with `ceiling report`).
    #[arg(long, default_value = "0/1")]
    shard: String,
}

/// Builds the configuration of every preset, refusing bad input before any GPU work.
fn configs(args: &Args) -> Result<Vec<SweepConfig>> {
    let probe = Probe::parse(&args.probe).map_err(|e| anyhow::anyhow!("--probe: {e}"))?;
    let presets = args
        .preset
        .iter()
        .map(|p| Preset::parse(p.trim()).map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    if presets.is_empty() {
        bail!("no preset given: use --preset clt (or several, comma-separated)");
    }
    if args.process.is_some() && presets.len() > 1 {
        bail!("--process overrides the input of one preset; give a single --preset with it");
    }
    if args.min_n == 0 || args.min_n > args.max_n {
        bail!(
            "--min-n {} and --max-n {}: need 1 <= min-n <= max-n",
            args.min_n,
            args.max_n
        );
    }
    let lengths = if args.lengths.is_empty() {
        std::iter::successors(Some(args.min_n), |&n| n.checked_mul(2))
            .take_while(|&n| n <= args.max_n)
            .collect()
    } else {
        args.lengths.clone()
    };
    presets
        .into_iter()
        .map(|preset| {
            let mut cfg = SweepConfig::for_preset(preset);
            cfg.lengths = lengths.clone();
            cfg.samples = args.samples;
            cfg.d_model = args.d_model;
            cfg.seed = args.seed;
            cfg.bootstrap = args.bootstrap;
            cfg.theta = args.theta;
            cfg.precision = if args.f16 {
                Precision::F16
            } else {
                Precision::F32
            };
            if let Some(p) = &args.process {
                cfg.process = p.parse::<Process>()?;
            }
            if let Some(g) = args.logit_gain {
                cfg.logit_gain = g;
            }
            cfg.layers = args.layers.clone();
            cfg.probe = probe.clone();
            if let Some(file) = &args.unigram {
                if preset != Preset::Model {
                    bail!("--unigram belongs to --preset model");
                }
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading the unigram file {}", file.display()))?;
                cfg.unigram = Some(serde_json::from_str(&text).with_context(|| {
                    format!("{} is not a JSON array of weights", file.display())
                })?);
            }
            if let Some(path) = &args.text {
                if preset != Preset::Model {
                    bail!("--text belongs to --preset model");
                }
                let (_, info) = ceiling_core::text::read_corpus(path)?;
                cfg.text = Some(TextSpec {
                    path: path.display().to_string(),
                    sha256: info.sha256,
                });
            }
            cfg.model = model_spec(args, preset, &lengths)?;
            if let Some(ModelSpec::Random { config }) = &cfg.model {
                cfg.d_model = config.d_model;
            }
            cfg.validate()?;
            Ok(cfg)
        })
        .collect()
}

/// The model of the `model` preset, from --model or --config (or the default).
fn model_spec(args: &Args, preset: Preset, lengths: &[usize]) -> Result<Option<ModelSpec>> {
    if preset != Preset::Model {
        if args.model.is_some() || args.config.is_some() {
            bail!("--model and --config belong to --preset model");
        }
        return Ok(None);
    }
    Ok(Some(match (&args.model, &args.config) {
        (Some(dir), _) => ModelSpec::Checkpoint {
            path: dir.display().to_string(),
        },
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading the model config {}", file.display()))?;
            let config = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid model config", file.display()))?;
            ModelSpec::Random { config }
        }
        (None, None) => ModelSpec::default_random(lengths.iter().copied().max().unwrap_or(1)),
    }))
}

pub fn run(args: Args, adapter: &AdapterRequest) -> Result<()> {
    let configs = configs(&args)?;
    let shard = Shard::parse(&args.shard).map_err(anyhow::Error::msg)?;
    // Model files and shapes are checked before the adapter is opened; what feeds each
    // preset's samples is said as it starts.
    let mut inputs = Vec::new();
    for cfg in &configs {
        let model = sweep::load_model(cfg)?;
        let tokens = model.as_ref().is_some_and(|m| m.weights.config.vocab > 0);
        let mut input = match &cfg.text {
            Some(t) => format!("text {}", t.path),
            None if tokens && cfg.unigram.is_some() => "random ids (--unigram)".to_string(),
            None if tokens => "uniform random ids".to_string(),
            None => cfg.process.to_string(),
        };
        if let (Some(text), Some(m)) = (cfg.probe.suffix(), &model) {
            input.push_str(&format!(
                ", probe at the last token of the suffix {text:?} ({} tokens {:?}, after the n \
                 context tokens)",
                m.suffix.len(),
                m.suffix
            ));
        }
        if let Some(m) = &model {
            if sweep::run::measures_prefixes(&m.weights.config, &m.suffix) {
                input.push_str(
                    ", probe at the last context token: a causal model, so one forward of the \
                     longest length's windows gives every length as their prefixes",
                );
            }
        }
        inputs.push(input);
    }
    let gpu = Gpu::new(adapter)?;
    eprintln!(
        "adapter: {} ({}, {})",
        gpu.name(),
        gpu.summary.backend,
        gpu.summary.driver
    );
    let mut summaries = Vec::new();
    for (cfg, input) in configs.iter().zip(&inputs) {
        let dir = args.out.join(cfg.preset.name());
        eprintln!(
            "{}: {} ({}), expected: {}",
            cfg.preset.name(),
            input,
            dir.display(),
            cfg.preset.expectation()
        );
        let mut bar = Bars::default();
        let summary = sweep::run_sweep(&gpu, cfg, &dir, shard, &mut bar)
            .with_context(|| format!("sweep of preset {}", cfg.preset.name()))?;
        crate::plot::after_results(cfg.preset.name(), || {
            crate::plot::variance_plot(&dir, &summary)
        });
        summaries.push(summary);
    }
    print_table(&summaries);
    crate::plot::after_results("controls", || {
        crate::plot::controls_plot(&args.out.join("controls"), &summaries)
    });
    eprintln!(
        "results: {} (summary.json, points.csv, fits.txt, variance.svg/png per preset; controls.svg/png)",
        args.out.display()
    );
    Ok(())
}

/// The fits of every preset and site, one row each.
pub fn print_table(summaries: &[Summary]) {
    let rows: Vec<(String, &Summary)> = summaries
        .iter()
        .map(|s| (s.config.preset.name().to_string(), s))
        .collect();
    print_table_labelled(&rows);
}

/// The fits of every run and site, one row each, each run named by its label (the preset,
/// or `ceiling report`'s folder name where one preset has several runs).
pub fn print_table_labelled(rows: &[(String, &Summary)]) {
    let w = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0).max(7);
    println!(
        "{:<w$} {:<10} {:>8} {:>18} {:>9} {:>18} {:>9} {:>9} {:>9} {:>10}  verdict (expected)",
        "preset",
        "site",
        "slope",
        "95% CI",
        "vs n_eff",
        "95% CI",
        "pedestal",
        "alpha",
        "AICc",
        "SNR>theta"
    );
    for (label, s) in rows {
        for f in &s.fits {
            let (sl, ci) = f.slope_n.as_ref().map_or(("-".into(), "-".into()), |x| {
                (format!("{:.3}", x.slope), x.ci.to_string())
            });
            let (se, cie) = f
                .slope_n_eff
                .as_ref()
                .map_or(("-".into(), "-".into()), |x| {
                    (format!("{:.3}", x.slope), x.ci.to_string())
                });
            // E and alpha of E + A n^-alpha, and which form the AICc picks.
            let (pedestal, alpha, choice) =
                f.curves
                    .as_ref()
                    .map_or(("-".into(), "-".into(), "-".into()), |c| {
                        let choice = match c.choice {
                            Choice::WithPedestal => "pedestal",
                            Choice::WithoutPedestal => "power",
                            Choice::Undecided => "undecided",
                        };
                        (
                            format!("{:.2e}", c.pedestal.e),
                            format!("{:.3}", c.pedestal.alpha),
                            choice.to_string(),
                        )
                    });
            let thr = f
                .snr_threshold
                .as_ref()
                .map_or("never".into(), |(n, _)| format!("{n:.0}"));
            println!(
                "{:<w$} {:<10} {:>8} {:>18} {:>9} {:>18} {:>9} {:>9} {:>9} {:>10}  {} ({})",
                label,
                f.site,
                sl,
                ci,
                se,
                cie,
                pedestal,
                alpha,
                choice,
                thr,
                f.verdict,
                s.config.preset.expectation()
            );
        }
    }
}

/// A progress bar per measured length, or per set of lengths measured together.
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
}

impl sweep::Progress for Bars {
    fn start_lengths(&mut self, lengths: &[usize], samples: usize) {
        let bar = ProgressBar::new(samples as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "  n = {prefix:>6} [{bar:30}] {pos}/{len} samples {elapsed}",
            )
            .unwrap()
            .progress_chars("=> "),
        );
        bar.set_prefix(match lengths {
            [n] => n.to_string(),
            [first, .., last] => format!("{first}..{last} (prefixes of one forward)"),
            [] => String::new(),
        });
        self.bar = Some(bar);
    }

    fn samples_done(&mut self, done: usize) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
        }
    }

    fn finish_length(&mut self, r: &LengthResult, resumed: bool) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        eprintln!(
            "  n = {:>6}  V = {:.4e}  n_eff = {:>8.1}  {}",
            r.n,
            r.sites[0].variance,
            r.n_eff_mean,
            match (resumed, r.prefix_of) {
                (true, _) => "(resumed from disk)".to_string(),
                (false, None) => format!("{:.1} s", r.seconds),
                (false, Some(w)) => format!(
                    "{:.1} s for every length together (prefixes of {w}-token windows)",
                    r.seconds
                ),
            }
        );
    }
}
