//! Power-law fits with and without a pedestal, for any falling (or rising) curve: the loss
//! along the context, the sweep's V(n), and the two-variable loss decomposition
//! L(N, D) = E + A / N^alpha + B / D^beta of models of N parameters trained on D tokens.
//!
//! Why this way (following Hoffmann et al. 2022 and Besiroglu et al. 2024):
//! - Everything is fitted in logs, so points spanning decades of x weigh alike. The
//!   prediction is written as a log-sum-exp of its terms, ln yhat = LSE(e, a - alpha ln x),
//!   with E = exp(e) and A = exp(a): every scale stays positive without constraints, and an
//!   absent pedestal is e -> -inf rather than a boundary.
//! - The loss on the log residual r is Huber with delta = 1e-3: quadratic within 1e-3, linear
//!   beyond, so a stray point pulls with bounded force.
//! - It is minimised by L-BFGS (argmin) with an analytic gradient from a grid of starting
//!   points (exponents over 0..2, scales derived from the data); the best result is kept, and
//!   whether it converged is reported, never hidden.
//! - With and without the pedestal are fitted side by side and compared by the small-sample
//!   AICc, because with 4-8 points plain AIC hardly charges for the extra parameter. Leaving
//!   the pedestal out biases the exponent small; `alpha_shift` shows by how much.

use crate::stats::{quantile, QuantileRule};
use argmin::core::TerminationReason;

use crate::optimise::{lbfgs, Objective};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Huber delta on the log residual, as Hoffmann et al. and Besiroglu et al. used.
pub const HUBER_DELTA: f64 = 1e-3;
/// Level of the bootstrap percentile intervals.
pub const LEVEL: f64 = 0.95;
/// Points in a profile of an exponent.
pub const PROFILE_POINTS: usize = 21;

/// Bad input to a fit. Each message names the problem and what to do.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    #[error("{form} has {params} parameters, so it needs at least {need} points; got {got}: measure more points")]
    TooFewPoints {
        form: &'static str,
        params: usize,
        need: usize,
        got: usize,
    },
    #[error("point {index} has {name} = {value}; every {name} must be finite and > 0, because the fit takes logs")]
    NotPositive {
        index: usize,
        name: &'static str,
        value: f64,
    },
    #[error("{got} weights for {points} points, or a weight that is not finite and > 0 (weight {index}); give one positive weight per point")]
    BadWeights {
        points: usize,
        got: usize,
        index: usize,
    },
    #[error(
        "no starting point of {form} gave a finite objective; the data cannot be fitted by it"
    )]
    NoFit { form: &'static str },
}

/// Which single-variable curve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// y = A x^-alpha.
    PowerLaw,
    /// y = E + A x^-alpha.
    Pedestal,
}

impl Form {
    /// Number of fitted parameters (k of the AICc).
    pub fn params(self) -> usize {
        match self {
            Form::PowerLaw => 2,
            Form::Pedestal => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Form::PowerLaw => "the power law A x^-alpha",
            Form::Pedestal => "the pedestal form E + A x^-alpha",
        }
    }
}

/// Which form the AICc picks. The rule (see `decide`): the form with the lower AICc wins when
/// it is lower by more than 2; otherwise, or when either AICc cannot be computed (m - k - 1 <=
/// 0) or either fit did not converge, the data do not decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    WithoutPedestal,
    WithPedestal,
    Undecided,
}

/// A percentile interval; NaN bounds (null in JSON) when not estimated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    #[serde(with = "crate::nonfinite")]
    pub lo: f64,
    #[serde(with = "crate::nonfinite")]
    pub hi: f64,
}

impl Bounds {
    /// Whether `v` lies within the bounds (inclusive).
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

/// 95% percentile bootstrap intervals of a single-variable fit. E's is [0, 0] for the power
/// law, whose E is fixed at 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamIntervals {
    #[serde(rename = "E")]
    pub e: Bounds,
    #[serde(rename = "A")]
    pub a: Bounds,
    pub alpha: Bounds,
    /// Replicates whose refit converged and so entered the intervals.
    pub replicates_used: usize,
    /// Replicates left out: a refit that did not converge or data it could not fit.
    pub replicates_failed: usize,
}

/// The objective with one exponent held fixed and every other parameter refitted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProfilePoint {
    #[serde(with = "crate::nonfinite")]
    pub value: f64,
    #[serde(with = "crate::nonfinite")]
    pub objective: f64,
}

/// A single-variable fit: y = E + A x^-alpha (E = 0 for the power law).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveFit {
    pub form: Form,
    /// E; 0 for the power law.
    #[serde(rename = "E", with = "crate::nonfinite")]
    pub e: f64,
    #[serde(rename = "A", with = "crate::nonfinite")]
    pub a: f64,
    #[serde(with = "crate::nonfinite")]
    pub alpha: f64,
    /// Sum over points of weight * Huber_delta(ln y - ln yhat), at the fit.
    #[serde(with = "crate::nonfinite")]
    pub objective: f64,
    /// Sum over points of weight * (ln y - ln yhat)^2, for the AICc.
    #[serde(with = "crate::nonfinite")]
    pub rss_log: f64,
    pub points: usize,
    /// None where it cannot be computed (fewer than params + 2 points, or a zero RSS).
    pub aicc: Option<f64>,
    /// Whether L-BFGS converged from the best start (gradient small at the end).
    pub converged: bool,
    /// None without replicates, or when fewer than half of them could be refitted.
    pub intervals: Option<ParamIntervals>,
    /// alpha on a grid around the fit -> best objective with alpha fixed there.
    pub profile: Vec<ProfilePoint>,
}

