//! Fits of noise against context length (docs/METHOD.md, "Fits across lengths"): weighted
//! log-log lines and the SNR threshold crossing. Curves with and without a pedestal are in
//! `crate::curve`.

use serde::{Deserialize, Serialize};

use crate::stats::StatsError;

/// One measured value at context length `n`, with its standard error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub n: f64,
    pub value: f64,
    pub std_err: f64,
}

/// ln value = intercept + slope * ln n.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineFit {
    pub slope: f64,
    pub intercept: f64,
    /// Standard error of the slope; +inf when it cannot be estimated (two points, no errors).
    pub slope_se: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

/// Points must have finite positive n and value (we take logs) and finite non-negative errors.
fn check_log_points(points: &[Point], what: &'static str, need: usize) -> Result<(), StatsError> {
    if points.len() < need {
        return Err(StatsError::TooFewPoints {
            what,
            need,
            got: points.len(),
        });
    }
    for p in points {
        if !(p.n.is_finite() && p.value.is_finite() && p.std_err.is_finite()) {
            return Err(StatsError::NonFinite {
                what: format!("{what} point at n = {}", p.n),
            });
        }
        if p.n <= 0.0 || p.value <= 0.0 || p.std_err < 0.0 {
            return Err(StatsError::Invalid {
                what,
                reason: format!(
                    "point (n = {}, value = {}, std_err = {}) needs n > 0, value > 0 and \
                     std_err >= 0 to be fitted in logs",
                    p.n, p.value, p.std_err
                ),
            });
        }
    }
    Ok(())
}

/// Weights 1 / var(ln value) with var(ln value) ~ (std_err / value)^2. All-zero errors give
/// equal weights (returned flag false). A zero error among non-zero ones would mean infinite
/// weight, so it is raised to the smallest non-zero relative error.
pub fn log_weights(points: &[Point]) -> (Vec<f64>, bool) {
    let rel: Vec<f64> = points.iter().map(|p| p.std_err / p.value).collect();
    let floor = rel
        .iter()
        .copied()
        .filter(|&r| r > 0.0)
        .fold(f64::INFINITY, f64::min);
    if floor.is_infinite() {
        return (vec![1.0; points.len()], false);
    }
    (
        rel.iter().map(|r| 1.0 / r.max(floor).powi(2)).collect(),
        true,
    )
}

struct Line {
    slope: f64,
    intercept: f64,
    sxx: f64,
    rss: f64,
}

fn weighted_line(x: &[f64], y: &[f64], w: &[f64]) -> Result<Line, StatsError> {
    let sw: f64 = w.iter().sum();
    let xbar = x.iter().zip(w).map(|(x, w)| x * w).sum::<f64>() / sw;
    let ybar = y.iter().zip(w).map(|(y, w)| y * w).sum::<f64>() / sw;
    let mut sxx = 0.0;
    let mut sxy = 0.0;
    for ((x, y), w) in x.iter().zip(y).zip(w) {
        sxx += w * (x - xbar) * (x - xbar);
        sxy += w * (x - xbar) * (y - ybar);
    }
    if sxx.is_nan() || sxx <= 0.0 {
        return Err(StatsError::Invalid {
            what: "log-log fit",
            reason: "all points have the same n; measure at least two context lengths".into(),
        });
    }
    let slope = sxy / sxx;
    let intercept = ybar - slope * xbar;
    let rss = x
        .iter()
        .zip(y)
        .zip(w)
        .map(|((x, y), w)| w * (y - intercept - slope * x).powi(2))
        .sum();
    Ok(Line {
        slope,
        intercept,
        sxx,
        rss,
    })
}

/// Weighted least squares of ln value on ln n, weights 1 / (std_err / value)^2 (equal weights
/// when every std_err is 0). With errors, slope_se is the propagated error, inflated by the
/// reduced chi-square when the scatter exceeds the errors; with equal weights it comes from the
/// residuals alone (+inf for two points).
pub fn wls_loglog(points: &[Point]) -> Result<LineFit, StatsError> {
    check_log_points(points, "wls_loglog", 2)?;
    let x: Vec<f64> = points.iter().map(|p| p.n.ln()).collect();
    let y: Vec<f64> = points.iter().map(|p| p.value.ln()).collect();
    let (w, has_errors) = log_weights(points);
    let line = weighted_line(&x, &y, &w)?;
    let dof = points.len() as f64 - 2.0;
    let slope_se = match (has_errors, dof > 0.0) {
        (true, true) => ((line.rss / dof).max(1.0) / line.sxx).sqrt(),
        (true, false) => (1.0 / line.sxx).sqrt(),
        (false, true) => (line.rss / dof / line.sxx).sqrt(),
        (false, false) => f64::INFINITY,
    };
    Ok(LineFit {
        slope: line.slope,
        intercept: line.intercept,
        slope_se,
    })
}

