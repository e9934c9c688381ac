//! Threshold fits of in-context emergence: does accuracy switch on when the signal-to-noise
//! ratio of the label in a layer's hidden state crosses one threshold theta, the same for every
//! layer and task?
//!
//! - Model. Each point is a (group, SNR, correct out of trials) triple, e.g. the group
//!   "induction/L3" at one context length. The probability of a correct answer is
//!   p(x) = chance + (1 - chance) * sigmoid(slope * (ln snr - ln theta)): chance level far
//!   below theta, certainty far above it, half-way between the two at snr = theta.
//! - Fit. Maximum binomial likelihood over the points, in the parameters (ln theta, ln slope)
//!   so the slope stays positive without constraints, by L-BFGS (argmin) with an analytic
//!   gradient from a grid of starts (ln theta over the measured ln snr, slope 0.5, 2, 8).
//!   Points with snr <= 0 or not finite have no ln snr; they are left out and counted.
//! - Interval. Profile likelihood: the 95% interval of theta is the set of theta whose
//!   profile log-likelihood (maximised over the slope at that theta) is within
//!   chi-square(1) 0.95 / 2 = 1.92 of the maximum. Each end is found by stepping outward from
//!   the fitted ln theta in steps of 1/8 of the measured ln snr span, then bisecting. An end
//!   not reached within 3 spans beyond the measured ln snr range is open: theta from 0 or up
//!   to infinity (`null` in JSON). Why not a bootstrap of the counts: the fit is often a
//!   near-step with points at 0% or 100% beside it, such points are redrawn unchanged, and the
//!   percentile interval collapsed onto the one point inside the switch. With 8 points over
//!   [0.01, 100], slope 3, 200 trials, it covered the true theta in 69 of 100 data sets; the
//!   profile interval covers it in 96 (57 of 60 with 3 groups and 400 trials).
//! - Verdict. A threshold reading of emergence predicts one theta across layers and tasks, so
//!   one shared (theta, slope) is compared with a separate (theta, slope) per group, by AICc
//!   (AIC with the small-sample correction, since a group has only a handful of points) and a
//!   likelihood-ratio test. One threshold fits when AICc prefers the shared fit, every
//!   group's own interval overlaps the shared one and the likelihood-ratio test does not
//!   reject it at 5%; the thresholds differ when AICc prefers the separate fits and the
//!   likelihood-ratio p-value is below 0.05; anything else is undecided.

use argmin::core::TerminationReason;

use crate::optimise::{lbfgs, Objective};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Level of the theta intervals.
pub const LEVEL: f64 = 0.95;
/// Upper 0.95 quantile of chi-square with 1 degree of freedom: the profile interval's cut-off
/// on 2 * (max ln L - profile ln L).
pub const CHI2_1_95: f64 = 3.841_458_820_694_124;
/// Steps per measured ln snr span in the outward search for an interval's ends.
const PROFILE_STEPS_PER_SPAN: f64 = 8.0;
/// How many spans beyond the measured ln snr range that search goes before calling an end open.
const PROFILE_REACH_SPANS: f64 = 3.0;
/// Bisection stops when the bracket is this narrow in ln theta.
const PROFILE_TOL: f64 = 1e-6;
/// Significance level of the likelihood-ratio test for "the thresholds differ".
pub const LR_ALPHA: f64 = 0.05;
/// Parameters of one threshold fit: ln theta and ln slope.
pub const PARAMS: usize = 2;
/// Fewest usable points for a fit: two parameters and at least one degree of freedom.
pub const MIN_POINTS: usize = 3;
/// p is kept within [P_FLOOR, 1 - P_FLOOR] in the likelihood, so one point that the curve
/// calls impossible costs a large but finite amount instead of an infinite one.
const P_FLOOR: f64 = 1e-12;
const SLOPE_STARTS: [f64; 3] = [0.5, 2.0, 8.0];
const THETA_STARTS: usize = 5;
const MAX_ITERS: u64 = 1000;
/// Gradient norm, per point, of the scaled negative log-likelihood that counts as a minimum.
const GRAD_TOL: f64 = 1e-6;

/// One measurement: a group (task/layer), the SNR of the label at the probe, and the accuracy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccuracyPoint {
    pub group: String,
    #[serde(with = "crate::nonfinite")]
    pub snr: f64,
    pub correct: u64,
    pub trials: u64,
}

/// One fit of p(x) = chance + (1 - chance) * sigmoid(slope * (ln snr - ln theta)).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdFit {
    #[serde(with = "crate::nonfinite")]
    pub theta: f64,
    #[serde(with = "crate::nonfinite")]
    pub log_theta: f64,
    #[serde(with = "crate::nonfinite")]
    pub slope: f64,
    pub chance: f64,
    /// Binomial log-likelihood, binomial coefficients included.
    #[serde(with = "crate::nonfinite")]
    pub log_likelihood: f64,
    /// AICc of this fit alone (2 parameters); None when points - 3 <= 0.
    pub aicc: Option<f64>,
    /// Points used.
    pub points: usize,
    /// Points left out because their snr was <= 0 or not finite.
    pub left_out: usize,
    /// Whether the optimiser reached a minimum (small gradient) with theta within reach of the
    /// measured SNRs. Not converged means the data do not pin the threshold down, e.g.
    /// accuracy never leaves chance, so theta runs off beyond the measured range. A near-step
    /// (no point inside the switch besides one) still counts as converged: the likelihood
    /// flattens as the slope grows, the optimiser stops there, and the slope is then only a
    /// lower bound.
    pub converged: bool,
}

/// What the comparison of one shared threshold with one per group says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    OneThresholdFits,
    ThresholdsDiffer,
    Undecided,
}