/// Both single-variable forms fitted to the same points.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurveComparison {
    pub power_law: CurveFit,
    pub pedestal: CurveFit,
    pub choice: Choice,
    /// Why the choice came out so, in words.
    pub reason: String,
    /// pedestal alpha - power-law alpha. Positive when a real pedestal is present: the pure
    /// power law, having to bend towards the floor, reports too small an exponent.
    #[serde(with = "crate::nonfinite")]
    pub alpha_shift: f64,
}

// ---------------------------------------------------------------------------------------------
// The model: ln yhat = LSE over terms, each a constant or scale - exponent * ln x_var.

#[derive(Clone, Copy, Debug)]
enum Term {
    Const {
        e: usize,
    },
    Power {
        scale: usize,
        exp: usize,
        var: usize,
    },
}

#[derive(Clone, Debug)]
struct Model {
    terms: Vec<Term>,
    params: usize,
    name: &'static str,
}

impl Model {
    fn single(form: Form) -> Model {
        match form {
            Form::PowerLaw => Model {
                terms: vec![Term::Power {
                    scale: 0,
                    exp: 1,
                    var: 0,
                }],
                params: 2,
                name: form.name(),
            },
            Form::Pedestal => Model {
                terms: vec![
                    Term::Const { e: 0 },
                    Term::Power {
                        scale: 1,
                        exp: 2,
                        var: 0,
                    },
                ],
                params: 3,
                name: form.name(),
            },
        }
    }

    /// theta = [e, a, alpha, b, beta] with the pedestal, [a, alpha, b, beta] without.
    fn table(pedestal: bool) -> Model {
        let o = usize::from(pedestal);
        let mut terms = Vec::new();
        if pedestal {
            terms.push(Term::Const { e: 0 });
        }
        terms.push(Term::Power {
            scale: o,
            exp: o + 1,
            var: 0,
        });
        terms.push(Term::Power {
            scale: o + 2,
            exp: o + 3,
            var: 1,
        });
        Model {
            terms,
            params: 4 + o,
            name: if pedestal {
                "E + A/N^alpha + B/D^beta"
            } else {
                "A/N^alpha + B/D^beta"
            },
        }
    }

    /// ln yhat at one point, and (if asked) d ln yhat / d theta added into `grad` times `scale`.
    fn eval(&self, theta: &[f64], lnx: &[f64; 2], grad: Option<(&mut [f64], f64)>) -> f64 {
        let mut t = [0.0f64; 3];
        for (k, term) in self.terms.iter().enumerate() {
            t[k] = match *term {
                Term::Const { e } => theta[e],
                Term::Power { scale, exp, var } => theta[scale] - theta[exp] * lnx[var],
            };
        }
        let t = &t[..self.terms.len()];
        let m = t.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = t.iter().map(|&v| (v - m).exp()).sum();
        if let Some((g, c)) = grad {
            for (k, term) in self.terms.iter().enumerate() {
                let w = (t[k] - m).exp() / s * c;
                match *term {
                    Term::Const { e } => g[e] += w,
                    Term::Power { scale, exp, var } => {
                        g[scale] += w;
                        g[exp] -= w * lnx[var];
                    }
                }
            }
        }
        m + s.ln()
    }
}

/// Data in logs, with weights.
#[derive(Clone, Debug)]
struct Data {
    lnx: Vec<[f64; 2]>,
    lny: Vec<f64>,
    w: Vec<f64>,
}

impl Data {
    fn len(&self) -> usize {
        self.lny.len()
    }
}

/// Objective / delta, and its gradient, with some parameters held fixed.
struct Problem<'a> {
    model: &'a Model,
    data: &'a Data,
    /// Full parameter vector; the free entries are overwritten from the optimiser's vector.
    template: Vec<f64>,
    free: Vec<usize>,
}

impl Problem<'_> {
    fn full(&self, p: &[f64]) -> Vec<f64> {
        let mut theta = self.template.clone();
        for (&i, &v) in self.free.iter().zip(p) {
            theta[i] = v;
        }
        theta
    }

    /// Huber / delta (so the optimiser sees O(|r|) numbers) and its full gradient.
    fn eval(&self, theta: &[f64], want_grad: bool) -> (f64, Vec<f64>) {
        let mut g = vec![0.0; theta.len()];
        let mut obj = 0.0;
        let mut dlp = vec![0.0; theta.len()];
        for i in 0..self.data.len() {
            if want_grad {
                dlp.iter_mut().for_each(|v| *v = 0.0);
            }
            let lp = self.model.eval(
                theta,
                &self.data.lnx[i],
                want_grad.then_some((dlp.as_mut_slice(), 1.0)),
            );
            let r = self.data.lny[i] - lp;
            let w = self.data.w[i];
            obj += w * huber(r) / HUBER_DELTA;
            if want_grad {
                let psi = (r / HUBER_DELTA).clamp(-1.0, 1.0);
                for (gj, d) in g.iter_mut().zip(&dlp) {
                    *gj -= w * psi * d;
                }
            }
        }
        (obj, g)
    }
}

