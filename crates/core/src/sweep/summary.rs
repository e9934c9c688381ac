//! The summary of a sweep: fits over its finished lengths (slopes with bootstrap intervals,
//! V(n) as a power law and with a pedestal, the SNR threshold, and a verdict against the 1/n
//! law), written as summary.json with its tables (points.csv, fits.txt).

use crate::stats::{quantile, QuantileRule};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::SweepConfig;
use super::layer::AttentionLayer;
use super::results::{self, LengthResult, RunHeader};
use crate::adapter::AdapterSummary;
use crate::curve::{self, Choice, CurveComparison};
use crate::files::FileError;
use crate::fit::{self, LineFit, Point};

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
    #[serde(with = "crate::nonfinite")]
    pub slope: f64,
    #[serde(with = "crate::nonfinite")]
    pub intercept: f64,
    pub ci: Ci,
}

/// The fits of one site.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteFit {
    pub site: String,
    /// ln V against ln n.
    pub slope_n: Option<Slope>,
    /// ln V against ln n_eff (its harmonic mean over samples).
    pub slope_n_eff: Option<Slope>,
    /// The slope the control's set-up gives on this grid (`ceiling_core::expected`), fitted
    /// with the measured slope's weights; None for models, the sink and processes without a
    /// finite variance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_slope: Option<f64>,
    /// V(n) fitted as A n^-alpha and as E + A n^-alpha side by side, with bootstrap
    /// intervals from the sweep's replicates and the AICc choice (`curve::compare_curves`).
    #[serde(default)]
    pub curves: Option<CurveComparison>,
    /// Why `curves` is missing, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curves_note: Option<String>,
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
    pub corpus: Option<crate::text::CorpusInfo>,
    pub points: Vec<LengthResult>,
    pub fits: Vec<SiteFit>,
}

/// Fits the finished points of a run directory and writes summary.json, points.csv and
/// fits.txt.
pub fn summarise(run_dir: &Path, header: RunHeader) -> Result<Summary, FileError> {
    let points = results::load_points(run_dir)?;
    results::check_run_points(run_dir, &header.config, &points)?;
    let s = build_summary(header, points);
    results::write_json(&run_dir.join("summary.json"), &s)?;
    write_tables(run_dir, &s)?;
    Ok(s)
}

/// The summary of the points of one configuration (those on its grid), with their fits.
pub fn build_summary(header: RunHeader, mut points: Vec<LengthResult>) -> Summary {
    points.retain(|p| header.config.lengths.contains(&p.n));
    points.sort_by_key(|p| p.n);
    points.dedup_by_key(|p| p.n);
    let fits = fit_sites(&header.config, &points);
    Summary {
        tool: header.tool,
        version: header.version,
        adapter: header.adapter,
        config: header.config,
        corpus: header.corpus,
        points,
        fits,
    }
}

const TOO_FEW_LENGTHS: &str = "too few lengths to fit";

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
    // The law is V = tr Cov(v) E[1 / n_eff]: regress on the harmonic mean of n_eff, or on the
    // arithmetic mean where points predate the harmonic one.
    let xs_eff: Vec<f64> = if points.iter().all(|p| p.n_eff_harmonic.is_finite()) {
        points.iter().map(|p| p.n_eff_harmonic).collect()
    } else {
        points.iter().map(|p| p.n_eff_mean).collect()
    };
    let slope_n = slope(&vpoints, None, points, i);
    let slope_n_eff = slope(&vpoints, Some(&xs_eff), points, i).ok();
    let (curves, curves_note) = match fit_curves(points, i) {
        Ok(c) => (Some(c), None),
        Err(why) => (None, Some(why)),
    };
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
    let expected_slope = expected_slope(cfg, &vpoints);
    let verdict = verdict(slope_n.as_ref(), expected_slope, curves.as_ref());
    SiteFit {
        site: site.to_string(),
        slope_n: slope_n.ok(),
        slope_n_eff,
        expected_slope,
        curves,
        curves_note,
        snr_threshold,
        verdict,
    }
}