/// One shared threshold against one per group, with profile-likelihood intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdReport {
    /// One theta and one slope for every point.
    pub shared: ThresholdFit,
    /// 95% profile-likelihood interval (lo, hi) of the shared theta over the shared slope.
    /// Always present; an open end is lo = 0 or hi = infinity, `null` in JSON (unbounded).
    #[serde(with = "interval")]
    pub shared_theta_ci: (f64, f64),
    /// Each group (in order of first appearance): its own fit and its theta's 95% profile
    /// interval over its own slope (open ends and JSON as for `shared_theta_ci`).
    #[serde(with = "group_intervals")]
    pub per_group: Vec<(String, ThresholdFit, (f64, f64))>,
    /// AICc of the shared fit (2 parameters).
    pub aicc_shared: Option<f64>,
    /// AICc of the separate fits together: 2 parameters per group, log-likelihood summed.
    pub aicc_separate: Option<f64>,
    /// Likelihood-ratio test of shared within separate, chi-square with 2 * (groups - 1)
    /// degrees of freedom; NaN with one group (nothing to compare).
    #[serde(with = "crate::nonfinite")]
    pub lr_p_value: f64,
    pub one_threshold: Verdict,
    /// Which groups' intervals miss the shared theta's interval; "" when none.
    pub note: String,
}

/// Bad input to a threshold fit; each message names the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum EmergenceError {
    #[error("chance = {0}, but chance must lie in [0, 1) (0.5 for a binary choice)")]
    BadChance(f64),
    #[error("point {index} (group {group}) has trials = 0; every point needs at least one trial")]
    NoTrials { index: usize, group: String },
    #[error("point {index} (group {group}) has correct = {correct} > trials = {trials}")]
    CorrectExceedsTrials {
        index: usize,
        group: String,
        correct: u64,
        trials: u64,
    },
    #[error("{what}: {usable} usable points ({left_out} left out for snr <= 0 or not finite); a threshold fit needs at least {MIN_POINTS}")]
    TooFewPoints {
        what: String,
        usable: usize,
        left_out: usize,
    },
    #[error("{what}: no starting point gave a finite likelihood")]
    NoFit { what: String },
}

/// The usable points of one fit, as the likelihood needs them.
#[derive(Clone, Debug)]
struct Data {
    /// ln snr.
    x: Vec<f64>,
    k: Vec<f64>,
    n: Vec<f64>,
    /// Mean trials: dividing the log-likelihood by it keeps the objective O(1) per point, so
    /// one gradient tolerance suits 20 trials and 20 000 alike.
    scale: f64,
}

impl Data {
    fn new(x: Vec<f64>, k: Vec<f64>, n: Vec<f64>) -> Data {
        let scale = (n.iter().sum::<f64>() / n.len().max(1) as f64).max(1.0);
        Data { x, k, n, scale }
    }

    fn len(&self) -> usize {
        self.x.len()
    }

    /// Range of ln snr within which theta counts as identified: the measured range widened by
    /// its span (at least 1) to either side.
    fn theta_reach(&self) -> (f64, f64) {
        let lo = self.x.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let margin = (hi - lo).max(1.0);
        (lo - margin, hi + margin)
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// ln sigmoid(z) without overflow for large |z|.
fn log_sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        -(-z).exp().ln_1p()
    } else {
        z - z.exp().ln_1p()
    }
}

/// ln p, ln (1 - p) and their derivatives in z = slope * (ln snr - ln theta), with p clamped
/// into [P_FLOOR, 1 - P_FLOOR] (zero derivative where the clamp holds).
fn log_probs(z: f64, chance: f64) -> (f64, f64, f64, f64) {
    let s = sigmoid(z);
    let s_neg = sigmoid(-z);
    let (mut lp, mut dlp) = if chance == 0.0 {
        // c + (1 - c) sigmoid(z) would lose ln p to underflow far below threshold.
        (log_sigmoid(z), s_neg)
    } else {
        let p = chance + (1.0 - chance) * s;
        (p.ln(), (1.0 - chance) * s * s_neg / p)
    };
    // 1 - p = (1 - c) sigmoid(-z): exact in logs even when p rounds to 1.
    let (mut lq, mut dlq) = ((1.0 - chance).ln() + log_sigmoid(-z), -s);
    let lo = P_FLOOR.ln();
    let hi = (-P_FLOOR).ln_1p();
    if lp < lo || lp > hi {
        lp = lp.clamp(lo, hi);
        dlp = 0.0;
    }
    if lq < lo || lq > hi {
        lq = lq.clamp(lo, hi);
        dlq = 0.0;
    }
    (lp, lq, dlp, dlq)
}

/// The log-likelihood without binomial coefficients, and its gradient in (ln theta, ln slope).
fn log_likelihood_kernel(data: &Data, chance: f64, p: &[f64]) -> (f64, [f64; 2]) {
    let (log_theta, slope) = (p[0], p[1].exp());
    let mut ll = 0.0;
    let mut g = [0.0; 2];
    for i in 0..data.len() {
        let z = slope * (data.x[i] - log_theta);
        let (lp, lq, dlp, dlq) = log_probs(z, chance);
        let (k, n) = (data.k[i], data.n[i]);
        ll += k * lp + (n - k) * lq;
        let dz = k * dlp + (n - k) * dlq;
        g[0] -= dz * slope;
        // d z / d ln slope = z.
        g[1] += dz * z;
    }
    (ll, g)
}

fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

fn full_log_likelihood(data: &Data, chance: f64, p: &[f64]) -> f64 {
    let constant: f64 = (0..data.len())
        .map(|i| ln_choose(data.n[i], data.k[i]))
        .sum();
    log_likelihood_kernel(data, chance, p).0 + constant
}

/// Negative log-likelihood / scale, for argmin: in (ln theta, ln slope), or in ln slope alone
/// at a fixed ln theta (the profile).
struct Problem<'a> {
    data: &'a Data,
    chance: f64,
    fixed_log_theta: Option<f64>,
}