fn huber(r: f64) -> f64 {
    let a = r.abs();
    if a <= HUBER_DELTA {
        0.5 * r * r
    } else {
        HUBER_DELTA * (a - 0.5 * HUBER_DELTA)
    }
}

impl Objective for Problem<'_> {
    /// Over the free parameters only.
    fn evaluate(&self, p: &[f64], gradient: bool) -> (f64, Vec<f64>) {
        let (c, g) = self.eval(&self.full(p), gradient);
        (c, self.free.iter().map(|&i| g[i]).collect())
    }
}

/// One minimisation: the full parameter vector, objective / delta, converged.
#[derive(Clone, Debug)]
struct Solved {
    theta: Vec<f64>,
    cost: f64,
    converged: bool,
}

const MAX_ITERS: u64 = 1000;
/// Gradient norm of objective / delta (a sum of O(1) terms per point) that counts as a minimum.
const GRAD_TOL: f64 = 1e-6;

/// L-BFGS from `start`, moving only the `free` parameters.
fn minimise(model: &Model, data: &Data, start: &[f64], free: &[usize]) -> Option<Solved> {
    let problem = Problem {
        model,
        data,
        template: start.to_vec(),
        free: free.to_vec(),
    };
    let p0: Vec<f64> = free.iter().map(|&i| start[i]).collect();
    let (c0, _) = problem.eval(start, false);
    if !c0.is_finite() {
        return None;
    }
    // A failure while evaluating the start itself keeps the start, not converged.
    let (p, reason) = lbfgs(problem, p0, GRAD_TOL * 0.1, MAX_ITERS)?;
    let problem = Problem {
        model,
        data,
        template: start.to_vec(),
        free: free.to_vec(),
    };
    let theta = problem.full(&p);
    let (cost, g) = problem.eval(&theta, true);
    if !cost.is_finite() {
        return None;
    }
    let gnorm = free.iter().map(|&i| g[i] * g[i]).sum::<f64>().sqrt();
    // argmin also stops when the cost stops changing or the line search fails; only a small
    // gradient at the end counts as converged.
    let converged = gnorm <= GRAD_TOL * (data.len() as f64).max(1.0)
        && !matches!(reason, Some(TerminationReason::MaxItersReached));
    Some(Solved {
        theta,
        cost,
        converged,
    })
}

/// Best of several starts: the lowest objective. A start that stopped without converging but
/// lower than every converged one is kept (and reported as not converged), unless a converged
/// start reached the same objective (within 1e-9 relative), which is then taken instead.
fn best_of(model: &Model, data: &Data, starts: &[Vec<f64>], free: &[usize]) -> Option<Solved> {
    let runs: Vec<Solved> = starts
        .iter()
        .filter_map(|s| minimise(model, data, s, free))
        .collect();
    let lowest = runs.iter().map(|r| r.cost).fold(f64::INFINITY, f64::min);
    let tol = 1e-9 * lowest.abs().max(1e-3);
    let pick = runs
        .iter()
        .filter(|r| r.converged && r.cost <= lowest + tol)
        .min_by(|a, b| a.cost.total_cmp(&b.cost))
        .or_else(|| runs.iter().min_by(|a, b| a.cost.total_cmp(&b.cost)))?;
    Some(pick.clone())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Hoffmann-style grid: exponents over 0..2 in steps of 0.5; the pedestal as a fraction of the
/// smallest y; the log-scales from the data (the median of what each point implies given the
/// exponents and pedestal, the L1 intercept).
fn grid_starts(model: &Model, data: &Data) -> Vec<Vec<f64>> {
    const EXPONENTS: [f64; 5] = [0.0, 0.5, 1.0, 1.5, 2.0];
    const PEDESTAL_FRACTIONS: [f64; 4] = [0.05, 0.4, 0.7, 0.95];
    let has_pedestal = model.terms.iter().any(|t| matches!(t, Term::Const { .. }));
    let powers: Vec<(usize, usize, usize)> = model
        .terms
        .iter()
        .filter_map(|t| match *t {
            Term::Power { scale, exp, var } => Some((scale, exp, var)),
            _ => None,
        })
        .collect();
    let min_lny = data.lny.iter().copied().fold(f64::INFINITY, f64::min);
    let fractions: &[f64] = if has_pedestal {
        &PEDESTAL_FRACTIONS
    } else {
        &[0.0]
    };
    // Every combination of exponents, one per power term.
    let mut combos: Vec<Vec<f64>> = vec![vec![]];
    for _ in &powers {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                EXPONENTS.iter().map(move |&x| {
                    let mut c = c.clone();
                    c.push(x);
                    c
                })
            })
            .collect();
    }
    let share = (powers.len() as f64).ln();
    let mut starts = Vec::new();
    for &f in fractions {
        let e = min_lny + f.ln(); // ln(f * min y)
        for exps in &combos {
            let mut theta = vec![0.0; model.params];
            if has_pedestal {
                theta[0] = e;
            }
            for (&(scale, exp, var), &x) in powers.iter().zip(exps) {
                theta[exp] = x;
                // Each power term carries an equal share of y - E.
                let mut implied: Vec<f64> = (0..data.len())
                    .map(|i| {
                        let rest = if has_pedestal {
                            (data.lny[i].exp() - e.exp()).max(data.lny[i].exp() * 1e-3)
                        } else {
                            data.lny[i].exp()
                        };
                        rest.ln() - share + x * data.lnx[i][var]
                    })
                    .collect();
                theta[scale] = median(&mut implied);
            }
            starts.push(theta);
        }
    }
    starts
}