/// Weighted log-log fit of V against n (or against `xs`, e.g. n_eff), and the 95%
/// percentile interval of the slopes fitted to each bootstrap replicate (replicate r of
/// every length is one resample of the sweep) with the point estimate's weights, so that the
/// spread is that of the estimator used. Replicates that cannot be fitted (one of their
/// values could not be estimated) are left out. Err: why there is no slope, for the verdict.
fn slope(
    vpoints: &[Point],
    xs: Option<&[f64]>,
    points: &[LengthResult],
    i: usize,
) -> Result<Slope, String> {
    let at = |k: usize| xs.map_or(vpoints[k].n, |xs| xs[k]);
    if points.len() < 2 {
        return Err(TOO_FEW_LENGTHS.into());
    }
    if let Some(k) = (0..points.len()).find(|&k| !(at(k).is_finite() && at(k) > 0.0)) {
        return Err(format!("n_eff at n = {} is {}", points[k].n, at(k)));
    }
    if let Some(k) = (0..points.len()).find(|&k| !vpoints[k].value.is_finite()) {
        return Err(format!(
            "V at n = {} could not be estimated ({})",
            points[k].n, vpoints[k].value
        ));
    }
    let measured: Vec<Point> = (0..points.len())
        .map(|k| Point {
            n: at(k),
            ..vpoints[k].clone()
        })
        .collect();
    let LineFit {
        slope, intercept, ..
    } = fit::wls_loglog(&measured).map_err(|e| e.to_string())?;
    let (weights, _) = fit::log_weights(&measured);
    let reps = points
        .iter()
        .map(|p| p.sites[i].variance_boot.len())
        .min()
        .unwrap_or(0);
    let slopes: Vec<f64> = (0..reps)
        .filter_map(|r| {
            let replicate: Vec<(f64, f64)> = (0..points.len())
                .map(|k| (at(k), points[k].sites[i].variance_boot[r]))
                .collect();
            fit::loglog_line_weighted(&replicate, &weights)
                .ok()
                .map(|(slope, _)| slope)
        })
        .collect();
    if slopes.len() < reps / 2 || slopes.is_empty() {
        return Err(format!(
            "only {} of {reps} bootstrap replicates could be fitted",
            slopes.len()
        ));
    }
    let (lo, hi) = percentile_interval(&slopes);
    Ok(Slope {
        slope,
        intercept,
        ci: Ci::new(lo, hi),
    })
}

/// V(n) as A n^-alpha and as E + A n^-alpha (`curve::compare_curves`): the point fits on the
/// measured V, the intervals from the bootstrap replicates (replicate r of every length, where
/// all of them could be estimated). Err: why not, for the table.
fn fit_curves(points: &[LengthResult], i: usize) -> Result<CurveComparison, String> {
    let measured: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.n as f64, p.sites[i].variance))
        .collect();
    if let Some(&(n, v)) = measured.iter().find(|(_, v)| !(v.is_finite() && *v > 0.0)) {
        return Err(format!("V at n = {n} is {v}"));
    }
    let reps = points
        .iter()
        .map(|p| p.sites[i].variance_boot.len())
        .min()
        .unwrap_or(0);
    let replicates: Vec<Vec<(f64, f64)>> = (0..reps)
        .map(|r| {
            points
                .iter()
                .map(|p| (p.n as f64, p.sites[i].variance_boot[r]))
                .collect::<Vec<_>>()
        })
        .filter(|rep| rep.iter().all(|(_, v)| v.is_finite() && *v > 0.0))
        .collect();
    curve::compare_curves(&measured, &replicates).map_err(|e| e.to_string())
}

/// The slope a control should show on the measured lengths (`crate::expected`), with
/// the weights of the measured slope. None for models and text, the sink (a floor, not a
/// slope), processes without a finite variance, and lengths whose V could not be estimated.
fn expected_slope(cfg: &SweepConfig, vpoints: &[Point]) -> Option<f64> {
    if cfg.model.is_some() || cfg.text.is_some() || cfg.sink_mass > 0.0 || vpoints.len() < 2 {
        return None;
    }
    if vpoints
        .iter()
        .any(|p| !(p.value.is_finite() && p.value > 0.0))
    {
        return None;
    }
    let (weights, _) = fit::log_weights(vpoints);
    let lengths: Vec<usize> = vpoints.iter().map(|p| p.n as usize).collect();
    let form = AttentionLayer::new(cfg).logit_form();
    crate::expected::expected_slope(&cfg.process, &form, &lengths, &weights, cfg.seed)
        .ok()
        .flatten()
}

/// Standard deviation of the bootstrap replicates that could be estimated (finite ones).
fn sd(v: &[f64]) -> f64 {
    let v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return 0.0;
    }
    let m = v.iter().sum::<f64>() / v.len() as f64;
    (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
}

