//! Fits over the finished lengths of a sweep: slopes with bootstrap intervals, the floor
//! model, the SNR threshold, and a verdict against the 1/n law.

use ceiling_core::fit::{self, FloorFit, LineFit, Point};
use serde::{Deserialize, Serialize};

use super::config::SweepConfig;
use super::run::LengthResult;
use crate::AdapterSummary;

/// A confidence interval; `None` ends mean unbounded (JSON has no infinity).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Ci {
    pub lo: Option<f64>,
    pub hi: Option<f64>,
}

impl Ci {
    fn new(lo: f64, hi: f64) -> Self {
        let finite = |v: f64| v.is_finite().then_some(v);
        Self {
            lo: finite(lo),
            hi: finite(hi),
        }
    }

    pub fn covers(&self, x: f64) -> bool {
        self.lo.is_none_or(|lo| lo <= x) && self.hi.is_none_or(|hi| x <= hi)
    }
}

impl std::fmt::Display for Ci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: Option<f64>| v.map_or("inf".to_string(), |v| format!("{v:.3}"));
        write!(f, "[{}, {}]", show(self.lo), show(self.hi))
    }
}

/// A log-log slope with its bootstrap interval (95%).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Slope {
    pub slope: f64,
    pub intercept: f64,
    pub ci: Ci,
}

/// The fits of one site.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteFit {
    pub site: String,
    /// ln V against ln n.
    pub slope_n: Option<Slope>,
    /// ln V against ln n_eff.
    pub slope_n_eff: Option<Slope>,
    pub floor: Option<FloorFit>,
    /// Smallest n where the SNR crosses theta, with its interval.
    pub snr_threshold: Option<(f64, Ci)>,
    pub verdict: String,
}

/// Everything a sweep of one preset found: self-describing, so runs on different GPUs can
/// be merged and compared.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub tool: String,
    pub version: String,
    pub adapter: AdapterSummary,
    pub config: SweepConfig,
    /// The corpus of a text run: files, bytes, tokens, documents used and skipped, hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corpus: Option<ceiling_core::text::CorpusInfo>,
    pub points: Vec<LengthResult>,
    pub fits: Vec<SiteFit>,
}

/// Fits every site over the lengths in `points` (sorted by n).
pub fn fit_sites(cfg: &SweepConfig, points: &[LengthResult]) -> Vec<SiteFit> {
    let Some(first) = points.first() else {
        return Vec::new();
    };
    first
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| fit_site(cfg, &s.site, points, i))
        .collect()
}

fn fit_site(cfg: &SweepConfig, site: &str, points: &[LengthResult], i: usize) -> SiteFit {
    // V(n) with its bootstrap standard error, the data of every variance fit below.
    let vpoints: Vec<Point> = points
        .iter()
        .map(|p| Point {
            n: p.n as f64,
            value: p.sites[i].variance,
            std_err: sd(&p.sites[i].variance_boot),
        })
        .collect();
    let xs_eff: Vec<f64> = points.iter().map(|p| p.n_eff_mean).collect();
    let slope_n = slope(&vpoints, None, points, i);
    let slope_n_eff = slope(&vpoints, Some(&xs_eff), points, i);
    let floor = fit::fit_floor(&vpoints).ok();
    // The planted task's signal is the class difference (its overall mean is 0): there
    // the threshold is read off the Fisher SNR (no bootstrap, so a point interval).
    let snr_points: Vec<Point> = points
        .iter()
        .map(|p| {
            let site = &p.sites[i];
            match site.fisher_snr {
                Some(f) => Point {
                    n: p.n as f64,
                    value: f,
                    std_err: 0.0,
                },
                None => Point {
                    n: p.n as f64,
                    value: site.snr,
                    std_err: sd(&site.snr_boot),
                },
            }
        })
        .collect();
    let snr_threshold = fit::threshold_crossing(&snr_points, cfg.theta)
        .ok()
        .flatten()
        .map(|(n, iv)| (n, Ci::new(iv.lo, iv.hi)));
    let verdict = verdict(slope_n.as_ref(), floor.as_ref());
    SiteFit {
        site: site.to_string(),
        slope_n,
        slope_n_eff,
        floor,
        snr_threshold,
        verdict,
    }
}

/// Weighted log-log fit of V against n (or against `xs`, e.g. n_eff), and the 95%
/// percentile interval of the slopes fitted to each bootstrap replicate (replicate r of
/// every length is one resample of the sweep), with the same weights.
fn slope(
    vpoints: &[Point],
    xs: Option<&[f64]>,
    points: &[LengthResult],
    i: usize,
) -> Option<Slope> {
    let at = |k: usize| xs.map_or(vpoints[k].n, |xs| xs[k]);
    if points.len() < 2 || (0..points.len()).any(|k| at(k).is_nan() || at(k) <= 0.0) {
        return None;
    }
    let fit = |value: &dyn Fn(usize) -> f64| {
        let pts: Vec<Point> = (0..points.len())
            .map(|k| Point {
                n: at(k),
                value: value(k),
                std_err: vpoints[k].std_err,
            })
            .collect();
        fit::wls_loglog(&pts).ok()
    };
    let LineFit {
        slope, intercept, ..
    } = fit(&|k| vpoints[k].value)?;
    let reps = points
        .iter()
        .map(|p| p.sites[i].variance_boot.len())
        .min()?;
    let slopes: Vec<f64> = (0..reps)
        .filter_map(|r| fit(&|k| points[k].sites[i].variance_boot[r]).map(|f| f.slope))
        .collect();
    if slopes.len() < reps / 2 || slopes.is_empty() {
        return None;
    }
    let (lo, hi) = super::results::percentile_interval(&slopes);
    Some(Slope {
        slope,
        intercept,
        ci: Ci::new(lo, hi),
    })
}

fn sd(v: &[f64]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// A one-line reading of the slope against -1 (and 0), with the floor model's opinion.
fn verdict(slope: Option<&Slope>, floor: Option<&FloorFit>) -> String {
    let Some(s) = slope else {
        return "too few lengths to fit".into();
    };
    let mut v = if s.ci.covers(-1.0) || (s.slope + 1.0).abs() < 0.05 {
        "consistent with 1/n"
    } else if s.slope.abs() < 0.1 {
        "no decay (slope ~ 0)"
    } else if s.slope > -1.0 {
        "slower than 1/n"
    } else {
        "faster than 1/n"
    }
    .to_string();
    if let Some(f) = floor {
        if f.prefers_floor && f.c > 0.0 {
            v.push_str(", floor preferred (AIC)");
        }
    }
    v
}