impl Problem<'_> {
    fn eval(&self, p: &[f64]) -> (f64, Vec<f64>) {
        let q = match self.fixed_log_theta {
            Some(t) => [t, p[0]],
            None => [p[0], p[1]],
        };
        let (ll, g) = log_likelihood_kernel(self.data, self.chance, &q);
        let s = self.data.scale;
        let grad = match self.fixed_log_theta {
            Some(_) => vec![-g[1] / s],
            None => vec![-g[0] / s, -g[1] / s],
        };
        (-ll / s, grad)
    }
}

impl Objective for Problem<'_> {
    fn evaluate(&self, p: &[f64], _gradient: bool) -> (f64, Vec<f64>) {
        self.eval(p)
    }
}

/// One minimisation: (ln theta, ln slope), scaled objective, converged.
#[derive(Clone, Debug)]
struct Solved {
    p: [f64; 2],
    cost: f64,
    converged: bool,
}

/// L-BFGS over (ln theta, ln slope) from `start`.
fn minimise(data: &Data, chance: f64, start: [f64; 2]) -> Option<Solved> {
    let problem = Problem {
        data,
        chance,
        fixed_log_theta: None,
    };
    if !problem.eval(&start).0.is_finite() {
        return None;
    }
    let (p, reason) = lbfgs(problem, start.to_vec(), GRAD_TOL * 0.1, MAX_ITERS)?;
    let p = [p[0], p[1]];
    let (cost, g) = Problem {
        data,
        chance,
        fixed_log_theta: None,
    }
    .eval(&p);
    if !cost.is_finite() {
        return None;
    }
    let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let (lo, hi) = data.theta_reach();
    // argmin also stops when the cost stops changing or the line search fails, so only a small
    // gradient counts; and far beyond the data the gradient vanishes without a minimum there.
    let converged = gnorm <= GRAD_TOL * (data.len() as f64).max(1.0)
        && !matches!(reason, Some(TerminationReason::MaxItersReached))
        && (lo..=hi).contains(&p[0])
        && p[1].is_finite();
    Some(Solved { p, cost, converged })
}

/// Grid of starts: ln theta at 5 points across the measured ln snr, slope 0.5, 2, 8.
fn grid_starts(data: &Data) -> Vec<[f64; 2]> {
    let lo = data.x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = data.x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut starts = Vec::new();
    for i in 0..THETA_STARTS {
        let l = lo + (hi - lo) * i as f64 / (THETA_STARTS - 1) as f64;
        for s in SLOPE_STARTS {
            starts.push([l, s.ln()]);
        }
    }
    starts
}

/// Best of the grid: the lowest objective, taking a converged start whenever one reaches it
/// (within 1e-9 relative). A lower unconverged start is kept and reported as unconverged
/// rather than passing off a worse converged one as the maximum.
fn best_of(data: &Data, chance: f64, starts: &[[f64; 2]]) -> Option<Solved> {
    let runs: Vec<Solved> = starts
        .iter()
        .filter_map(|&s| minimise(data, chance, s))
        .collect();
    let lowest = runs.iter().map(|r| r.cost).fold(f64::INFINITY, f64::min);
    let tol = 1e-9 * lowest.abs().max(1e-3);
    runs.iter()
        .filter(|r| r.converged && r.cost <= lowest + tol)
        .min_by(|a, b| a.cost.total_cmp(&b.cost))
        .or_else(|| runs.iter().min_by(|a, b| a.cost.total_cmp(&b.cost)))
        .cloned()
}

/// Profile log-likelihood (binomial coefficients left out) at ln theta = `log_theta`: the
/// largest over ln slope from each of `starts`, with the ln slope that gives it. A near-step
/// has its supremum as the slope grows; L-BFGS stops where the gain has become negligible.
fn profile(data: &Data, chance: f64, log_theta: f64, starts: &[f64]) -> (f64, f64) {
    let mut best = (f64::NEG_INFINITY, starts[0]);
    for &s in starts {
        let problem = Problem {
            data,
            chance,
            fixed_log_theta: Some(log_theta),
        };
        if let Some((p, _)) = lbfgs(problem, vec![s], GRAD_TOL * 0.1, MAX_ITERS) {
            let ll = log_likelihood_kernel(data, chance, &[log_theta, p[0]]).0;
            if ll > best.0 {
                best = (ll, p[0]);
            }
        }
    }
    best
}

/// 95% profile-likelihood interval of theta around the fit `s`: (lo, hi) in theta, lo = 0 or
/// hi = infinity where that end is open (the profile does not drop by chi-square(1) 0.95 / 2
/// within 3 measured ln snr spans beyond the measured range). Each end is the first crossing
/// outward from the fitted ln theta.
fn profile_interval(data: &Data, chance: f64, s: &Solved) -> (f64, f64) {
    let ll_max = log_likelihood_kernel(data, chance, &s.p).0;
    let lo = data.x.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = data.x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = (hi - lo).max(1.0);
    let limits = (
        lo - PROFILE_REACH_SPANS * span,
        hi + PROFILE_REACH_SPANS * span,
    );
    let step = span / PROFILE_STEPS_PER_SPAN;
    // An unconverged fit can put ln theta far beyond the data; start the search within reach.
    let t0 = s.p[0].clamp(limits.0, limits.1);
    let mut fixed_starts: Vec<f64> = vec![s.p[1]];
    fixed_starts.extend(SLOPE_STARTS.iter().map(|v| v.ln()));
    // A profile above ll_max (the fit stopped short of the maximum) counts as inside.
    let outside = |t: f64, prev_slope: f64| -> (bool, f64) {
        let mut starts = vec![prev_slope];
        starts.extend_from_slice(&fixed_starts);
        let (ll, ls) = profile(data, chance, t, &starts);
        (2.0 * (ll_max - ll) > CHI2_1_95, ls)
    };
    let end = |dir: f64, limit: f64| -> f64 {
        let (mut inner, mut slope) = (t0, s.p[1]);
        loop {
            if (limit - inner) * dir <= 0.0 {
                return dir * f64::INFINITY;
            }
            let t = if (limit - inner) * dir <= step {
                limit
            } else {
                inner + dir * step
            };
            let (out, ls) = outside(t, slope);
            if out {
                let mut outer = t;
                while (outer - inner).abs() > PROFILE_TOL {
                    let mid = 0.5 * (inner + outer);
                    let (out, ls) = outside(mid, slope);
                    if out {
                        outer = mid;
                    } else {
                        inner = mid;
                        slope = ls;
                    }
                }
                return 0.5 * (inner + outer);
            }
            inner = t;
            slope = ls;
        }
    };
    (end(-1.0, limits.0).exp(), end(1.0, limits.1).exp())
}

