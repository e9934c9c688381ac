//! Next-token loss along the context: S windows of N tokens, one causal forward each, the
//! LM-head kernel's loss at every position, saved per window (resumable like a sweep), then
//! per-position means with bootstrap intervals over windows.

use ceiling_core::stats::{quantile, QuantileRule};
use std::path::{Path, PathBuf};

use ceiling_core::adapter::AdapterSummary;
use ceiling_core::files::FileError;
use ceiling_core::sweep::results::{read_json, write_json};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::model::GpuModel;

/// Everything that changes a number of a loss run: a results folder holds one of these.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossConfig {
    /// "gguf PATH" or "checkpoint DIR".
    pub model: String,
    /// "text PATH (sha256 ...)" or "tokens PATH (sha256 ...)".
    pub input: String,
    /// Tokens per window (N).
    pub context: usize,
    /// Windows (S).
    pub windows: usize,
    pub seed: u64,
    /// "f32" or "f16" storage.
    pub precision: ceiling_shaders::Precision,
}

/// The run's header (`run.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LossHeader {
    pub tool: String,
    pub version: String,
    pub adapter: AdapterSummary,
    pub config: LossConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<ceiling_core::text::CorpusInfo>,
}

/// One window's scores at positions t = 1..N-1 (index t - 1): the loss of token t given
/// tokens 0..t-1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowScores {
    pub index: usize,
    pub nll: Vec<f32>,
    pub entropy: Vec<f32>,
    pub top1: Vec<u8>,
}

/// `DIR/windows/w-000012.json`
pub fn window_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("windows").join(format!("w-{index:06}.json"))
}

/// Writes `run.json`, or checks that the folder holds a run of the same configuration.
pub fn start_run(dir: &Path, header: &LossHeader) -> Result<()> {
    let path = dir.join("run.json");
    if path.exists() {
        let old: LossHeader = read_json(&path)?;
        if old.config != header.config {
            return Err(HostError::Config(format!(
                "{} holds a loss run with another configuration ({} windows of {} tokens \
                 from {}); choose another --out directory (or remove it) instead of mixing \
                 results",
                dir.display(),
                old.config.windows,
                old.config.context,
                old.config.input
            )));
        }
        return Ok(());
    }
    Ok(write_json(&path, header)?)
}

/// Scores the windows `ids` [windows, n] not yet in `dir`, `batch` windows per forward,
/// calling `progress(done)` after each batch. Returns the plan label of the LM head.
#[maybe_async::maybe_async]
pub async fn run_windows(
    gpu: &Gpu,
    model: &GpuModel,
    ids: &[u32],
    n: usize,
    batch: usize,
    dir: &Path,
    progress: &mut dyn FnMut(usize),
) -> Result<Option<String>> {
    let windows = ids.len() / n;
    let todo: Vec<usize> = (0..windows)
        .filter(|&w| !window_path(dir, w).exists())
        .collect();
    progress(windows - todo.len());
    let mut plan = None;
    let mut done = windows - todo.len();
    for chunk in todo.chunks(batch.max(1)) {
        let batch_ids: Vec<u32> = chunk
            .iter()
            .flat_map(|&w| ids[w * n..][..n].to_vec())
            .collect();
        let (scores, p) = model
            .next_token_loss(gpu, &batch_ids, chunk.len(), n)
            .await?;
        plan = Some(p.to_string());
        for (&w, s) in chunk.iter().zip(scores.chunks((n - 1) * 4)) {
            let window = WindowScores {
                index: w,
                nll: s.chunks(4).map(|r| r[1]).collect(),
                entropy: s.chunks(4).map(|r| r[2]).collect(),
                top1: s.chunks(4).map(|r| (r[3] == 1.0) as u8).collect(),
            };
            if let Some(bad) = window.nll.iter().position(|v| !v.is_finite()) {
                return Err(HostError::Config(format!(
                    "window {w} has a non-finite loss at position {}: the model's outputs \
                     overflowed (try f32 storage)",
                    bad + 1
                )));
            }
            write_json(&window_path(dir, w), &window)?;
        }
        done += chunk.len();
        progress(done);
    }
    Ok(plan)
}

/// Every finished window of `dir`, by index.
pub fn load_windows(dir: &Path, windows: usize, n: usize) -> Result<Vec<WindowScores>> {
    let mut out = Vec::new();
    for w in 0..windows {
        let path = window_path(dir, w);
        if !path.exists() {
            continue;
        }
        let s: WindowScores = read_json(&path).map_err(|e| {
            let message = format!(
                "{}; delete {} to score that window again",
                e.message,
                path.display()
            );
            HostError::File(FileError { message, ..e })
        })?;
        check_window(&s, w, n).map_err(|why| {
            HostError::Config(format!(
                "{} does not hold window {w} of {n} tokens ({why}); delete it to score that \
                 window again",
                path.display()
            ))
        })?;
        out.push(s);
    }
    Ok(out)
}

