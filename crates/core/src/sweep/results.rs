//! The results directory of a sweep: one file per finished length, written atomically, so
//! an interrupted sweep resumes without losing or recomputing a point.
//!
//! ```text
//! DIR/<preset>/run.json           config, adapter, tool version (written first)
//! DIR/<preset>/points/n-00016.json one finished context length each
//! DIR/<preset>/summary.json       points and fits, rewritten at the end
//! DIR/<preset>/points.csv
//! DIR/<preset>/fits.txt           V(n) with and without a pedestal, per site
//! ```
//!
//! Here: the schemas of run.json and of the point files, and reading and writing them. The
//! summary, its fits and its tables are [`super::summary`].

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::SweepConfig;
use crate::adapter::AdapterSummary;
use crate::files::FileError;

/// The header of a run directory: what produced the points beside it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunHeader {
    pub tool: String,
    pub version: String,
    pub adapter: AdapterSummary,
    pub config: SweepConfig,
    /// What the corpus held when the run started (text runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<crate::text::CorpusInfo>,
}

/// What one context length gave, for one site (a place in the network that is probed).
/// A statistic that could not be estimated is NaN, stored as `null` (see
/// [`crate::nonfinite`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteResult {
    pub site: String,
    /// Trace of the covariance across samples (unbiased): the noise V(n).
    #[serde(with = "crate::nonfinite")]
    pub variance: f64,
    /// V(n) / d.
    #[serde(with = "crate::nonfinite")]
    pub variance_per_dim: f64,
    /// Poisson-bootstrap replicates of V(n), in replicate order (replicate r of every
    /// length together is one resample of the whole sweep).
    #[serde(with = "crate::nonfinite::vec")]
    pub variance_boot: Vec<f64>,
    #[serde(with = "crate::nonfinite")]
    pub mean_norm_sq: f64,
    /// (||mu||^2 - V/S) / V.
    #[serde(with = "crate::nonfinite")]
    pub snr: f64,
    #[serde(with = "crate::nonfinite")]
    pub snr_per_dim: f64,
    #[serde(with = "crate::nonfinite::vec")]
    pub snr_boot: Vec<f64>,
    /// Planted task: between-class over within-class variance.
    #[serde(default)]
    pub fisher_snr: Option<f64>,
    /// Planted task: accuracy of a linear read-out fitted on half the samples (at most
    /// 2048 per length) and scored on the other half.
    #[serde(default)]
    pub readout_accuracy: Option<f64>,
}

/// Everything measured at one context length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LengthResult {
    pub n: usize,
    pub samples: usize,
    pub sites: Vec<SiteResult>,
    /// Attention spread at the probe row, averaged over samples (and heads).
    #[serde(with = "crate::nonfinite")]
    pub n_eff_mean: f64,
    #[serde(with = "crate::nonfinite")]
    pub n_eff_se: f64,
    /// Harmonic mean of n_eff over samples (and heads): 1 / E[1 / n_eff], the n_eff of the
    /// law V = tr Cov(v) E[1 / n_eff]. NaN in points written before it was recorded.
    #[serde(default = "not_recorded", with = "crate::nonfinite")]
    pub n_eff_harmonic: f64,
    #[serde(with = "crate::nonfinite")]
    pub entropy_mean: f64,
    /// Model sweeps: n_eff of each probed layer (n_eff_mean is the first's).
    #[serde(default, with = "crate::nonfinite::vec")]
    pub n_eff_layers: Vec<f64>,
    /// Model sweeps: n_eff of each head of each probed layer, averaged over samples.
    #[serde(default, with = "crate::nonfinite::vec2")]
    pub n_eff_heads: Vec<Vec<f64>>,
    /// Model sweeps: entropy of each head of each probed layer, averaged over samples.
    #[serde(default, with = "crate::nonfinite::vec2")]
    pub entropy_heads: Vec<Vec<f64>>,
    #[serde(with = "crate::nonfinite")]
    pub seconds: f64,
    /// The kernel plan that measured this point, per kernel shape class (autotuned or not).
    #[serde(default)]
    pub kernels: std::collections::BTreeMap<String, String>,
    /// Measured on the n-token prefixes of windows of this many tokens, together with the
    /// sweep's other lengths (a causal model's `--probe last`); `seconds` is then the time
    /// of that joint run. None: windows of n tokens, measured alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix_of: Option<usize>,
}

/// Serde default of values that older result files do not hold.
fn not_recorded() -> f64 {
    f64::NAN
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader (or a
/// resumed sweep) sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    crate::files::write_atomic(path, bytes).map_err(|e| {
        FileError::caused(
            path,
            format!("{e}; nothing was written (free space or fix the folder, then rerun: finished points are kept)"),
            e,
        )
    })
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| FileError::caused(path, e.to_string(), e))?;
    write_atomic(path, text.as_bytes())
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, FileError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| FileError::caused(path, e.to_string(), e))?;
    serde_json::from_str(&text).map_err(|e| {
        FileError::caused(
            path,
            format!("not a valid result file: {e}; {}", remedy(path)),
            e,
        )
    })
}