/// AICc from a log-likelihood: -2 ll + 2k + 2k(k+1)/(n-k-1); None when n - k - 1 <= 0.
pub fn aicc(log_likelihood: f64, points: usize, params: usize) -> Option<f64> {
    if points <= params + 1 || !log_likelihood.is_finite() {
        return None;
    }
    let (n, k) = (points as f64, params as f64);
    Some(-2.0 * log_likelihood + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0))
}

fn check_chance(chance: f64) -> Result<(), EmergenceError> {
    if (0.0..1.0).contains(&chance) {
        Ok(())
    } else {
        Err(EmergenceError::BadChance(chance))
    }
}

fn check_counts(points: &[AccuracyPoint]) -> Result<(), EmergenceError> {
    for (index, pt) in points.iter().enumerate() {
        if pt.trials == 0 {
            return Err(EmergenceError::NoTrials {
                index,
                group: pt.group.clone(),
            });
        }
        if pt.correct > pt.trials {
            return Err(EmergenceError::CorrectExceedsTrials {
                index,
                group: pt.group.clone(),
                correct: pt.correct,
                trials: pt.trials,
            });
        }
    }
    Ok(())
}

fn usable(pt: &AccuracyPoint) -> bool {
    pt.snr.is_finite() && pt.snr > 0.0
}

/// The usable points among `points` (indices into it) and how many were left out.
fn split_usable<'a>(
    points: impl Iterator<Item = (usize, &'a AccuracyPoint)>,
) -> (Vec<usize>, usize) {
    let mut used = Vec::new();
    let mut left_out = 0;
    for (i, pt) in points {
        if usable(pt) {
            used.push(i);
        } else {
            left_out += 1;
        }
    }
    (used, left_out)
}

/// Data of the points `idx`, with correct counts `k` indexed like `points`.
fn data_of(points: &[AccuracyPoint], idx: &[usize], k: &[f64]) -> Data {
    Data::new(
        idx.iter().map(|&i| points[i].snr.ln()).collect(),
        idx.iter().map(|&i| k[i]).collect(),
        idx.iter().map(|&i| points[i].trials as f64).collect(),
    )
}

fn to_fit(data: &Data, chance: f64, s: &Solved, left_out: usize) -> ThresholdFit {
    let ll = full_log_likelihood(data, chance, &s.p);
    ThresholdFit {
        theta: s.p[0].exp(),
        log_theta: s.p[0],
        slope: s.p[1].exp(),
        chance,
        log_likelihood: ll,
        aicc: aicc(ll, data.len(), PARAMS),
        points: data.len(),
        left_out,
        converged: s.converged,
    }
}

/// Fits the points `idx` (already validated), with `what` naming them in errors.
fn fit_indices(
    points: &[AccuracyPoint],
    idx: &[usize],
    left_out: usize,
    chance: f64,
    what: &str,
) -> Result<(Data, Solved, ThresholdFit), EmergenceError> {
    if idx.len() < MIN_POINTS {
        return Err(EmergenceError::TooFewPoints {
            what: what.to_string(),
            usable: idx.len(),
            left_out,
        });
    }
    let k: Vec<f64> = points.iter().map(|p| p.correct as f64).collect();
    let data = data_of(points, idx, &k);
    let solved =
        best_of(&data, chance, &grid_starts(&data)).ok_or_else(|| EmergenceError::NoFit {
            what: what.to_string(),
        })?;
    let fit = to_fit(&data, chance, &solved, left_out);
    Ok((data, solved, fit))
}

/// Fits one threshold and slope to all `points` (whatever their groups) by maximum binomial
/// likelihood. Points with snr <= 0 or not finite are left out and counted in `left_out`.
pub fn fit_threshold(
    points: &[AccuracyPoint],
    chance: f64,
) -> Result<ThresholdFit, EmergenceError> {
    check_chance(chance)?;
    check_counts(points)?;
    let (idx, left_out) = split_usable(points.iter().enumerate());
    fit_indices(points, &idx, left_out, chance, "the points").map(|(_, _, fit)| fit)
}

fn overlaps(a: (f64, f64), b: (f64, f64)) -> bool {
    a.0 <= b.1 && b.0 <= a.1
}