fn validate_weights(points: usize, weights: Option<&[f64]>) -> Result<Vec<f64>, CurveError> {
    match weights {
        None => Ok(vec![1.0; points]),
        Some(w) => {
            let bad = w.iter().position(|&v| !(v.is_finite() && v > 0.0));
            if w.len() != points || bad.is_some() {
                return Err(CurveError::BadWeights {
                    points,
                    got: w.len(),
                    index: bad.unwrap_or(0),
                });
            }
            Ok(w.to_vec())
        }
    }
}

fn check_positive(index: usize, name: &'static str, value: f64) -> Result<(), CurveError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(CurveError::NotPositive { index, name, value })
    }
}

fn single_data(points: &[(f64, f64)], weights: Option<&[f64]>) -> Result<Data, CurveError> {
    for (i, &(x, y)) in points.iter().enumerate() {
        check_positive(i, "x", x)?;
        check_positive(i, "y", y)?;
    }
    Ok(Data {
        lnx: points.iter().map(|&(x, _)| [x.ln(), 0.0]).collect(),
        lny: points.iter().map(|&(_, y)| y.ln()).collect(),
        w: validate_weights(points.len(), weights)?,
    })
}

/// Sums at a parameter vector: (objective unscaled, RSS of log residuals).
fn sums(model: &Model, data: &Data, theta: &[f64]) -> (f64, f64) {
    let mut obj = 0.0;
    let mut rss = 0.0;
    for i in 0..data.len() {
        let r = data.lny[i] - model.eval(theta, &data.lnx[i], None);
        obj += data.w[i] * huber(r);
        rss += data.w[i] * r * r;
    }
    (obj, rss)
}

/// Rows of cells as left-aligned columns two spaces apart, one line each (the fit tables of
/// `CurveComparison::report` and `ceiling fit`).
pub fn aligned_table<R: AsRef<[String]>>(rows: &[R]) -> String {
    let columns = rows.iter().map(|r| r.as_ref().len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.as_ref().get(c).map(String::len))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(s, &w)| format!("{s:<w$}"))
            .collect();
        out += line.join("  ").trim_end();
        out += "\n";
    }
    out
}

/// AICc from the Gaussian likelihood of the log residuals: AIC = m ln(RSS/m) + 2k,
/// AICc = AIC + 2k(k+1)/(m-k-1). None when m - k - 1 <= 0 or the RSS is 0 (a perfect fit has
/// no likelihood to compare).
pub fn aicc(rss_log: f64, points: usize, params: usize) -> Option<f64> {
    let (m, k) = (points as f64, params as f64);
    if points <= params + 1 || !(rss_log.is_finite() && rss_log > 0.0) {
        return None;
    }
    let v = m * (rss_log / m).ln() + 2.0 * k + 2.0 * k * (k + 1.0) / (m - k - 1.0);
    v.is_finite().then_some(v)
}

/// The choice rule: the lower AICc wins when lower by more than 2; otherwise undecided.
/// Undecided also when either AICc is None or either fit did not converge.
pub fn decide(
    without: Option<f64>,
    without_converged: bool,
    with: Option<f64>,
    with_converged: bool,
) -> (Choice, String) {
    if !without_converged || !with_converged {
        let which = if !with_converged {
            "the fit with the pedestal"
        } else {
            "the fit without it"
        };
        return (
            Choice::Undecided,
            format!("undecided: {which} did not converge"),
        );
    }
    match (without, with) {
        (Some(a), Some(b)) => {
            if b < a - 2.0 {
                (
                    Choice::WithPedestal,
                    format!("the pedestal lowers AICc by {:.2} (> 2)", a - b),
                )
            } else if a < b - 2.0 {
                (
                    Choice::WithoutPedestal,
                    format!("the pedestal raises AICc by {:.2} (> 2)", b - a),
                )
            } else {
                (
                    Choice::Undecided,
                    format!("undecided: the AICc differ by {:.2} (<= 2)", (a - b).abs()),
                )
            }
        }
        _ => (
            Choice::Undecided,
            "undecided: AICc cannot be computed (it needs more points than parameters + 1, \
             and a non-zero residual)"
                .to_string(),
        ),
    }
}