/// Weighted least squares of ln value on ln n with the given weights (one per point, finite
/// and > 0): for refitting bootstrap replicates with the weights of the point estimate, so
/// that the replicates' spread measures the estimator that was used. Returns (slope, intercept).
pub fn loglog_line_weighted(
    points: &[(f64, f64)],
    weights: &[f64],
) -> Result<(f64, f64), StatsError> {
    if points.len() < 2 || weights.len() != points.len() {
        return Err(StatsError::Invalid {
            what: "loglog_line_weighted",
            reason: format!(
                "{} points and {} weights; give at least two points and one weight each",
                points.len(),
                weights.len()
            ),
        });
    }
    if let Some(&(n, v)) = points
        .iter()
        .find(|(n, v)| !(n.is_finite() && v.is_finite() && *n > 0.0 && *v > 0.0))
    {
        return Err(StatsError::Invalid {
            what: "loglog_line_weighted",
            reason: format!("point (n = {n}, value = {v}) needs finite n > 0 and value > 0"),
        });
    }
    if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
        return Err(StatsError::Invalid {
            what: "loglog_line_weighted",
            reason: format!("weight {w}; every weight must be finite and > 0"),
        });
    }
    let x: Vec<f64> = points.iter().map(|p| p.0.ln()).collect();
    let y: Vec<f64> = points.iter().map(|p| p.1.ln()).collect();
    let line = weighted_line(&x, &y, weights)?;
    Ok((line.slope, line.intercept))
}

/// V = sum / (S - 1) of per-sample contributions ||h_s - mu||^2, mu the full-sample mean (NaN
/// for fewer than two samples).
///
/// Used as the bootstrap statistic this keeps mu fixed instead of recomputing it per replicate.
/// The bootstrap mean is then exactly V (E* of a resampled sum is S times the sample average),
/// and the term it leaves out, S ||mu* - mu||^2 / (S - 1), is O(V / S): the interval is right to
/// leading order while storing one number per sample instead of a d-vector.
pub fn trace_variance_statistic(sq_dev_contributions: &[f64]) -> f64 {
    let s = sq_dev_contributions.len();
    if s < 2 {
        return f64::NAN;
    }
    sq_dev_contributions.iter().sum::<f64>() / (s as f64 - 1.0)
}

/// First n at which `value(n)` reaches `theta` from below: the first point at or above theta,
/// interpolated linearly in ln n from the point before it. When the first measured point is
/// already at or above theta, the crossing is reported at that n (it lies at or before it).
fn first_crossing(points: &[Point], theta: f64, value: impl Fn(&Point) -> f64) -> Option<f64> {
    let i = points.iter().position(|p| value(p) >= theta)?;
    if i == 0 {
        return Some(points[0].n);
    }
    let (a, b) = (&points[i - 1], &points[i]);
    let (va, vb) = (value(a), value(b));
    let frac = (theta - va) / (vb - va);
    Some((a.n.ln() + frac * (b.n.ln() - a.n.ln())).exp())
}