/// A one-line reading of the slope: against the control's expected slope where there is one
/// ("consistent" only when the 95% interval covers it), else against 1/n (and 0); with the
/// AICc's choice of form.
fn verdict(
    slope: Result<&Slope, &String>,
    expected: Option<f64>,
    curves: Option<&CurveComparison>,
) -> String {
    let s = match slope {
        Ok(s) => s,
        Err(why) if why == TOO_FEW_LENGTHS => return why.clone(),
        Err(why) => return format!("no slope: {why}"),
    };
    let mut v = match expected {
        Some(e) if s.ci.covers(e) => format!("consistent with the expected {e:.3}"),
        Some(e) if s.slope > e => format!("slower than the expected {e:.3}"),
        Some(e) => format!("faster than the expected {e:.3}"),
        None if s.ci.covers(-1.0) => "consistent with 1/n".into(),
        None if s.ci.covers(0.0) => "no decay (slope ~ 0)".into(),
        None if s.ci.lo.is_some_and(|lo| lo > 0.0) => "grows with n".into(),
        None if s.slope > -1.0 => "slower than 1/n".into(),
        None => "faster than 1/n".into(),
    };
    if curves.is_some_and(|c| c.choice == Choice::WithPedestal) {
        v.push_str(", pedestal preferred (AICc)");
    }
    v
}

/// The tables of a summary beside its summary.json: `points.csv` (one row per length and
/// site) and `fits.txt` (per site, V(n) as a power law and with a pedestal, side by side).
pub fn write_tables(dir: &Path, s: &Summary) -> Result<(), FileError> {
    results::write_atomic(&dir.join("points.csv"), csv_text(s).as_bytes())?;
    results::write_atomic(&dir.join("fits.txt"), fits_text(s).as_bytes())
}

/// The text of `fits.txt`: for each site, both fits of V(n) with their 95% intervals, the
/// shift in alpha the pedestal makes and the AICc choice, or why there are none.
pub fn fits_text(s: &Summary) -> String {
    let mut out = format!(
        "V(n) of preset {} on {}, fitted in logs (Huber, L-BFGS) with and without a pedestal\n",
        s.config.preset.name(),
        s.adapter.name
    );
    for f in &s.fits {
        out += &format!("\n{}\n", f.site);
        match (&f.curves, &f.curves_note) {
            (Some(c), _) => out += &c.report("n"),
            (None, note) => {
                out += &format!("no fit: {}\n", note.as_deref().unwrap_or("not computed"))
            }
        }
    }
    out
}

/// The text of `points.csv` (see [`write_tables`]).
pub fn csv_text(s: &Summary) -> String {
    let mut out = String::from(
        "preset,site,n,samples,variance,variance_lo,variance_hi,variance_per_dim,snr,snr_per_dim,n_eff,entropy,adapter\n",
    );
    for p in &s.points {
        for site in &p.sites {
            let (lo, hi) = percentile_interval(&site.variance_boot);
            out.push_str(&format!(
                "{},{},{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:.4},{:.4},\"{}\"\n",
                s.config.preset.name(),
                site.site,
                p.n,
                p.samples,
                site.variance,
                lo,
                hi,
                site.variance_per_dim,
                site.snr,
                site.snr_per_dim,
                p.n_eff_mean,
                p.entropy_mean,
                s.adapter.name
            ));
        }
    }
    out
}