fn bounds(mut v: Vec<f64>) -> Bounds {
    v.sort_by(f64::total_cmp);
    let tail = (1.0 - LEVEL) / 2.0;
    Bounds {
        lo: quantile(&v, tail, QuantileRule::Linear),
        hi: quantile(&v, 1.0 - tail, QuantileRule::Linear),
    }
}

/// Refits each replicate from the point fit (and the grid when that fails to converge); the
/// converged ones give the parameter vectors. Returns (thetas, failed).
fn refit_replicates(model: &Model, point: &Solved, replicates: &[Data]) -> (Vec<Vec<f64>>, usize) {
    let all: Vec<usize> = (0..model.params).collect();
    let mut thetas = Vec::new();
    let mut failed = 0;
    for data in replicates {
        let mut r = minimise(model, data, &point.theta, &all);
        if !r.as_ref().is_some_and(|r| r.converged) {
            r = best_of(model, data, &grid_starts(model, data), &all);
        }
        match r {
            Some(r) if r.converged => thetas.push(r.theta),
            _ => failed += 1,
        }
    }
    (thetas, failed)
}

/// Enough replicates for an interval: at least 2 and at least half of them.
fn enough(used: usize, total: usize) -> bool {
    used >= 2 && 2 * used >= total
}

/// Profile of the exponent at `exp`: `PROFILE_POINTS` values centred on the fit, reaching the
/// width of the bootstrap interval to either side when there is one (else max(|value| / 2,
/// 0.1)), each with the other parameters refitted (continuing outwards from the fit).
fn profile(
    model: &Model,
    data: &Data,
    point: &Solved,
    exp: usize,
    ci: Option<Bounds>,
) -> Vec<ProfilePoint> {
    let center = point.theta[exp];
    let half = match ci {
        Some(b) if b.lo.is_finite() && b.hi.is_finite() => (b.hi - b.lo).max(0.02),
        _ => (center.abs() / 2.0).max(0.1),
    };
    let free: Vec<usize> = (0..model.params).filter(|&i| i != exp).collect();
    let side = PROFILE_POINTS / 2;
    let step = half / side as f64;
    let mut out = vec![
        ProfilePoint {
            value: center,
            objective: sums(model, data, &point.theta).0,
        };
        2 * side + 1
    ];
    for dir in [-1.0, 1.0] {
        let mut prev = point.theta.clone();
        for j in 1..=side {
            let v = center + dir * step * j as f64;
            let mut starts = vec![prev.clone(), point.theta.clone()];
            for s in &mut starts {
                s[exp] = v;
            }
            let idx = if dir < 0.0 { side - j } else { side + j };
            match best_of(model, data, &starts, &free) {
                Some(r) => {
                    out[idx] = ProfilePoint {
                        value: v,
                        objective: sums(model, data, &r.theta).0,
                    };
                    prev = r.theta;
                }
                None => {
                    out[idx] = ProfilePoint {
                        value: v,
                        objective: f64::NAN,
                    }
                }
            }
        }
    }
    out
}

fn check_count(model: &Model, got: usize, need: usize) -> Result<(), CurveError> {
    if got < need {
        return Err(CurveError::TooFewPoints {
            form: model.name,
            params: model.params,
            need,
            got,
        });
    }
    Ok(())
}

/// Point fit of a single-variable form (no intervals).
fn fit_single(data: &Data, form: Form) -> Result<(Model, Solved), CurveError> {
    let model = Model::single(form);
    check_count(&model, data.len(), model.params)?;
    let all: Vec<usize> = (0..model.params).collect();
    let best = best_of(&model, data, &grid_starts(&model, data), &all)
        .ok_or(CurveError::NoFit { form: model.name })?;
    Ok((model, best))
}

fn curve_fit(
    form: Form,
    model: &Model,
    data: &Data,
    best: &Solved,
    replicates: &[Data],
) -> CurveFit {
    let (objective, rss_log) = sums(model, data, &best.theta);
    let (e, a, alpha) = match form {
        Form::PowerLaw => (0.0, best.theta[0].exp(), best.theta[1]),
        Form::Pedestal => (best.theta[0].exp(), best.theta[1].exp(), best.theta[2]),
    };
    let intervals = if replicates.is_empty() {
        None
    } else {
        let (thetas, failed) = refit_replicates(model, best, replicates);
        enough(thetas.len(), replicates.len()).then(|| {
            let col = |f: &dyn Fn(&[f64]) -> f64| bounds(thetas.iter().map(|t| f(t)).collect());
            match form {
                Form::PowerLaw => ParamIntervals {
                    e: Bounds { lo: 0.0, hi: 0.0 },
                    a: col(&|t| t[0].exp()),
                    alpha: col(&|t| t[1]),
                    replicates_used: thetas.len(),
                    replicates_failed: failed,
                },
                Form::Pedestal => ParamIntervals {
                    e: col(&|t| t[0].exp()),
                    a: col(&|t| t[1].exp()),
                    alpha: col(&|t| t[2]),
                    replicates_used: thetas.len(),
                    replicates_failed: failed,
                },
            }
        })
    };
    let exp = model.params - 1;
    let profile = profile(model, data, best, exp, intervals.as_ref().map(|i| i.alpha));
    CurveFit {
        form,
        e,
        a,
        alpha,
        objective,
        rss_log,
        points: data.len(),
        aicc: aicc(rss_log, data.len(), model.params),
        converged: best.converged,
        intervals,
        profile,
    }
}