/// Fits one threshold shared by every point and one per group, gives each theta its 95%
/// profile-likelihood interval (over the shared slope, or the group's own), and decides
/// whether one threshold fits all groups. Groups are kept in order of first appearance.
pub fn threshold_report(
    points: &[AccuracyPoint],
    chance: f64,
) -> Result<ThresholdReport, EmergenceError> {
    check_chance(chance)?;
    check_counts(points)?;
    let mut all_names: Vec<&str> = Vec::new();
    for pt in points {
        if !all_names.contains(&pt.group.as_str()) {
            all_names.push(&pt.group);
        }
    }
    // A group with too few usable points cannot have its own fit; it leaves the comparison
    // (and the shared fit, so that both fits see the same points) and is named.
    let usable_in = |name: &str| {
        split_usable(points.iter().enumerate().filter(|(_, p)| p.group == name))
            .0
            .len()
    };
    let (names, dropped): (Vec<&str>, Vec<&str>) = all_names
        .iter()
        .partition(|name| usable_in(name) >= MIN_POINTS);
    if names.is_empty() {
        return Err(EmergenceError::TooFewPoints {
            what: format!(
                "every group ({}): fewer than {MIN_POINTS} usable points each",
                dropped.join(", ")
            ),
            usable: 0,
            left_out: points.len(),
        });
    }
    let (all_idx, all_left_out) = split_usable(
        points
            .iter()
            .enumerate()
            .filter(|(_, p)| names.contains(&p.group.as_str())),
    );
    let (shared_data, shared_solved, shared) =
        fit_indices(points, &all_idx, all_left_out, chance, "all points")?;
    let shared_theta_ci = profile_interval(&shared_data, chance, &shared_solved);
    let mut per_group = Vec::new();
    for name in &names {
        let (idx, left_out) =
            split_usable(points.iter().enumerate().filter(|(_, p)| p.group == *name));
        let (data, solved, fit) =
            fit_indices(points, &idx, left_out, chance, &format!("group {name}"))?;
        // With one group its data are the shared data.
        let ci = if names.len() > 1 {
            profile_interval(&data, chance, &solved)
        } else {
            shared_theta_ci
        };
        per_group.push((name.to_string(), fit, ci));
    }
    let g = names.len();

    let n = shared_data.len();
    let ll_separate: f64 = per_group.iter().map(|(_, f, _)| f.log_likelihood).sum();
    let aicc_shared = shared.aicc;
    let aicc_separate = aicc(ll_separate, n, PARAMS * g);
    let lr_p_value = if g > 1 {
        // The separate fits nest the shared one, so the statistic is >= 0 up to rounding.
        let stat = (2.0 * (ll_separate - shared.log_likelihood)).max(0.0);
        chi_square_sf(stat, (PARAMS * (g - 1)) as f64)
    } else {
        f64::NAN
    };

    let misses: Vec<String> = per_group
        .iter()
        .filter(|(_, _, ci)| !overlaps(*ci, shared_theta_ci))
        .map(|(name, _, ci)| format!("{name} [{:.4}, {:.4}]", ci.0, ci.1))
        .collect();
    let mut notes = Vec::new();
    if !misses.is_empty() {
        notes.push(format!(
            "theta intervals that miss the shared theta's [{:.4}, {:.4}]: {}",
            shared_theta_ci.0,
            shared_theta_ci.1,
            misses.join(", ")
        ));
    }
    if !dropped.is_empty() {
        notes.push(format!(
            "left out, fewer than {MIN_POINTS} points with SNR > 0: {}",
            dropped.join(", ")
        ));
    }
    let aicc_prefers_shared = matches!((aicc_shared, aicc_separate), (Some(a), Some(b)) if a <= b);
    if g > 1 && aicc_prefers_shared && lr_p_value < LR_ALPHA {
        notes.push(format!(
            "AICc prefers one threshold but the likelihood-ratio test rejects it (p {lr_p_value:.2e}): \
             the AICc's small-sample penalty on {} parameters outweighs a real difference",
            PARAMS * g
        ));
    }
    let note = notes.join("; ");

    let all_converged = shared.converged && per_group.iter().all(|(_, f, _)| f.converged);
    let one_threshold = match (aicc_shared, aicc_separate) {
        // One group has nothing to compare; an unconverged fit's likelihood is no maximum.
        _ if g < 2 || !all_converged => Verdict::Undecided,
        (Some(a_sh), Some(a_sep)) => {
            // Both tests must agree: the AICc's small-sample penalty can prefer the shared
            // fit while the likelihood ratio rejects it.
            if a_sh <= a_sep && misses.is_empty() && lr_p_value >= LR_ALPHA {
                Verdict::OneThresholdFits
            } else if a_sep < a_sh && lr_p_value < LR_ALPHA {
                Verdict::ThresholdsDiffer
            } else {
                Verdict::Undecided
            }
        }
        _ => Verdict::Undecided,
    };

    Ok(ThresholdReport {
        shared,
        shared_theta_ci,
        per_group,
        aicc_shared,
        aicc_separate,
        lr_p_value,
        one_threshold,
        note,
    })
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).
pub fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: the series is accurate only for x >= 0.5.
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

const GAMMA_EPS: f64 = 1e-15;
const GAMMA_ITERS: usize = 10_000;

/// P(a, x) by its series, for x < a + 1 where it converges fast.
fn gamma_p_series(a: f64, x: f64) -> f64 {
    let mut ap = a;
    let mut del = 1.0 / a;
    let mut sum = del;
    for _ in 0..GAMMA_ITERS {
        ap += 1.0;
        del *= x / ap;
        sum += del;
        if del.abs() < sum.abs() * GAMMA_EPS {
            break;
        }
    }
    sum * (-x + a * x.ln() - ln_gamma(a)).exp()
}

/// Q(a, x) by its continued fraction (modified Lentz), for x >= a + 1.
fn gamma_q_fraction(a: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / TINY;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..GAMMA_ITERS {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < TINY {
            d = TINY;
        }
        c = b + an / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < GAMMA_EPS {
            break;
        }
    }
    (-x + a * x.ln() - ln_gamma(a)).exp() * h
}

