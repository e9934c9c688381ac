//! Context-length sweeps: for each length, many samples through the kernels, the noise of
//! the probe position's representation across samples, and fits of how it falls with n.

pub mod config;
pub mod results;
pub mod run;
pub mod summary;

use std::path::Path;

pub use config::{ConfigError, Preset, SweepConfig};
pub use run::{LengthResult, SiteResult};
pub use summary::{Ci, SiteFit, Summary};

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
    fn start_length(&mut self, n: usize, samples: usize);
    fn samples_done(&mut self, done: usize);
    fn finish_length(&mut self, result: &LengthResult, resumed: bool);
}

/// Runs (or resumes) the sweep of `cfg` in `run_dir`, then fits and writes the summary.
pub fn run_sweep(
    gpu: &Gpu,
    cfg: &SweepConfig,
    run_dir: &Path,
    shard: Shard,
    progress: &mut dyn Progress,
) -> Result<Summary> {
    cfg.validate().map_err(|e| HostError::Gpu(e.to_string()))?;
    let header = results::RunHeader {
        tool: TOOL.into(),
        version: VERSION.into(),
        adapter: gpu.summary.clone(),
        config: cfg.clone(),
    };
    let header_path = run_dir.join("run.json");
    if header_path.exists() {
        let old: results::RunHeader = results::read_json(&header_path)?;
        if old.config != *cfg {
            return Err(HostError::Gpu(format!(
                "{} holds a sweep with another configuration; choose another --out directory \
                 (or remove it) instead of mixing results",
                run_dir.display()
            )));
        }
    } else {
        results::write_json(&header_path, &header)?;
    }
    let layer = run::AttentionLayer::new(cfg);
    let done = results::load_points(run_dir)?;
    for (i, &n) in cfg.lengths.iter().enumerate() {
        if i % shard.count != shard.index {
            continue;
        }
        if let Some(p) = done.iter().find(|p| p.n == n) {
            progress.finish_length(p, true);
            continue;
        }
        progress.start_length(n, cfg.samples);
        let result = run::measure_length(gpu, cfg, &layer, n, &mut |d| progress.samples_done(d))?;
        results::write_json(&results::point_path(run_dir, n), &result)?;
        progress.finish_length(&result, false);
    }
    summarise(run_dir, header)
}

/// Fits the finished points of a run directory and writes summary.json and points.csv.
pub fn summarise(run_dir: &Path, header: results::RunHeader) -> Result<Summary> {
    let points = results::load_points(run_dir)?;
    let s = build_summary(header, points);
    results::write_json(&run_dir.join("summary.json"), &s)?;
    results::write_csv(&run_dir.join("points.csv"), &s)?;
    Ok(s)
}

/// The summary of the points of one configuration (those on its grid), with their fits.
pub fn build_summary(header: results::RunHeader, mut points: Vec<LengthResult>) -> Summary {
    points.retain(|p| header.config.lengths.contains(&p.n));
    points.sort_by_key(|p| p.n);
    points.dedup_by_key(|p| p.n);
    let fits = summary::fit_sites(&header.config, &points);
    Summary {
        tool: header.tool,
        version: header.version,
        adapter: header.adapter,
        config: header.config,
        points,
        fits,
    }
}