/// Fits y = A x^-alpha or y = E + A x^-alpha to (x, y) points (x, y finite and > 0; at least
/// as many points as parameters), with a profile of alpha and no intervals.
pub fn fit_curve(points: &[(f64, f64)], form: Form) -> Result<CurveFit, CurveError> {
    fit_curve_weighted(points, None, form, &[])
}

/// `fit_curve` with per-point weights on the Huber terms (default 1) and bootstrap
/// replicates (data sets the caller resampled; each refitted, unweighted, for the intervals).
pub fn fit_curve_weighted(
    points: &[(f64, f64)],
    weights: Option<&[f64]>,
    form: Form,
    replicates: &[Vec<(f64, f64)>],
) -> Result<CurveFit, CurveError> {
    let data = single_data(points, weights)?;
    let reps = replicates
        .iter()
        .map(|r| single_data(r, None))
        .collect::<Result<Vec<_>, _>>()?;
    let (model, best) = fit_single(&data, form)?;
    Ok(curve_fit(form, &model, &data, &best, &reps))
}

/// Fits both forms to the same points, with intervals from `replicates` (bootstrap data sets
/// supplied by the caller: the loss command resamples windows, the sweep resamples samples;
/// `resample_points` when nothing better exists), and picks one by AICc (see `decide`).
/// Needs at least 3 points (the pedestal's parameters); with fewer than 5 the pedestal's AICc
/// cannot be computed and the choice is undecided.
pub fn compare_curves(
    points: &[(f64, f64)],
    replicates: &[Vec<(f64, f64)>],
) -> Result<CurveComparison, CurveError> {
    let data = single_data(points, None)?;
    check_count(
        &Model::single(Form::Pedestal),
        data.len(),
        Form::Pedestal.params(),
    )?;
    let reps = replicates
        .iter()
        .map(|r| single_data(r, None))
        .collect::<Result<Vec<_>, _>>()?;
    let (m0, b0) = fit_single(&data, Form::PowerLaw)?;
    let (m1, b1) = fit_single(&data, Form::Pedestal)?;
    let power_law = curve_fit(Form::PowerLaw, &m0, &data, &b0, &reps);
    let pedestal = curve_fit(Form::Pedestal, &m1, &data, &b1, &reps);
    let (mut choice, mut reason) = decide(
        power_law.aicc,
        power_law.converged,
        pedestal.aicc,
        pedestal.converged,
    );
    if let Some(step) = pedestal.step_note() {
        choice = Choice::Undecided;
        reason = format!("undecided: {step}");
    }
    Ok(CurveComparison {
        alpha_shift: pedestal.alpha - power_law.alpha,
        power_law,
        pedestal,
        choice,
        reason,
    })
}

/// The largest |alpha| read as a power law. A fit beyond it changes by a factor of more than
/// 2^4 = 16 between two points a doubling apart: a step at one grid point, which three
/// parameters can place through any short curve, not a law across the grid. No quantity this
/// tool fits is expected near it (1/n is alpha 1).
pub const MAX_RESOLVED_ALPHA: f64 = 4.0;

impl CurveFit {
    /// Why this pedestal fit is a step rather than a power law on its grid, or None. A
    /// pedestal fit with |alpha| > [`MAX_RESOLVED_ALPHA`] matches a short curve by letting its
    /// decaying term vanish (or blow up) between two neighbouring points; its alpha, and the
    /// shift from the power law, then say nothing about how the curve falls.
    pub fn step_note(&self) -> Option<String> {
        (self.form == Form::Pedestal && self.alpha.abs() > MAX_RESOLVED_ALPHA).then(|| {
            format!(
                "the pedestal fit is a step, not a power law (alpha {:.1}, beyond +-{}), so \
                 its alpha and the shift mean nothing on this grid",
                self.alpha, MAX_RESOLVED_ALPHA
            )
        })
    }
}