/// Regularised upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a), for a > 0, x >= 0
/// (Numerical Recipes: series below a + 1, continued fraction above). NaN outside that.
pub fn regularized_gamma_q(a: f64, x: f64) -> f64 {
    if !(a > 0.0 && a.is_finite()) || x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return 1.0;
    }
    if x.is_infinite() {
        return 0.0;
    }
    if x < a + 1.0 {
        (1.0 - gamma_p_series(a, x)).clamp(0.0, 1.0)
    } else {
        gamma_q_fraction(a, x).clamp(0.0, 1.0)
    }
}

/// Survival function of the chi-square distribution with `df` degrees of freedom: P(X > x).
pub fn chi_square_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return if df > 0.0 { 1.0 } else { f64::NAN };
    }
    regularized_gamma_q(df / 2.0, x / 2.0)
}

/// An interval end for JSON: finite as itself, open (0 below, infinity above) as `null`.
fn end_out(v: f64, open: f64) -> Option<f64> {
    (v != open).then_some(v)
}

fn end_in(v: Option<f64>, open: f64) -> f64 {
    v.unwrap_or(open)
}

/// Serde of a theta interval (lo, hi) as [lo, hi] with an open end as `null` (unbounded): lo
/// `null` is 0 and hi `null` is infinity, so an interval reads back as written.
mod interval {
    use super::*;

    pub fn serialize<S: Serializer>(v: &(f64, f64), s: S) -> Result<S::Ok, S::Error> {
        (end_out(v.0, 0.0), end_out(v.1, f64::INFINITY)).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(f64, f64), D::Error> {
        <(Option<f64>, Option<f64>)>::deserialize(d)
            .map(|(a, b)| (end_in(a, 0.0), end_in(b, f64::INFINITY)))
    }
}

/// The same for the per-group (name, fit, interval) list.
mod group_intervals {
    use super::*;

    type Row = (String, ThresholdFit, (f64, f64));
    type Ends = (Option<f64>, Option<f64>);

    fn out(ci: &(f64, f64)) -> Ends {
        (end_out(ci.0, 0.0), end_out(ci.1, f64::INFINITY))
    }

    pub fn serialize<S: Serializer>(v: &[Row], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(g, f, ci)| (g, f, out(ci))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Row>, D::Error> {
        Vec::<(String, ThresholdFit, Ends)>::deserialize(d).map(|v| {
            v.into_iter()
                .map(|(g, f, (a, b))| (g, f, (end_in(a, 0.0), end_in(b, f64::INFINITY))))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Binomial, Distribution};

    const TRUE_THETA: f64 = 1.5;
    const TRUE_SLOPE: f64 = 3.0;

    fn truth(snr: f64, theta: f64, slope: f64, chance: f64) -> f64 {
        chance + (1.0 - chance) * sigmoid(slope * (snr.ln() - theta.ln()))
    }

    /// 8 SNRs log-uniform over [0.01, 100].
    fn snrs() -> Vec<f64> {
        (0..8)
            .map(|j| 10f64.powf(-2.0 + 4.0 * j as f64 / 7.0))
            .collect()
    }

    /// Simulated groups: (name, theta), each at the 8 SNRs with `trials` trials.
    fn simulate(groups: &[(&str, f64)], trials: u64, seed: u64) -> Vec<AccuracyPoint> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for &(name, theta) in groups {
            for snr in snrs() {
                let p = truth(snr, theta, TRUE_SLOPE, 0.5);
                let correct = Binomial::new(trials, p).unwrap().sample(&mut rng);
                out.push(AccuracyPoint {
                    group: name.to_string(),
                    snr,
                    correct,
                    trials,
                });
            }
        }
        out
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let pts = simulate(&[("a", TRUE_THETA)], 400, 7);
        for chance in [0.0, 0.5] {
            let idx: Vec<usize> = (0..pts.len()).collect();
            let k: Vec<f64> = pts.iter().map(|p| p.correct as f64).collect();
            let data = data_of(&pts, &idx, &k);
            let p = [0.3, 0.9];
            let (_, g) = log_likelihood_kernel(&data, chance, &p);
            for j in 0..2 {
                let h = 1e-6;
                let (mut up, mut dn) = (p, p);
                up[j] += h;
                dn[j] -= h;
                let fd = (log_likelihood_kernel(&data, chance, &up).0
                    - log_likelihood_kernel(&data, chance, &dn).0)
                    / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() <= 1e-5 * fd.abs().max(1.0),
                    "chance {chance} param {j}: analytic {} vs numeric {fd}",
                    g[j]
                );
            }
        }
    }

    #[test]
    fn log_probs_stay_finite_far_from_threshold() {
        for z in [-1e4, -50.0, 0.0, 50.0, 1e4] {
            for chance in [0.0, 0.5] {
                let (lp, lq, dlp, dlq) = log_probs(z, chance);
                assert!(lp.is_finite() && lq.is_finite() && dlp.is_finite() && dlq.is_finite());
                assert!(
                    lp >= P_FLOOR.ln() && lq >= P_FLOOR.ln(),
                    "z {z} chance {chance}"
                );
            }
        }
    }

    #[test]
    fn recovers_known_theta_and_slope() {
        let groups = [
            ("induction/L1", TRUE_THETA),
            ("induction/L3", TRUE_THETA),
            ("fewshot/L3", TRUE_THETA),
        ];
        let pts = simulate(&groups, 400, 1);
        let r = threshold_report(&pts, 0.5).unwrap();
        eprintln!("{r:#?}");
        assert!(r.shared.converged);
        assert_eq!(r.shared.points, 24);
        assert!(
            (r.shared.theta / TRUE_THETA - 1.0).abs() < 0.15,
            "theta {}",
            r.shared.theta
        );
        assert!(
            (r.shared.slope / TRUE_SLOPE - 1.0).abs() < 0.3,
            "slope {}",
            r.shared.slope
        );
        let (lo, hi) = r.shared_theta_ci;
        assert!(lo <= TRUE_THETA && TRUE_THETA <= hi, "interval {lo}..{hi}");
        assert_eq!(r.per_group.len(), 3);
        assert_eq!(r.per_group[1].0, "induction/L3");
        assert_eq!(r.one_threshold, Verdict::OneThresholdFits, "{}", r.note);
        assert_eq!(r.note, "");
        // Survives JSON both ways.
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"one_threshold_fits\""));
        let back: ThresholdReport = serde_json::from_str(&text).unwrap();
        // serde_json may read a float back one ulp off, so compare to 1e-12.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(1.0);
        assert!(close(back.shared.theta, r.shared.theta));
        assert!(close(back.shared_theta_ci.1, r.shared_theta_ci.1));
        assert!(close(back.per_group[2].2 .0, r.per_group[2].2 .0));
        assert_eq!(back.per_group[2].0, r.per_group[2].0);
        assert_eq!(back.one_threshold, r.one_threshold);
    }