/// Smallest n where the value crosses `theta` going up, with an interval from the crossings of
/// value + 1.96 se (lo) and value - 1.96 se (hi, +inf if that never crosses). Ok(None) when the
/// value never reaches theta. Values may be negative (a bias-corrected SNR can be).
pub fn threshold_crossing(
    points: &[Point],
    theta: f64,
) -> Result<Option<(f64, Interval)>, StatsError> {
    if !theta.is_finite() {
        return Err(StatsError::NonFinite {
            what: "threshold theta".into(),
        });
    }
    for p in points {
        if !(p.n.is_finite() && p.value.is_finite() && p.std_err.is_finite()) {
            return Err(StatsError::NonFinite {
                what: format!("threshold_crossing point at n = {}", p.n),
            });
        }
        if p.n <= 0.0 || p.std_err < 0.0 {
            return Err(StatsError::Invalid {
                what: "threshold_crossing",
                reason: format!(
                    "point at n = {} with std_err = {}: needs n > 0 and std_err >= 0",
                    p.n, p.std_err
                ),
            });
        }
    }
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.n.total_cmp(&b.n));
    let Some(n) = first_crossing(&sorted, theta, |p| p.value) else {
        return Ok(None);
    };
    // The upper band is at least the value, so it crosses whenever the value does.
    let lo = first_crossing(&sorted, theta, |p| p.value + 1.96 * p.std_err).unwrap_or(n);
    let hi =
        first_crossing(&sorted, theta, |p| p.value - 1.96 * p.std_err).unwrap_or(f64::INFINITY);
    Ok(Some((n, Interval { lo, hi })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        StandardNormal.sample(rng)
    }

    #[test]
    fn wls_recovers_exact_and_noisy_power_laws() {
        let exact: Vec<Point> = [4.0, 16.0, 64.0, 256.0]
            .iter()
            .map(|&n: &f64| Point {
                n,
                value: 3.0 * n.powf(-0.6),
                std_err: 0.0,
            })
            .collect();
        let fit = wls_loglog(&exact).unwrap();
        assert!((fit.slope + 0.6).abs() < 1e-12);
        assert!((fit.intercept - 3f64.ln()).abs() < 1e-12);
        assert!(fit.slope_se < 1e-10);

        // Noisy points with honest 5% errors: slope within 4 standard errors of the truth, and
        // the standard error itself of the right size.
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let noisy: Vec<Point> = (2..12)
            .map(|k| {
                let n = 2f64.powi(k);
                let value = 0.7 / n * (0.05 * normal(&mut rng)).exp();
                Point {
                    n,
                    value,
                    std_err: 0.05 * value,
                }
            })
            .collect();
        let fit = wls_loglog(&noisy).unwrap();
        assert!((fit.slope + 1.0).abs() < 4.0 * fit.slope_se, "{fit:?}");
        assert!(fit.slope_se > 0.003 && fit.slope_se < 0.03, "{fit:?}");
    }

    /// With the weights `wls_loglog` derives, the explicit form gives the same line; other
    /// weights move it, and bad input is refused.
    #[test]
    fn weighted_line_matches_wls_and_uses_its_weights() {
        let pts: Vec<Point> = [
            (8.0, 0.2, 0.01),
            (32.0, 0.04, 0.004),
            (128.0, 0.013, 0.0002),
        ]
        .iter()
        .map(|&(n, value, std_err)| Point { n, value, std_err })
        .collect();
        let pairs: Vec<(f64, f64)> = pts.iter().map(|p| (p.n, p.value)).collect();
        let (w, _) = log_weights(&pts);
        let wls = wls_loglog(&pts).unwrap();
        let (slope, intercept) = loglog_line_weighted(&pairs, &w).unwrap();
        assert!((slope - wls.slope).abs() < 1e-12 && (intercept - wls.intercept).abs() < 1e-12);
        let (equal, _) = loglog_line_weighted(&pairs, &[1.0; 3]).unwrap();
        assert!((equal - slope).abs() > 1e-3, "{equal} {slope}");
        assert!(loglog_line_weighted(&pairs, &[1.0; 2]).is_err());
        assert!(loglog_line_weighted(&pairs, &[1.0, 0.0, 1.0]).is_err());
        assert!(loglog_line_weighted(&[(8.0, 0.1), (16.0, -1.0)], &[1.0; 2]).is_err());
    }

    #[test]
    fn wls_rejects_bad_points() {
        let p = |n: f64, value: f64| Point {
            n,
            value,
            std_err: 0.0,
        };
        assert!(wls_loglog(&[p(1.0, 1.0)]).is_err());
        assert!(wls_loglog(&[p(1.0, 1.0), p(2.0, 0.0)]).is_err());
        assert!(wls_loglog(&[p(-1.0, 1.0), p(2.0, 1.0)]).is_err());
        assert!(wls_loglog(&[p(1.0, f64::NAN), p(2.0, 1.0)]).is_err());
        assert!(wls_loglog(&[p(2.0, 1.0), p(2.0, 3.0)]).is_err());
        let two = wls_loglog(&[p(1.0, 1.0), p(2.0, 0.5)]).unwrap();
        assert!((two.slope + 1.0).abs() < 1e-12 && two.slope_se.is_infinite());
    }

    #[test]
    fn trace_variance_statistic_matches_definition() {
        assert_eq!(trace_variance_statistic(&[1.0, 2.0, 3.0]), 3.0);
        assert!(trace_variance_statistic(&[1.0]).is_nan());
    }

    #[test]
    fn threshold_crossing_interpolates_in_log_n() {
        // value = ln(n) / ln(2) - 3: crosses 0 at n = 8, +-1 at n = 16 and 4.
        let points: Vec<Point> = [32.0, 2.0, 128.0, 4.0, 16.0, 64.0]
            .iter()
            .map(|&n: &f64| Point {
                n,
                value: n.log2() - 3.0 + 0.2,
                std_err: 1.0 / 1.96,
            })
            .collect();
        let (n, ci) = threshold_crossing(&points, 0.2).unwrap().unwrap();
        assert!((n - 8.0).abs() < 1e-9, "{n}");
        assert!(
            (ci.lo - 4.0).abs() < 1e-9 && (ci.hi - 16.0).abs() < 1e-9,
            "{ci:?}"
        );
        assert!(threshold_crossing(&points, 100.0).unwrap().is_none());
        let (_, wide) = threshold_crossing(&points, 4.0).unwrap().unwrap();
        assert!(wide.hi.is_infinite());
        // Already above theta at the first point.
        let (first, _) = threshold_crossing(&points, -5.0).unwrap().unwrap();
        assert_eq!(first, 2.0);
        assert!(threshold_crossing(&points, f64::NAN).is_err());
        assert!(threshold_crossing(
            &[Point {
                n: 0.0,
                value: 1.0,
                std_err: 0.0
            }],
            0.5
        )
        .is_err());
    }
}