impl CurveComparison {
    /// Both fits side by side (one row each, 95% intervals in brackets when there are any),
    /// the shift in alpha the pedestal makes, and the choice: what every report shows.
    pub fn report(&self, x: &str) -> String {
        // Fixed point for ordinary magnitudes; a degenerate fit's A of 1e50 in exponent form.
        let num = |v: f64| {
            if v != 0.0 && !(1e-4..1e6).contains(&v.abs()) {
                format!("{v:.4e}")
            } else {
                format!("{v:.4}")
            }
        };
        let cell = |v: f64, b: Option<Bounds>| match b {
            Some(b) => format!("{} [{}, {}]", num(v), num(b.lo), num(b.hi)),
            None => num(v),
        };
        let mut rows = vec![[
            "form".to_string(),
            "E".into(),
            "A".into(),
            "alpha".into(),
            "AICc".into(),
        ]];
        for (name, f) in [
            (format!("A {x}^-alpha"), &self.power_law),
            (format!("E + A {x}^-alpha"), &self.pedestal),
        ] {
            let i = f.intervals.as_ref();
            rows.push([
                format!("{name}{}", if f.converged { "" } else { " (!)" }),
                cell(f.e, i.map(|i| i.e)),
                cell(f.a, i.map(|i| i.a)),
                cell(f.alpha, i.map(|i| i.alpha)),
                f.aicc.map_or("n/a".into(), |v| format!("{v:.2}")),
            ]);
        }
        let mut out = aligned_table(&rows);
        if !(self.power_law.converged && self.pedestal.converged) {
            out += "(!) did not converge: values are the best reached\n";
        }
        out += &format!(
            "the pedestal shifts alpha by {:+.4} (pedestal - power law){}\n",
            self.alpha_shift,
            if self.pedestal.step_note().is_some() {
                "; not a measure here, see the choice"
            } else {
                ""
            }
        );
        let choice = match self.choice {
            Choice::WithPedestal => "with pedestal",
            Choice::WithoutPedestal => "without pedestal",
            Choice::Undecided => "undecided",
        };
        out += &format!("AICc choice: {choice} ({})\n", self.reason);
        out
    }
}

/// `count` case-resampled copies of `points` (drawn with replacement), from `seed`.
pub fn resample_points<T: Copy>(points: &[T], count: usize, seed: u64) -> Vec<Vec<T>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            (0..points.len())
                .map(|_| points[rng.random_range(0..points.len())])
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Two variables: L(N, D) = E + A / N^alpha + B / D^beta.

/// Intervals of a two-variable fit; E's is [0, 0] without the pedestal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableIntervals {
    #[serde(rename = "E")]
    pub e: Bounds,
    #[serde(rename = "A")]
    pub a: Bounds,
    #[serde(rename = "B")]
    pub b: Bounds,
    pub alpha: Bounds,
    pub beta: Bounds,
    pub replicates_used: usize,
    pub replicates_failed: usize,
}

/// L = E + A / N^alpha + B / D^beta (E = 0 without the pedestal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableFit {
    pub pedestal: bool,
    #[serde(rename = "E", with = "crate::nonfinite")]
    pub e: f64,
    #[serde(rename = "A", with = "crate::nonfinite")]
    pub a: f64,
    #[serde(rename = "B", with = "crate::nonfinite")]
    pub b: f64,
    #[serde(with = "crate::nonfinite")]
    pub alpha: f64,
    #[serde(with = "crate::nonfinite")]
    pub beta: f64,
    #[serde(with = "crate::nonfinite")]
    pub objective: f64,
    #[serde(with = "crate::nonfinite")]
    pub rss_log: f64,
    pub points: usize,
    pub aicc: Option<f64>,
    pub converged: bool,
    pub intervals: Option<TableIntervals>,
    pub profile_alpha: Vec<ProfilePoint>,
    pub profile_beta: Vec<ProfilePoint>,
}

/// Both two-variable forms, side by side (what `ceiling fit` writes to fit.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableComparison {
    pub with_pedestal: TableFit,
    pub without_pedestal: TableFit,
    pub choice: Choice,
    pub reason: String,
    /// with-pedestal alpha - without-pedestal alpha.
    #[serde(with = "crate::nonfinite")]
    pub alpha_shift: f64,
    /// with-pedestal beta - without-pedestal beta.
    #[serde(with = "crate::nonfinite")]
    pub beta_shift: f64,
    pub bootstrap: usize,
    pub seed: u64,
}

/// Parameters of the two-variable form with the pedestal (E + A/N^alpha + B/D^beta).
pub const TABLE_PARAMS: usize = 5;

fn table_data(rows: &[(f64, f64, f64)]) -> Result<Data, CurveError> {
    for (i, &(n, d, l)) in rows.iter().enumerate() {
        check_positive(i, "N", n)?;
        check_positive(i, "D", d)?;
        check_positive(i, "loss", l)?;
    }
    Ok(Data {
        lnx: rows.iter().map(|&(n, d, _)| [n.ln(), d.ln()]).collect(),
        lny: rows.iter().map(|&(_, _, l)| l.ln()).collect(),
        w: vec![1.0; rows.len()],
    })
}