    #[test]
    fn detects_different_thresholds() {
        let pts = simulate(&[("induction/L2", 0.1), ("fewshot/L5", 10.0)], 400, 2);
        let r = threshold_report(&pts, 0.5).unwrap();
        eprintln!("{r:#?}");
        // Within a factor of 2: one point inside each switch leaves theta loosely pinned.
        assert!((r.per_group[0].1.theta / 0.1).ln().abs() < 2f64.ln());
        assert!((r.per_group[1].1.theta / 10.0).ln().abs() < 2f64.ln());
        assert!(r.aicc_separate.unwrap() < r.aicc_shared.unwrap());
        assert!(r.lr_p_value < 1e-6, "p {}", r.lr_p_value);
        assert_eq!(r.one_threshold, Verdict::ThresholdsDiffer);
        assert!(
            r.note.contains("induction/L2") || r.note.contains("fewshot/L5"),
            "note: {}",
            r.note
        );
    }

    /// Eight groups of three points, thetas 0.8 and 2.5 alternating, 16 trials each (exact
    /// expected counts): no group's interval misses the shared one and the AICc, penalising
    /// 16 parameters on 24 points, prefers one threshold, yet the likelihood ratio rejects
    /// it. The verdict must not say that one threshold fits.
    #[test]
    fn aicc_for_one_threshold_against_the_likelihood_ratio_is_undecided() {
        let mut pts = Vec::new();
        for g in 0..8 {
            let theta = if g % 2 == 0 { 0.8 } else { 2.5 };
            for snr in [0.3, 1.0, 3.0] {
                let trials = 16;
                let p = truth(snr, theta, TRUE_SLOPE, 0.5);
                pts.push(AccuracyPoint {
                    group: format!("g{g}"),
                    snr,
                    correct: (p * trials as f64).round() as u64,
                    trials,
                });
            }
        }
        let r = threshold_report(&pts, 0.5).unwrap();
        assert!(r.aicc_shared.unwrap() < r.aicc_separate.unwrap());
        assert!(r.lr_p_value < LR_ALPHA, "p {}", r.lr_p_value);
        assert!(!r.note.contains("miss"), "{}", r.note);
        assert_eq!(r.one_threshold, Verdict::Undecided);
        assert!(
            r.note.contains("likelihood-ratio test rejects"),
            "{}",
            r.note
        );
    }

    #[test]
    fn one_group_is_undecided() {
        let pts = simulate(&[("induction/L1", TRUE_THETA)], 400, 3);
        let r = threshold_report(&pts, 0.5).unwrap();
        assert_eq!(r.one_threshold, Verdict::Undecided);
        assert!(r.lr_p_value.is_nan());
        assert_eq!(r.per_group[0].2, r.shared_theta_ci);
        // NaN p-value survives JSON as null.
        let back: ThresholdReport =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(back.lr_p_value.is_nan());
    }