/// Why `s` is not window `w` of `n` tokens: its index, or a score list of another length
/// than the n - 1 positions it scores.
pub fn check_window(s: &WindowScores, w: usize, n: usize) -> std::result::Result<(), String> {
    if s.index != w {
        return Err(format!("it says window {}", s.index));
    }
    let want = n.saturating_sub(1);
    for (what, len) in [
        ("nll", s.nll.len()),
        ("entropy", s.entropy.len()),
        ("top1", s.top1.len()),
    ] {
        if len != want {
            return Err(format!("{len} {what} values for {want} positions"));
        }
    }
    Ok(())
}

/// Per-position statistics over windows, positions t = 1..N-1.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LossCurve {
    pub positions: Vec<usize>,
    /// Mean loss (nats) over windows at each position.
    pub nll_mean: Vec<f64>,
    /// 95% percentile bootstrap interval of the mean, resampling windows.
    pub nll_lo: Vec<f64>,
    pub nll_hi: Vec<f64>,
    pub entropy_mean: Vec<f64>,
    pub top1_accuracy: Vec<f64>,
    /// The mean over every position and window.
    pub mean_nll: f64,
    pub windows: usize,
    pub bootstrap: usize,
}

/// Means, and `bootstrap` resamples of the windows for the intervals; also returns the
/// resampled mean curves (for the fits' intervals).
pub fn loss_curve(
    windows: &[WindowScores],
    bootstrap: usize,
    seed: u64,
) -> (LossCurve, Vec<Vec<f64>>) {
    let s = windows.len();
    let len = windows.first().map_or(0, |w| w.nll.len());
    let mean_of = |pick: &dyn Fn(&WindowScores, usize) -> f64| -> Vec<f64> {
        (0..len)
            .map(|t| windows.iter().map(|w| pick(w, t)).sum::<f64>() / s.max(1) as f64)
            .collect()
    };
    let nll_mean = mean_of(&|w, t| w.nll[t] as f64);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let replicates: Vec<Vec<f64>> = (0..bootstrap)
        .map(|_| {
            let mut sum = vec![0.0; len];
            for _ in 0..s {
                let w = &windows[rng.random_range(0..s)];
                sum.iter_mut()
                    .zip(&w.nll)
                    .for_each(|(a, &v)| *a += v as f64);
            }
            sum.iter().map(|v| v / s as f64).collect()
        })
        .collect();
    let quantile = |t: usize, q: f64| -> f64 {
        if replicates.is_empty() {
            return f64::NAN;
        }
        let mut col: Vec<f64> = replicates.iter().map(|r| r[t]).collect();
        col.sort_by(f64::total_cmp);
        quantile(&col, q, QuantileRule::Nearest)
    };
    let curve = LossCurve {
        positions: (1..=len).collect(),
        nll_lo: (0..len).map(|t| quantile(t, 0.025)).collect(),
        nll_hi: (0..len).map(|t| quantile(t, 0.975)).collect(),
        entropy_mean: mean_of(&|w, t| w.entropy[t] as f64),
        top1_accuracy: mean_of(&|w, t| w.top1[t] as f64),
        mean_nll: nll_mean.iter().sum::<f64>() / len.max(1) as f64,
        nll_mean,
        windows: s,
        bootstrap,
    };
    (curve, replicates)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window file whose entropy or top-1 list is shorter than its losses (found while
    /// writing the `results` fuzz target): loss_curve indexed every list by position and
    /// panicked; now the file is refused with the lengths.
    #[test]
    fn window_file_with_short_entropy_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WindowScores {
            index: 0,
            nll: vec![1.0; 7],
            entropy: vec![1.0; 3],
            top1: vec![1; 7],
        };
        write_json(&window_path(dir.path(), 0), &w).unwrap();
        let e = load_windows(dir.path(), 1, 8).unwrap_err().to_string();
        assert!(e.contains("3 entropy values for 7 positions"), "{e}");
        assert!(e.contains("delete it"), "{e}");
        w.entropy = vec![1.0; 7];
        w.top1 = vec![];
        write_json(&window_path(dir.path(), 0), &w).unwrap();
        let e = load_windows(dir.path(), 1, 8).unwrap_err().to_string();
        assert!(e.contains("0 top1 values"), "{e}");
        w.top1 = vec![1; 7];
        write_json(&window_path(dir.path(), 0), &w).unwrap();
        assert_eq!(load_windows(dir.path(), 1, 8).unwrap().len(), 1);
    }
}