fn table_fit(pedestal: bool, model: &Model, data: &Data, best: &Solved, reps: &[Data]) -> TableFit {
    let o = usize::from(pedestal);
    let th = &best.theta;
    let (objective, rss_log) = sums(model, data, th);
    let intervals = if reps.is_empty() {
        None
    } else {
        let (thetas, failed) = refit_replicates(model, best, reps);
        enough(thetas.len(), reps.len()).then(|| {
            let col = |f: &dyn Fn(&[f64]) -> f64| bounds(thetas.iter().map(|t| f(t)).collect());
            TableIntervals {
                e: if pedestal {
                    col(&|t| t[0].exp())
                } else {
                    Bounds { lo: 0.0, hi: 0.0 }
                },
                a: col(&|t| t[o].exp()),
                b: col(&|t| t[o + 2].exp()),
                alpha: col(&|t| t[o + 1]),
                beta: col(&|t| t[o + 3]),
                replicates_used: thetas.len(),
                replicates_failed: failed,
            }
        })
    };
    let profile_alpha = profile(
        model,
        data,
        best,
        o + 1,
        intervals.as_ref().map(|i| i.alpha),
    );
    let profile_beta = profile(model, data, best, o + 3, intervals.as_ref().map(|i| i.beta));
    TableFit {
        pedestal,
        e: if pedestal { th[0].exp() } else { 0.0 },
        a: th[o].exp(),
        b: th[o + 2].exp(),
        alpha: th[o + 1],
        beta: th[o + 3],
        objective,
        rss_log,
        points: data.len(),
        aicc: aicc(rss_log, data.len(), model.params),
        converged: best.converged,
        intervals,
        profile_alpha,
        profile_beta,
    }
}

/// Fits L = E + A/N^alpha + B/D^beta and the same with E = 0 to (N, D, loss) rows (each
/// finite and > 0; at least `TABLE_PARAMS + 1` rows), with `bootstrap` case-resampled
/// replicates of the rows (from `seed`) for the intervals, profiles of alpha and beta, and the
/// AICc choice (see `decide`).
pub fn fit_table(
    rows: &[(f64, f64, f64)],
    bootstrap: usize,
    seed: u64,
) -> Result<TableComparison, CurveError> {
    let data = table_data(rows)?;
    let with_model = Model::table(true);
    let without_model = Model::table(false);
    check_count(&with_model, data.len(), TABLE_PARAMS + 1)?;
    let reps = resample_points(rows, bootstrap, seed)
        .iter()
        .map(|r| table_data(r))
        .collect::<Result<Vec<_>, _>>()?;
    let fit = |model: &Model| -> Result<Solved, CurveError> {
        let all: Vec<usize> = (0..model.params).collect();
        best_of(model, &data, &grid_starts(model, &data), &all)
            .ok_or(CurveError::NoFit { form: model.name })
    };
    let b1 = fit(&with_model)?;
    let b0 = fit(&without_model)?;
    let with_pedestal = table_fit(true, &with_model, &data, &b1, &reps);
    let without_pedestal = table_fit(false, &without_model, &data, &b0, &reps);
    let (choice, reason) = decide(
        without_pedestal.aicc,
        without_pedestal.converged,
        with_pedestal.aicc,
        with_pedestal.converged,
    );
    Ok(TableComparison {
        alpha_shift: with_pedestal.alpha - without_pedestal.alpha,
        beta_shift: with_pedestal.beta - without_pedestal.beta,
        with_pedestal,
        without_pedestal,
        choice,
        reason,
        bootstrap,
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient against central differences, for every form.
    #[test]
    fn gradient_matches_finite_differences() {
        let data = Data {
            lnx: (0..7)
                .map(|i| [(10.0 + 3.0 * i as f64).ln(), (100.0 * (i + 1) as f64).ln()])
                .collect(),
            lny: vec![1.3, 1.1, 0.95, 0.9, 0.8, 0.79, 0.7],
            w: vec![1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 3.0],
        };
        for model in [
            Model::single(Form::PowerLaw),
            Model::single(Form::Pedestal),
            Model::table(true),
            Model::table(false),
        ] {
            let theta: Vec<f64> = (0..model.params).map(|i| 0.3 + 0.2 * i as f64).collect();
            let p = Problem {
                model: &model,
                data: &data,
                template: theta.clone(),
                free: (0..model.params).collect(),
            };
            let (_, g) = p.eval(&theta, true);
            for j in 0..model.params {
                let h = 1e-7;
                let (mut up, mut dn) = (theta.clone(), theta.clone());
                up[j] += h;
                dn[j] -= h;
                let fd = (p.eval(&up, false).0 - p.eval(&dn, false).0) / (2.0 * h);
                assert!(
                    (fd - g[j]).abs() <= 1e-4 * (1.0 + g[j].abs()),
                    "{}: d/dtheta{j} analytic {} vs {fd}",
                    model.name,
                    g[j]
                );
            }
        }
    }

    #[test]
    fn aicc_needs_two_more_points_than_parameters() {
        assert!(aicc(0.1, 4, 3).is_none());
        assert!(aicc(0.1, 5, 3).is_some());
        assert!(aicc(0.0, 10, 3).is_none());
        let (c, _) = decide(Some(10.0), true, None, true);
        assert_eq!(c, Choice::Undecided);
        assert_eq!(
            decide(Some(10.0), true, Some(7.0), true).0,
            Choice::WithPedestal
        );
        assert_eq!(
            decide(Some(10.0), true, Some(9.0), true).0,
            Choice::Undecided
        );
        assert_eq!(
            decide(Some(7.0), true, Some(10.0), true).0,
            Choice::WithoutPedestal
        );
        assert_eq!(
            decide(Some(10.0), true, Some(7.0), false).0,
            Choice::Undecided
        );
    }
}