/// What to do about a result file that cannot be read.
fn remedy(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let run_dir = path.parent().map_or(Path::new("."), |d| d);
    if name.starts_with("n-") && run_dir.file_name().is_some_and(|d| d == "points") {
        format!(
            "delete it to recompute that point (the other points are kept): rm {}",
            path.display()
        )
    } else if name == "run.json" {
        format!(
            "delete it and rerun with exactly the options that started this run to keep its \
             finished points (with other options old points would be mixed in), or delete the \
             folder {} to start the run over",
            run_dir.display()
        )
    } else {
        "delete it: the tool writes it again from the points".into()
    }
}

pub fn point_path(run_dir: &Path, n: usize) -> PathBuf {
    run_dir.join("points").join(format!("n-{n:06}.json"))
}

/// Finished lengths of a run directory, sorted by n.
pub fn load_points(run_dir: &Path) -> Result<Vec<LengthResult>, FileError> {
    let dir = run_dir.join("points");
    let io = |e: std::io::Error| FileError::caused(&dir, e.to_string(), e);
    let mut points = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let p = read_json::<LengthResult>(&path)?;
                let named = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.strip_prefix("n-"))
                    .and_then(|s| s.parse::<usize>().ok());
                let problem = if named != Some(p.n) {
                    Some(format!("it holds n = {} under another name", p.n))
                } else if p.sites.is_empty() {
                    Some("it holds no probed site".to_string())
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Err(FileError::new(
                        &path,
                        format!("not a valid point file: {problem}; {}", remedy(&path)),
                    ));
                }
                points.push(p);
            }
        }
    }
    points.sort_by_key(|p| p.n);
    Ok(points)
}

/// Why `points` cannot all be points of a run of `cfg`: the length and the reason for the
/// first that cannot (each must have `cfg.samples` samples, `cfg.bootstrap` replicates of
/// every statistic, and the same sites in the same order as the others).
pub fn check_points(cfg: &SweepConfig, points: &[LengthResult]) -> Result<(), (usize, String)> {
    let first = points.first().map(|p| &p.sites);
    for p in points {
        let bad = |why: String| Err((p.n, why));
        if p.n == 0 {
            return bad("n = 0".into());
        }
        if p.sites.is_empty() {
            return bad("no probed site".into());
        }
        if p.samples != cfg.samples {
            return bad(format!(
                "{} samples where run.json has {}",
                p.samples, cfg.samples
            ));
        }
        if let Some(first) = first {
            let names = |s: &[SiteResult]| s.iter().map(|x| x.site.clone()).collect();
            let (a, b): (Vec<String>, Vec<String>) = (names(first), names(&p.sites));
            if a != b {
                return bad(format!("sites {b:?} where the others have {a:?}"));
            }
        }
        for site in &p.sites {
            for (what, reps) in [("V", &site.variance_boot), ("SNR", &site.snr_boot)] {
                if reps.len() != cfg.bootstrap {
                    return bad(format!(
                        "{} bootstrap replicates of {what} at site {} where run.json has {}",
                        reps.len(),
                        site.site,
                        cfg.bootstrap
                    ));
                }
            }
        }
    }
    Ok(())
}