    /// Data sets out of `sets` whose shared-theta interval covers TRUE_THETA, for `groups`
    /// groups sharing it at `trials` trials per point.
    fn coverage(groups: usize, trials: u64, sets: u64) -> usize {
        let names: Vec<String> = (0..groups).map(|i| format!("g{i}")).collect();
        let design: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), TRUE_THETA)).collect();
        let mut covered = 0;
        let mut open = 0;
        for seed in 0..sets {
            let pts = simulate(&design, trials, 1000 + seed);
            let (lo, hi) = threshold_report(&pts, 0.5).unwrap().shared_theta_ci;
            assert!(lo < hi, "seed {seed}: interval {lo}..{hi}");
            if lo == 0.0 || hi.is_infinite() {
                open += 1;
            }
            if lo <= TRUE_THETA && TRUE_THETA <= hi {
                covered += 1;
            }
        }
        eprintln!(
            "{groups} group(s), {trials} trials: the 95% profile interval covered theta = \
             {TRUE_THETA} in {covered} of {sets} data sets ({open} with an open end)"
        );
        covered
    }

    #[test]
    fn theta_interval_covers_at_close_to_the_nominal_rate() {
        let covered = coverage(1, 200, 100);
        assert!((88..=99).contains(&covered), "covered {covered} of 100");
    }

    #[test]
    fn shared_theta_interval_of_three_groups_covers_at_close_to_the_nominal_rate() {
        let covered = coverage(3, 400, 60);
        assert!((52..=60).contains(&covered), "covered {covered} of 60");
    }

    #[test]
    fn interval_is_open_where_the_data_do_not_bound_theta() {
        // Accuracy 75% throughout, half-way to certainty: slope 0 fits it at any theta.
        let mut pts = simulate(&[("flat", TRUE_THETA)], 200, 5);
        for p in &mut pts {
            p.correct = p.trials * 3 / 4;
        }
        let r = threshold_report(&pts, 0.5).unwrap();
        assert_eq!(r.shared_theta_ci, (0.0, f64::INFINITY));
        // At chance throughout: theta is above the largest SNR, but not bounded above.
        for p in &mut pts {
            p.correct = p.trials / 2;
        }
        let (lo, hi) = threshold_report(&pts, 0.5).unwrap().shared_theta_ci;
        assert!(
            (lo / 100.0 - 1.0).abs() < 1e-3 && hi.is_infinite(),
            "{lo}..{hi}"
        );
        // Switching above the largest SNR: a lower end but no upper one.
        let pts = simulate(&[("late", 1e4)], 200, 6);
        let r = threshold_report(&pts, 0.5).unwrap();
        let (lo, hi) = r.shared_theta_ci;
        assert!(lo > 0.0 && lo < 1e4 && hi.is_infinite(), "{lo}..{hi}");
        // Open ends are null in JSON and read back as open.
        let text = serde_json::to_string(&r).unwrap();
        assert!(
            text.contains(&format!("\"shared_theta_ci\":[{lo:?},null]")),
            "{text}"
        );
        let back: ThresholdReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back.shared_theta_ci, r.shared_theta_ci);
        assert_eq!(back.per_group[0].2, r.per_group[0].2);
        let flat: (f64, f64) = (0.0, f64::INFINITY);
        let mut w = serde_json::Serializer::new(Vec::new());
        interval::serialize(&flat, &mut w).unwrap();
        assert_eq!(String::from_utf8(w.into_inner()).unwrap(), "[null,null]");
    }

    #[test]
    fn profile_cut_off_is_the_chi_square_quantile() {
        assert!((chi_square_sf(CHI2_1_95, 1.0) - (1.0 - LEVEL)).abs() < 1e-12);
    }

    #[test]
    fn refuses_bad_input_and_leaves_out_unusable_points() {
        let mut pts = simulate(&[("induction/L4", TRUE_THETA)], 100, 4);
        pts[2].correct = pts[2].trials + 1;
        match fit_threshold(&pts, 0.5) {
            Err(e @ EmergenceError::CorrectExceedsTrials { index: 2, .. }) => {
                assert!(e.to_string().contains("induction/L4"), "{e}")
            }
            other => panic!("expected CorrectExceedsTrials, got {other:?}"),
        }
        pts[2].correct = 0;
        pts[2].trials = 0;
        assert!(matches!(
            fit_threshold(&pts, 0.5),
            Err(EmergenceError::NoTrials { index: 2, .. })
        ));
        pts[2].trials = 100;

        assert!(matches!(
            fit_threshold(&pts[..2], 0.5),
            Err(EmergenceError::TooFewPoints { usable: 2, .. })
        ));
        for chance in [1.0, -0.1, f64::NAN] {
            assert!(matches!(
                fit_threshold(&pts, chance),
                Err(EmergenceError::BadChance(_))
            ));
        }

        let mut with_bad = pts.clone();
        with_bad[0].snr = 0.0;
        with_bad[1].snr = f64::NAN;
        with_bad.push(AccuracyPoint {
            group: "induction/L4".into(),
            snr: f64::INFINITY,
            correct: 1,
            trials: 2,
        });
        let fit = fit_threshold(&with_bad, 0.5).unwrap();
        assert_eq!(fit.left_out, 3);
        assert_eq!(fit.points, pts.len() - 2);
        // Two usable points left after dropping the unusable ones: refused, both counts named.
        let mut few = pts[..4].to_vec();
        few[0].snr = -1.0;
        few[1].snr = f64::NAN;
        assert!(matches!(
            fit_threshold(&few, 0.5),
            Err(EmergenceError::TooFewPoints {
                usable: 2,
                left_out: 2,
                ..
            })
        ));
        // A group with too few points leaves the comparison, named, and the others' fits
        // are those without it; with no group left the report is refused, naming them.
        let mut mixed = pts.clone();
        let lone = AccuracyPoint {
            group: "fewshot/L1".into(),
            snr: 1.0,
            correct: 5,
            trials: 10,
        };
        mixed.push(lone.clone());
        let with = threshold_report(&mixed, 0.5).unwrap();
        let without = threshold_report(&pts, 0.5).unwrap();
        assert!(
            with.note.contains("left out") && with.note.contains("fewshot/L1"),
            "{}",
            with.note
        );
        assert_eq!(with.shared, without.shared);
        assert_eq!(with.per_group.len(), 1);
        match threshold_report(&[lone], 0.5) {
            Err(e @ EmergenceError::TooFewPoints { .. }) => {
                assert!(e.to_string().contains("fewshot/L1"), "{e}")
            }
            other => panic!("expected TooFewPoints, got {other:?}"),
        }
    }

    #[test]
    fn regularized_gamma_matches_known_values() {
        for x in [0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 20.0] {
            let q = regularized_gamma_q(1.0, x);
            assert!((q - (-x).exp()).abs() < 1e-12, "Q(1, {x}) = {q}");
        }
        // Q(1/2, x) = erfc(sqrt x); chi-square with 2 df: sf(x) = exp(-x / 2).
        for x in [0.2, 1.0, 3.0, 9.0] {
            let q = regularized_gamma_q(0.5, x);
            let erfc = 1.0 - crate::kernel::erf(x.sqrt());
            assert!((q - erfc).abs() < 1e-10, "Q(0.5, {x}) = {q} vs {erfc}");
            assert!((chi_square_sf(x, 2.0) - (-x / 2.0).exp()).abs() < 1e-12);
        }
        let p = chi_square_sf(3.84, 1.0);
        assert!((p - 0.05).abs() < 1e-3, "sf(3.84, 1) = {p}");
        // Upper 5% point of chi-square with 4 df is 9.4877.
        assert!((chi_square_sf(9.4877, 4.0) - 0.05).abs() < 1e-4);
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
        assert!(regularized_gamma_q(0.0, 1.0).is_nan());
    }
}