/// 95% percentile interval of bootstrap replicates. Replicates that could not be estimated
/// (NaN or infinite) are left out; NaN when none is left.
pub fn percentile_interval(reps: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = reps.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| quantile(&v, p, QuantileRule::Nearest);
    (q(0.025), q(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::config::Preset;
    use crate::sweep::results::SiteResult;

    fn point(n: usize, boot: Vec<f64>) -> LengthResult {
        let v = 1.0 / n as f64;
        LengthResult {
            n,
            samples: 64,
            sites: vec![SiteResult {
                site: "attn".into(),
                variance: v,
                variance_per_dim: v,
                variance_boot: boot.iter().map(|b| b * v).collect(),
                mean_norm_sq: 0.0,
                snr: 0.0,
                snr_per_dim: 0.0,
                snr_boot: boot.iter().map(|b| b - 1.0).collect(),
                fisher_snr: None,
                readout_accuracy: None,
            }],
            n_eff_mean: n as f64 / 2.0,
            n_eff_harmonic: n as f64 / 2.0,
            n_eff_se: 0.1,
            entropy_mean: 1.0,
            n_eff_layers: Vec::new(),
            n_eff_heads: Vec::new(),
            entropy_heads: Vec::new(),
            seconds: 0.0,
            kernels: Default::default(),
            prefix_of: None,
        }
    }

    /// A bootstrap replicate that drew fewer than two distinct samples has no variance (NaN):
    /// it is left out of the standard errors and intervals instead of turning them into NaN
    /// and losing every fit of the site.
    #[test]
    fn nan_bootstrap_replicate_is_left_out_of_the_fits() {
        let boot = |k: usize| -> Vec<f64> {
            (0..40)
                .map(|r| {
                    if r == k {
                        f64::NAN
                    } else {
                        0.9 + 0.005 * ((r * 7 + k) % 40) as f64
                    }
                })
                .collect()
        };
        let points: Vec<_> = [16, 32, 64, 128]
            .iter()
            .enumerate()
            .map(|(k, &n)| point(n, boot(k)))
            .collect();
        // Heavy tails: no expected slope, so the verdict reads against 1/n.
        let cfg = SweepConfig::for_preset(Preset::Heavy);
        let fit = &fit_sites(&cfg, &points)[0];
        let s = fit
            .slope_n
            .as_ref()
            .expect("a slope despite NaN replicates");
        assert!((s.slope + 1.0).abs() < 1e-9, "{}", s.slope);
        assert!(s.ci.lo.is_some() && s.ci.hi.is_some(), "{}", s.ci);
        assert!(
            fit.verdict.contains("consistent with 1/n"),
            "{}",
            fit.verdict
        );
        let (lo, hi) = percentile_interval(&points[0].sites[0].variance_boot);
        assert!(lo.is_finite() && hi.is_finite(), "{lo} {hi}");
    }

    /// When a fit cannot be made although there are enough lengths, the verdict says why
    /// instead of "too few lengths to fit".
    #[test]
    fn nan_variance_is_named_in_the_verdict() {
        let mut points: Vec<_> = [16, 32, 64]
            .iter()
            .map(|&n| point(n, vec![1.0; 20]))
            .collect();
        points[1].sites[0].variance = f64::NAN;
        let cfg = SweepConfig::for_preset(Preset::Clt);
        let fit = &fit_sites(&cfg, &points)[0];
        assert!(fit.slope_n.is_none());
        assert!(fit.verdict.contains("n = 32"), "{}", fit.verdict);
        assert!(!fit.verdict.contains("too few lengths"), "{}", fit.verdict);
    }

    /// The verdict follows the interval: a slope near -1 whose interval excludes the
    /// expectation is not called consistent, however close it is.
    #[test]
    fn verdict_says_consistent_only_when_the_interval_covers_the_expectation() {
        let s = Slope {
            slope: -0.97,
            intercept: 0.0,
            ci: Ci::new(-0.982, -0.960),
        };
        assert_eq!(
            verdict(Ok(&s), Some(-0.975), None),
            "consistent with the expected -0.975"
        );
        assert_eq!(
            verdict(Ok(&s), Some(-1.0), None),
            "slower than the expected -1.000"
        );
        assert_eq!(
            verdict(Ok(&s), Some(-0.9), None),
            "faster than the expected -0.900"
        );
        assert_eq!(verdict(Ok(&s), None, None), "slower than 1/n");
        let flat = Slope {
            slope: -0.03,
            intercept: 0.0,
            ci: Ci::new(-0.05, 0.01),
        };
        assert_eq!(verdict(Ok(&flat), None, None), "no decay (slope ~ 0)");
        // An interval wholly above 0 is growth, not a slow decay.
        let rising = Slope {
            slope: 0.2,
            intercept: 0.0,
            ci: Ci::new(0.1, 0.3),
        };
        assert_eq!(verdict(Ok(&rising), None, None), "grows with n");
    }

    /// The clt control's expectation on 16..2048 is a little above -1 (n_eff / n drifts).
    #[test]
    fn clt_expected_slope_on_its_grid_is_slightly_above_minus_one() {
        let cfg = SweepConfig::for_preset(Preset::Clt);
        let vpoints: Vec<Point> = cfg
            .lengths
            .iter()
            .map(|&n| Point {
                n: n as f64,
                value: 1.0 / n as f64,
                std_err: 0.05 / n as f64,
            })
            .collect();
        let e = expected_slope(&cfg, &vpoints).expect("an expectation");
        assert!(e > -1.0 && e < -0.98, "{e}");
        let mut sink = cfg.clone();
        sink.sink_mass = 0.25;
        assert!(expected_slope(&sink, &vpoints).is_none());
    }
}