/// [`check_points`] for the points of `run_dir`, naming the file to delete.
pub fn check_run_points(
    run_dir: &Path,
    cfg: &SweepConfig,
    points: &[LengthResult],
) -> Result<(), FileError> {
    check_points(cfg, points).map_err(|(n, why)| {
        let path = point_path(run_dir, n);
        FileError::new(
            &path,
            format!("not a point of this run ({why}); {}", remedy(&path)),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A point whose statistics include values that could not be estimated (a bootstrap
    /// replicate with fewer than two distinct samples has no variance) is written so that it
    /// reads back: the run can resume. It used to be written with JSON nulls and then refused
    /// as "not a valid result file" on every later run.
    #[test]
    fn point_with_nan_statistics_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let site = SiteResult {
            site: "attn".into(),
            variance: 1.0,
            variance_per_dim: f64::NAN,
            variance_boot: vec![0.9, f64::NAN, 1.1, f64::INFINITY],
            mean_norm_sq: 0.5,
            snr: f64::NEG_INFINITY,
            snr_per_dim: 0.1,
            snr_boot: vec![f64::NAN, 0.2],
            fisher_snr: None,
            readout_accuracy: None,
        };
        let point = LengthResult {
            n: 16,
            samples: 8,
            sites: vec![site],
            n_eff_mean: 3.0,
            n_eff_harmonic: 3.0,
            n_eff_se: f64::NAN,
            entropy_mean: 1.0,
            n_eff_layers: vec![f64::NAN],
            n_eff_heads: vec![vec![1.0, f64::NAN]],
            entropy_heads: vec![vec![f64::NAN]],
            seconds: 0.1,
            kernels: Default::default(),
            prefix_of: None,
        };
        write_json(&point_path(dir.path(), 16), &point).unwrap();
        let back = load_points(dir.path()).unwrap();
        assert_eq!(back.len(), 1);
        let (p, s) = (&back[0], &back[0].sites[0]);
        assert_eq!(s.variance, 1.0);
        assert!(s.variance_per_dim.is_nan() && s.snr.is_nan() && p.n_eff_se.is_nan());
        assert_eq!(s.variance_boot[0], 0.9);
        assert!(s.variance_boot[1].is_nan() && s.variance_boot[3].is_nan());
        assert!(s.snr_boot[0].is_nan() && p.n_eff_layers[0].is_nan());
        assert!(p.n_eff_heads[0][1].is_nan() && p.entropy_heads[0][0].is_nan());
    }

    /// A result file that cannot be read keeps the I/O or JSON error underneath as its
    /// source, while its message names the path, that error and the fix, as before.
    #[test]
    fn unreadable_files_keep_their_source() {
        use std::error::Error;
        let dir = tempfile::tempdir().unwrap();
        let path = point_path(dir.path(), 16);
        let e = read_json::<LengthResult>(&path).unwrap_err();
        assert!(
            e.source().is_some_and(|s| s.is::<std::io::Error>()),
            "{e:?}"
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{").unwrap();
        let e = read_json::<LengthResult>(&path).unwrap_err();
        assert!(
            e.source().is_some_and(|s| s.is::<serde_json::Error>()),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("{}: not a valid result file: EOF", path.display())),
            "{text}"
        );
        assert!(text.ends_with(&format!("rm {}", path.display())), "{text}");
        // Writing where a folder stands: the I/O error, and what to do.
        std::fs::create_dir_all(dir.path().join("blocked/x")).unwrap();
        let e = write_json(&dir.path().join("blocked"), &1).unwrap_err();
        assert!(
            e.source().is_some_and(|s| s.is::<std::io::Error>()),
            "{e:?}"
        );
        assert!(e.to_string().contains("nothing was written"), "{e}");
    }

    fn point(n: usize, samples: usize, reps: usize, sites: &[&str]) -> LengthResult {
        LengthResult {
            n,
            samples,
            sites: sites
                .iter()
                .map(|s| SiteResult {
                    site: s.to_string(),
                    variance: 1.0,
                    variance_per_dim: 0.1,
                    variance_boot: vec![1.0; reps],
                    mean_norm_sq: 0.0,
                    snr: 0.0,
                    snr_per_dim: 0.0,
                    snr_boot: vec![0.0; reps],
                    fisher_snr: None,
                    readout_accuracy: None,
                })
                .collect(),
            n_eff_mean: 1.0,
            n_eff_harmonic: 1.0,
            n_eff_se: 0.0,
            entropy_mean: 0.0,
            n_eff_layers: vec![],
            n_eff_heads: vec![],
            entropy_heads: vec![],
            seconds: 0.0,
            kernels: Default::default(),
            prefix_of: None,
        }
    }

    /// Point files that cannot be points of their run (found while writing the `results`
    /// fuzz target): with no site, the resumed sweep's progress line indexed site 0; with
    /// fewer bootstrap replicates than run.json, or other sites than the other points, the
    /// fits index replicate r and site k of every point. Each is refused, naming the file to
    /// delete.
    #[test]
    fn point_files_that_disagree_with_run_json_are_refused() {
        let mut cfg = SweepConfig::for_preset(super::super::config::Preset::Clt);
        cfg.samples = 16;
        cfg.bootstrap = 20;
        let good = || vec![point(16, 16, 20, &["attn"]), point(32, 16, 20, &["attn"])];
        assert!(check_points(&cfg, &good()).is_ok());
        for (bad, needle) in [
            (point(32, 16, 3, &["attn"]), "3 bootstrap replicates of V"),
            (
                point(32, 8, 20, &["attn"]),
                "8 samples where run.json has 16",
            ),
            (point(32, 16, 20, &["other"]), "sites"),
            (point(32, 16, 20, &[]), "no probed site"),
        ] {
            let mut points = good();
            points[1] = bad;
            let dir = tempfile::tempdir().unwrap();
            let e = check_run_points(dir.path(), &cfg, &points)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("n-000032.json"), "{e}");
            assert!(e.contains("delete it to recompute that point"), "{e}");
        }
        // A point file named for another length, or with no site, is refused on reading.
        let dir = tempfile::tempdir().unwrap();
        write_json(&point_path(dir.path(), 16), &point(32, 16, 20, &["attn"])).unwrap();
        let e = load_points(dir.path()).unwrap_err().to_string();
        assert!(e.contains("n = 32 under another name"), "{e}");
        write_json(&point_path(dir.path(), 16), &point(16, 16, 20, &[])).unwrap();
        let e = load_points(dir.path()).unwrap_err().to_string();
        assert!(e.contains("no probed site"), "{e}");
    }
}
