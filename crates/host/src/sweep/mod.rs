//! Context-length sweeps: for each length, many samples through the kernels, the noise of
//! the probe position's representation across samples, and fits of how it falls with n.
//!
//! The configuration, the result files and the summary with its fits need no GPU: they are
//! `ceiling_core::sweep`, whose types are re-exported here.

pub mod run;

use std::path::Path;

pub use ceiling_core::sweep::{
    Ci, ConfigError, LengthResult, ModelSpec, Preset, Probe, RunHeader, SiteFit, SiteResult,
    Summary, SweepConfig, TextSpec,
};

use ceiling_core::sweep::{config, results, summarise, AttentionLayer};
use ceiling_core::text::TokenizedCorpus;

use crate::error::{HostError, Result};
use crate::Gpu;

pub const TOOL: &str = "ceiling";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which part of the grid of lengths this process runs: lengths whose index i in the
/// grid has i % count == index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub fn parse(s: &str) -> std::result::Result<Shard, String> {
        let err = || format!("--shard '{s}': expected k/N with 0 <= k < N, e.g. 0/4");
        let (k, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count) = (
            k.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if count == 0 || index >= count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

/// Events of a running sweep, for a progress display.
pub trait Progress {
    /// `lengths` are measured together (one length, or the prefixes of one set of windows).
    fn start_lengths(&mut self, lengths: &[usize], samples: usize);
    fn samples_done(&mut self, done: usize);
    fn finish_length(&mut self, result: &LengthResult, resumed: bool);
}

/// Runs (or resumes) the sweep of `cfg` in `run_dir`, then fits and writes the summary.
#[maybe_async::maybe_async]
pub async fn run_sweep(
    gpu: &Gpu,
    cfg: &SweepConfig,
    run_dir: &Path,
    shard: Shard,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    cfg.validate()
        .map_err(|e| HostError::Config(e.to_string()))?;
    let model = load_model(cfg)?;
    if model.is_none() {
        check_gpu_lengths(gpu, cfg)?;
    }
    let header = RunHeader {
        tool: TOOL.into(),
        version: VERSION.into(),
        adapter: gpu.summary.clone(),
        config: cfg.clone(),
        corpus: model
            .as_ref()
            .and_then(|m| m.corpus.as_ref())
            .map(|c| c.info.clone()),
    };
    let header = start_run(run_dir, header)?;
    let workload = match model {
        None => Workload::Attention(AttentionLayer::new(cfg)),
        Some(m) => Workload::Model {
            model: Box::new(crate::model::GpuModel::new(gpu, &m.weights, cfg.precision)?),
            layers: m.layers,
            corpus: m.corpus,
            suffix: m.suffix,
        },
    };
    let done = results::load_points(run_dir)?;
    results::check_run_points(run_dir, &header.config, &done)?;
    // A model that allows it measures every pending length at once, on prefixes of windows
    // of the grid's longest length, after the others are read back; otherwise each length
    // is measured in turn.
    let prefix_window = match &workload {
        Workload::Model { model, suffix, .. } if run::measures_prefixes(model.config(), suffix) => {
            cfg.lengths.iter().copied().max()
        }
        _ => None,
    };
    let mut pending = Vec::new();
    for (i, &n) in cfg.lengths.iter().enumerate() {
        if i % shard.count != shard.index {
            continue;
        }
        if let Some(p) = done.iter().find(|p| p.n == n) {
            progress.finish_length(p, true);
        } else if prefix_window.is_some() {
            pending.push(n);
        } else {
            measure(
                gpu,
                cfg,
                &workload,
                run_dir,
                progress,
                &[n],
                run::Windows::of_length(n),
            )
            .await?;
        }
    }
    if let (Some(window), false) = (prefix_window, pending.is_empty()) {
        measure(
            gpu,
            cfg,
            &workload,
            run_dir,
            progress,
            &pending,
            run::Windows::prefixes_of(window),
        )
        .await?;
    }
    let header = record_finished_lengths(run_dir, header)?;
    Ok(summarise(run_dir, header)?)
}

/// Measures `lengths` together (one length, or the prefixes of one set of windows) and
/// writes their points.
#[maybe_async::maybe_async]
async fn measure(
    gpu: &Gpu,
    cfg: &SweepConfig,
    workload: &Workload,
    run_dir: &Path,
    progress: &mut dyn Progress,
    lengths: &[usize],
    windows: run::Windows,
) -> Result<()> {
    progress.start_lengths(lengths, cfg.samples);
    let mut report = |d| progress.samples_done(d);
    gpu.tuner.take_plans_used();
    let measured = match workload {
        Workload::Attention(layer) => {
            // Not inside vec![]: maybe_async cannot remove an await from a macro's tokens.
            let result = run::measure_length(gpu, cfg, layer, lengths[0], &mut report).await?;
            vec![result]
        }
        Workload::Model {
            model,
            layers,
            corpus,
            suffix,
        } => {
            run::measure_lengths_model(
                gpu,
                cfg,
                model,
                layers,
                corpus.as_ref(),
                suffix,
                lengths,
                &windows,
                &mut report,
            )
            .await?
        }
    };
    let kernels = gpu.tuner.take_plans_used();
    for mut result in measured {
        result.kernels = kernels.clone();
        results::write_json(&results::point_path(run_dir, result.n), &result)?;
        progress.finish_length(&result, false);
    }
    Ok(())
}

/// Writes `run.json`, or checks that the folder holds a run whose finished points `header`
/// would measure the same way, and extends it: the lengths become the union of both (so a
/// larger --max-n, more --lengths or another --shard adds points), and the SNR threshold is
/// the new one. A change that would alter a finished point is refused, naming the fields.
/// Returns the header the summary is built from.
fn start_run(run_dir: &Path, mut header: RunHeader) -> Result<RunHeader> {
    let header_path = run_dir.join("run.json");
    if !header_path.exists() {
        results::write_json(&header_path, &header)?;
        return Ok(header);
    }
    let old: RunHeader = results::read_json(&header_path)?;
    let differences = old.config.point_differences(&header.config);
    if !differences.is_empty() {
        return Err(HostError::Config(format!(
            "{} holds a sweep with another configuration, whose finished points this one \
             would measure differently:\n  {}\nonly --lengths, --min-n/--max-n, --shard and \
             --theta may change between runs in one folder (they add points or refit them); \
             choose another --out directory (or remove this one) instead of mixing results",
            run_dir.display(),
            differences.join("\n  ")
        )));
    }
    let lengths = old.config.union_lengths(&header.config.lengths);
    let mut record = old.clone();
    record.config.lengths = lengths.clone();
    record.config.theta = header.config.theta;
    if header.corpus.is_some() {
        record.corpus = header.corpus.clone();
    }
    if record != old {
        results::write_json(&header_path, &record)?;
    }
    header.config.lengths = lengths;
    Ok(header)
}

/// The lengths of `run.json` as it is now (another process in the same folder may have
/// extended it while this one measured), with any finished point it lacks added to it and
/// to the returned header.
fn record_finished_lengths(run_dir: &Path, mut header: RunHeader) -> Result<RunHeader> {
    let header_path = run_dir.join("run.json");
    let mut now: RunHeader = results::read_json(&header_path)?;
    let finished: Vec<usize> = results::load_points(run_dir)?.iter().map(|p| p.n).collect();
    let mut extra = header.config.lengths.clone();
    extra.extend(finished);
    let lengths = now.config.union_lengths(&extra);
    if lengths != now.config.lengths {
        now.config.lengths = lengths.clone();
        results::write_json(&header_path, &now)?;
    }
    header.config.lengths = lengths;
    Ok(header)
}

/// Refuses a context length whose keys (one sample: [n, d_model + 1]) would not fit in one
/// of the adapter's buffers, before anything is drawn for it.
fn check_gpu_lengths(gpu: &Gpu, cfg: &SweepConfig) -> Result<()> {
    let es = cfg.precision.size() as u64;
    let row = (cfg.d_model as u64 + 1) * es;
    let max = gpu.max_binding();
    for &n in &cfg.lengths {
        let need = (n as u64).checked_mul(row);
        if need.is_none_or(|b| b > max) {
            return Err(HostError::Config(format!(
                "context length n = {n} needs {} for one sample's keys (n x (d_model {} + 1) x \
                 {es} bytes); this adapter binds at most {} per buffer: use --lengths up to {}",
                need.map_or(
                    "more than 2^64 bytes".into(),
                    ceiling_core::memory::human_bytes
                ),
                cfg.d_model,
                ceiling_core::memory::human_bytes(max),
                max / row
            )));
        }
    }
    Ok(())
}

/// What produces the probe states of a sweep.
enum Workload {
    Attention(AttentionLayer),
    Model {
        model: Box<crate::model::GpuModel>,
        layers: Vec<usize>,
        corpus: Option<TokenizedCorpus>,
        suffix: Vec<u32>,
    },
}

/// The model preset's model, the layers it probes, its corpus for text runs and the ids of
/// the suffix probe.
#[derive(Debug)]
pub struct ModelRun {
    pub weights: ceiling_core::model::ModelWeights,
    pub layers: Vec<usize>,
    pub corpus: Option<TokenizedCorpus>,
    /// `--probe suffix:TEXT`: TEXT's ids (no BOS), appended after every window; empty for
    /// `--probe last`.
    pub suffix: Vec<u32>,
}

/// The model preset's weights, probed layers, corpus and suffix ids, checked against the
/// lengths before any GPU work: a context (with the suffix) longer than the model's
/// positions, a layer beyond it, a corpus without a document as long as the longest context,
/// or a suffix that tokenises to nothing is refused.
pub fn load_model(cfg: &SweepConfig) -> Result<Option<ModelRun>> {
    let bad = HostError::Config;
    let (weights, tokenizer) = match &cfg.model {
        None => return Ok(None),
        Some(ModelSpec::Random { config }) => (
            ceiling_core::model::ModelWeights::random(config, cfg.seed)
                .map_err(|e| bad(e.to_string()))?,
            None,
        ),
        Some(ModelSpec::Checkpoint { path }) => {
            let m =
                ceiling_core::model::load_model(Path::new(path)).map_err(|e| bad(e.to_string()))?;
            (m.weights, m.tokenizer)
        }
    };
    let mc = &weights.config;
    let longest = cfg.lengths.iter().copied().max().unwrap_or(0);
    let suffix = match cfg.probe.suffix() {
        None => Vec::new(),
        Some(text) => suffix_ids(text, tokenizer.as_ref())?,
    };
    let s = suffix.len();
    if let Some(max) = mc.max_len() {
        if s > 0 && longest + s > max {
            return Err(bad(format!(
                "context length n = {longest} plus the suffix's s = {s} tokens is {}, beyond \
                 the model's {max} positions: use --max-n {} or less, or a shorter suffix",
                longest + s,
                max.saturating_sub(s)
            )));
        }
        if longest > max {
            return Err(bad(format!(
                "context length {longest} exceeds the model's {max} positions: use --max-n {max} or less"
            )));
        }
    }
    if let Some(&l) = cfg.layers.iter().find(|&&l| l >= mc.layers) {
        return Err(bad(format!(
            "layer {l} is beyond the model's {} layers (0..{})",
            mc.layers,
            mc.layers - 1
        )));
    }
    if let Some(w) = &cfg.unigram {
        if w.len() != mc.vocab {
            return Err(bad(format!(
                "the unigram distribution has {} weights but the model's vocabulary has {} tokens",
                w.len(),
                mc.vocab
            )));
        }
    }
    if mc.vocab == 0 && mc.d_model != cfg.d_model {
        return Err(bad(format!(
            "the model takes vectors of width {} but the sweep draws {}: use --d-model {}",
            mc.d_model, cfg.d_model, mc.d_model
        )));
    }
    let layers: Vec<usize> = if cfg.layers.is_empty() {
        (0..mc.layers).collect()
    } else {
        cfg.layers.clone()
    };
    // The model's own width and probed sites, against the host memory.
    let host = |what: String, bytes: Option<u64>, fix: &str| {
        ceiling_core::memory::check_host(&what, bytes, fix).map_err(bad)
    };
    host(
        format!(
            "--bootstrap {}: the replicates of {} probed sites of width {}",
            cfg.bootstrap,
            2 * layers.len(),
            mc.d_model
        ),
        config::bootstrap_bytes(cfg.bootstrap, mc.d_model, 2 * layers.len()),
        "use fewer replicates (the default is 200) or fewer --layers",
    )?;
    host(
        format!(
            "context length n = {longest} with the model's width {}",
            mc.d_model
        ),
        config::length_bytes(longest + s, mc.d_model.max(mc.ff_dim)),
        "use shorter --lengths (or a smaller --max-n)",
    )?;
    let corpus = match &cfg.text {
        None => None,
        Some(spec) => {
            let Some(tokenizer) = tokenizer else {
                return Err(bad(
                    "--text needs a model with a tokenizer: a GGUF file, or a checkpoint \
                     directory with tokenizer.json"
                        .into(),
                ));
            };
            let mut c = TokenizedCorpus::load(Path::new(&spec.path), &tokenizer)
                .map_err(|e| bad(e.to_string()))?;
            if c.info.sha256 != spec.sha256 {
                return Err(bad(format!(
                    "the corpus {} changed since this run was configured (SHA-256 {} now, {} \
                     then): use another --out directory for the new text",
                    spec.path, c.info.sha256, spec.sha256
                )));
            }
            c.prepare(longest).map_err(|e| bad(e.to_string()))?;
            Some(c)
        }
    };
    Ok(Some(ModelRun {
        weights,
        layers,
        corpus,
        suffix,
    }))
}

/// The ids of the suffix probe's text, by the model's tokenizer and without its special
/// tokens (the suffix follows the context; it starts nothing).
fn suffix_ids(text: &str, tokenizer: Option<&ceiling_core::text::Tokenizer>) -> Result<Vec<u32>> {
    let bad = HostError::Config;
    let Some(tokenizer) = tokenizer else {
        return Err(bad(
            "--probe suffix:TEXT needs a model with a tokenizer to read TEXT: a GGUF file, or \
             a checkpoint directory with tokenizer.json (this model has none); use --probe \
             last"
                .into(),
        ));
    };
    let ids = tokenizer
        .encode_plain(text)
        .map_err(|e| bad(format!("tokenising the suffix {text:?}: {e}")))?;
    if ids.is_empty() {
        return Err(bad(format!(
            "the suffix {text:?} tokenises to no tokens with the model's tokenizer ({}): give \
             a suffix with text the tokenizer keeps",
            tokenizer.source()
        )));
    }
    Ok(ids)
}
