//! Streaming moments, signal-to-noise ratios, attention spread and a linear read-out.
//!
//! Definitions follow docs/METHOD.md, "Quantities": V is the unbiased trace of the covariance,
//! SNR = (||mu||^2 - V/S) / V, n_eff = 1 / sum a^2.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Errors from statistics, fits and input processes. Each message names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("dimension mismatch in {what}: expected {expected}, got {got}; every sample must have the same dimension")]
    DimensionMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what} needs at least {need} samples, got {got}; collect more samples")]
    TooFewSamples {
        what: &'static str,
        need: u64,
        got: u64,
    },
    #[error("{what} contains NaN or infinity; check the input (a kernel may have overflowed or read unwritten memory)")]
    NonFinite { what: String },
    #[error(
        "{what} has zero variance, so the ratio is undefined; use inputs that vary across samples"
    )]
    ZeroVariance { what: &'static str },
    #[error("{what} needs at least {need} points, got {got}; measure more context lengths")]
    TooFewPoints {
        what: &'static str,
        need: usize,
        got: usize,
    },
    #[error("matrix is not positive definite (pivot {pivot} is {value}); the features are degenerate, increase the ridge or remove constant features")]
    NotPositiveDefinite { pivot: usize, value: f64 },
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("cannot parse process {input:?}: {reason}; expected one of gaussian, ar1:RHO, student-t:DF, cauchy, fgn:HURST, planted:STRENGTH")]
    Parse { input: String, reason: String },
}

/// Per-dimension streaming mean and sum of squared deviations (Welford / Chan).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Moments {
    pub count: u64,
    pub mean: Vec<f64>,
    pub m2: Vec<f64>,
}

impl Moments {
    /// Empty moments of dimension `dim`.
    pub fn new(dim: usize) -> Self {
        Moments {
            count: 0,
            mean: vec![0.0; dim],
            m2: vec![0.0; dim],
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Adds one sample (Welford). An empty `Moments::default()` takes the dimension of the first
    /// sample.
    pub fn push(&mut self, x: &[f64]) -> Result<(), StatsError> {
        if self.count == 0 && self.mean.is_empty() {
            *self = Moments::new(x.len());
        }
        if x.len() != self.dim() {
            return Err(StatsError::DimensionMismatch {
                what: "Moments::push",
                expected: self.dim(),
                got: x.len(),
            });
        }
        if x.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::NonFinite {
                what: "sample pushed into Moments".into(),
            });
        }
        self.count += 1;
        let c = self.count as f64;
        for ((m, s), &v) in self.mean.iter_mut().zip(self.m2.iter_mut()).zip(x) {
            let delta = v - *m;
            *m += delta / c;
            *s += delta * (v - *m);
        }
        Ok(())
    }

    /// Merges another set of moments (Chan et al.'s parallel update).
    pub fn merge(&mut self, other: &Moments) -> Result<(), StatsError> {
        // A blank `Moments::default()` on either side fits any dimension.
        let blank = |m: &Moments| m.count == 0 && m.mean.is_empty();
        if other.m2.len() != other.dim() {
            return Err(StatsError::DimensionMismatch {
                what: "Moments::merge (other's m2 vs mean)",
                expected: other.dim(),
                got: other.m2.len(),
            });
        }
        if other.dim() != self.dim() && !blank(self) && !blank(other) {
            return Err(StatsError::DimensionMismatch {
                what: "Moments::merge",
                expected: self.dim(),
                got: other.dim(),
            });
        }
        if other.count == 0 {
            return Ok(());
        }
        if self.count == 0 {
            *self = other.clone();
            return Ok(());
        }
        let (na, nb) = (self.count as f64, other.count as f64);
        let n = na + nb;
        for k in 0..self.dim() {
            let delta = other.mean[k] - self.mean[k];
            self.mean[k] += delta * nb / n;
            self.m2[k] += other.m2[k] + delta * delta * na * nb / n;
        }
        self.count += other.count;
        Ok(())
    }

    /// Builds moments from a GPU partial reduction: `count` samples, their per-dimension mean and
    /// sum of squared deviations.
    pub fn from_batch_partials(count: u64, mean: &[f32], m2: &[f32]) -> Result<Self, StatsError> {
        if mean.len() != m2.len() {
            return Err(StatsError::DimensionMismatch {
                what: "Moments::from_batch_partials (mean vs m2)",
                expected: mean.len(),
                got: m2.len(),
            });
        }
        if mean.iter().chain(m2).any(|v| !v.is_finite()) {
            return Err(StatsError::NonFinite {
                what: "GPU moment partials".into(),
            });
        }
        if m2.iter().any(|&v| v < 0.0) {
            return Err(StatsError::Invalid {
                what: "GPU moment partials",
                reason: "a sum of squared deviations is negative; the reduction kernel is wrong"
                    .into(),
            });
        }
        Ok(Moments {
            count,
            mean: mean.iter().map(|&v| v as f64).collect(),
            m2: m2.iter().map(|&v| v as f64).collect(),
        })
    }

    /// Unbiased per-dimension variance m2 / (count - 1); NaN when count < 2 (undefined).
    pub fn variance_per_dim(&self) -> Vec<f64> {
        let denom = self.count as f64 - 1.0;
        self.m2
            .iter()
            .map(|&s| if self.count < 2 { f64::NAN } else { s / denom })
            .collect()
    }

    /// V = sum_k var_k, the unbiased trace of the covariance; NaN when count < 2.
    pub fn trace_variance(&self) -> f64 {
        if self.count < 2 {
            return f64::NAN;
        }
        self.m2.iter().sum::<f64>() / (self.count as f64 - 1.0)
    }

    /// ||mu||^2.
    pub fn mean_norm_sq(&self) -> f64 {
        self.mean.iter().map(|m| m * m).sum()
    }

    fn check_usable(&self, what: &'static str) -> Result<(), StatsError> {
        if self.count < 2 {
            return Err(StatsError::TooFewSamples {
                what,
                need: 2,
                got: self.count,
            });
        }
        if self.dim() == 0 || self.m2.len() != self.dim() {
            return Err(StatsError::DimensionMismatch {
                what,
                expected: self.dim().max(1),
                got: self.m2.len(),
            });
        }
        Ok(())
    }
}

/// Signal-to-noise ratio in its two forms.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snr {
    /// (||mu||^2 - V/S) / V: the subtraction removes the bias V/S of ||mu||^2.
    pub trace: f64,
    /// mean_k(mu_k^2 / sigma_k^2) over dimensions with non-zero variance (not bias-corrected:
    /// its expectation exceeds the true value by about 1/S).
    pub per_dim: f64,
}

/// Both SNR forms of `m` (docs/METHOD.md, "Quantities").
pub fn snr(m: &Moments) -> Result<Snr, StatsError> {
    m.check_usable("snr")?;
    let v = m.trace_variance();
    if v <= 0.0 {
        return Err(StatsError::ZeroVariance {
            what: "the hidden state",
        });
    }
    let s = m.count as f64;
    let trace = (m.mean_norm_sq() - v / s) / v;
    let (sum, used) = m
        .mean
        .iter()
        .zip(m.variance_per_dim())
        .filter(|(_, var)| *var > 0.0)
        .fold((0.0, 0usize), |(acc, k), (mu, var)| {
            (acc + mu * mu / var, k + 1)
        });
    if used == 0 {
        return Err(StatsError::ZeroVariance {
            what: "every dimension of the hidden state",
        });
    }
    Ok(Snr {
        trace,
        per_dim: sum / used as f64,
    })
}

/// Fisher ratio of two labelled classes: ||mu_+ - mu_-||^2 / (V_+ + V_-), where V_+- is the
/// unbiased trace variance of each class (so the denominator is the summed within-class noise and
/// the numerator the squared distance of the class means; no bias correction).
pub fn fisher_snr(class_pos: &Moments, class_neg: &Moments) -> Result<f64, StatsError> {
    class_pos.check_usable("fisher_snr (positive class)")?;
    class_neg.check_usable("fisher_snr (negative class)")?;
    if class_pos.dim() != class_neg.dim() {
        return Err(StatsError::DimensionMismatch {
            what: "fisher_snr",
            expected: class_pos.dim(),
            got: class_neg.dim(),
        });
    }
    let within = class_pos.trace_variance() + class_neg.trace_variance();
    if within <= 0.0 {
        return Err(StatsError::ZeroVariance {
            what: "the within-class noise",
        });
    }
    let between: f64 = class_pos
        .mean
        .iter()
        .zip(&class_neg.mean)
        .map(|(a, b)| (a - b) * (a - b))
        .sum();
    Ok(between / within)
}

/// [`fisher_snr`] with the sampling noise of the class means taken out of the numerator:
/// E||m_+ - m_-||^2 = ||mu_+ - mu_-||^2 + V_+/n_+ + V_-/n_-, so without the correction a
/// label the state does not carry at all reads as about 2/n (0.06 with 32 samples per class
/// against d = 576 dimensions). Unbiased for the squared distance; can be negative, which
/// says the label is not measurably there.
pub fn fisher_snr_debiased(class_pos: &Moments, class_neg: &Moments) -> Result<f64, StatsError> {
    let raw = fisher_snr(class_pos, class_neg)?;
    let (vp, vn) = (class_pos.trace_variance(), class_neg.trace_variance());
    let noise = vp / class_pos.count as f64 + vn / class_neg.count as f64;
    Ok(raw - noise / (vp + vn))
}

/// (n_eff, entropy) of one attention row: n_eff = 1 / sum a^2, H = -sum a ln a (0 ln 0 = 0).
/// The weights are renormalised to sum to 1 first, so f32 rounding of a softmax does not bias
/// either number. Returns (NaN, NaN) for an empty row, a negative or non-finite weight, or a
/// zero sum: such a row is not a distribution.
pub fn attention_spread(weights: &[f64]) -> (f64, f64) {
    let total: f64 = weights.iter().sum();
    if weights.is_empty() || !total.is_finite() || total <= 0.0 || weights.iter().any(|&a| a < 0.0)
    {
        return (f64::NAN, f64::NAN);
    }
    let mut sum_sq = 0.0;
    let mut entropy = 0.0;
    for &w in weights {
        let a = w / total;
        sum_sq += a * a;
        if a > 0.0 {
            entropy -= a * a.ln();
        }
    }
    (1.0 / sum_sq, entropy)
}

/// Solves A x = b in place for symmetric positive definite A (row-major d x d, overwritten by
/// its Cholesky factor); b becomes x.
pub(crate) fn cholesky_solve(a: &mut [f64], b: &mut [f64], d: usize) -> Result<(), StatsError> {
    if a.len() != d * d || b.len() != d {
        return Err(StatsError::DimensionMismatch {
            what: "cholesky_solve",
            expected: d * d,
            got: a.len(),
        });
    }
    for j in 0..d {
        let mut diag = a[j * d + j];
        for k in 0..j {
            diag -= a[j * d + k] * a[j * d + k];
        }
        if !diag.is_finite() || diag <= 0.0 {
            return Err(StatsError::NotPositiveDefinite {
                pivot: j,
                value: diag,
            });
        }
        let ljj = diag.sqrt();
        a[j * d + j] = ljj;
        for i in j + 1..d {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= a[i * d + k] * a[j * d + k];
            }
            a[i * d + j] = s / ljj;
        }
    }
    // Forward then backward substitution with L and L^T.
    for i in 0..d {
        let s: f64 = (0..i).map(|k| a[i * d + k] * b[k]).sum();
        b[i] = (b[i] - s) / a[i * d + i];
    }
    for i in (0..d).rev() {
        let s: f64 = (i + 1..d).map(|k| a[k * d + i] * b[k]).sum();
        b[i] = (b[i] - s) / a[i * d + i];
    }
    Ok(())
}

/// Accuracy of a linear read-out of `features` predicting `labels` (+1 or -1): ridge least
/// squares with a bias, fitted on a random half of the samples (chosen by `seed`) and scored by
/// sign on the other half. Features are centred on the training mean, so the bias is the mean
/// training label and is not penalised; the ridge is 1e-3 * trace(Gram) / d, which keeps the
/// normal equations solvable when d exceeds the training set.
pub fn linear_readout_accuracy(
    features: &[Vec<f64>],
    labels: &[f64],
    seed: u64,
) -> Result<f64, StatsError> {
    if features.len() != labels.len() {
        return Err(StatsError::DimensionMismatch {
            what: "linear_readout_accuracy (features vs labels)",
            expected: features.len(),
            got: labels.len(),
        });
    }
    if features.len() < 4 {
        return Err(StatsError::TooFewSamples {
            what: "linear_readout_accuracy",
            need: 4,
            got: features.len() as u64,
        });
    }
    let d = features[0].len();
    if d == 0 {
        return Err(StatsError::Invalid {
            what: "features",
            reason: "feature vectors are empty; pass at least one feature".into(),
        });
    }
    for f in features {
        if f.len() != d {
            return Err(StatsError::DimensionMismatch {
                what: "linear_readout_accuracy (features)",
                expected: d,
                got: f.len(),
            });
        }
        if f.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::NonFinite {
                what: "read-out features".into(),
            });
        }
    }
    if labels.iter().any(|&y| y != 1.0 && y != -1.0) {
        return Err(StatsError::Invalid {
            what: "labels",
            reason: "every label must be +1 or -1".into(),
        });
    }

    let mut order: Vec<usize> = (0..features.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let (train, test) = order.split_at(features.len() / 2);

    let mut mean = vec![0.0; d];
    for &i in train {
        for (m, v) in mean.iter_mut().zip(&features[i]) {
            *m += v;
        }
    }
    mean.iter_mut().for_each(|m| *m /= train.len() as f64);
    let y_mean = train.iter().map(|&i| labels[i]).sum::<f64>() / train.len() as f64;

    // Normal equations on centred data; only the lower triangle of the Gram matrix is built.
    let mut gram = vec![0.0; d * d];
    let mut rhs = vec![0.0; d];
    let mut xc = vec![0.0; d];
    for &i in train {
        for ((c, v), m) in xc.iter_mut().zip(&features[i]).zip(&mean) {
            *c = v - m;
        }
        let y = labels[i] - y_mean;
        for r in 0..d {
            rhs[r] += xc[r] * y;
            let row = &mut gram[r * d..r * d + r + 1];
            for (g, c) in row.iter_mut().zip(&xc) {
                *g += xc[r] * c;
            }
        }
    }
    let trace: f64 = (0..d).map(|k| gram[k * d + k]).sum();
    // Constant features give a zero Gram; any positive ridge then yields w = 0.
    let ridge = if trace > 0.0 {
        1e-3 * trace / d as f64
    } else {
        1.0
    };
    for r in 0..d {
        gram[r * d + r] += ridge;
        for c in 0..r {
            gram[c * d + r] = gram[r * d + c];
        }
    }
    cholesky_solve(&mut gram, &mut rhs, d)?;

    let correct = test
        .iter()
        .filter(|&&i| {
            let score: f64 = y_mean
                + features[i]
                    .iter()
                    .zip(&mean)
                    .zip(&rhs)
                    .map(|((x, m), w)| (x - m) * w)
                    .sum::<f64>();
            let predicted = if score >= 0.0 { 1.0 } else { -1.0 };
            predicted == labels[i]
        })
        .count();
    Ok(correct as f64 / test.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian_rows(rng: &mut ChaCha8Rng, s: usize, mu: &[f64], sigma: f64) -> Vec<Vec<f64>> {
        (0..s)
            .map(|_| {
                mu.iter()
                    .map(|m| m + sigma * Distribution::<f64>::sample(&StandardNormal, rng))
                    .collect()
            })
            .collect()
    }

    fn two_pass(rows: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
        let d = rows[0].len();
        let s = rows.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|k| rows.iter().map(|r| r[k]).sum::<f64>() / s)
            .collect();
        let var = (0..d)
            .map(|k| rows.iter().map(|r| (r[k] - mean[k]).powi(2)).sum::<f64>() / (s - 1.0))
            .collect();
        (mean, var)
    }

    fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < tol)
    }

    #[test]
    fn welford_matches_two_pass_and_merge_matches_whole() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mu: Vec<f64> = (0..7).map(|k| k as f64 * 0.3 - 1.0).collect();
        let rows = gaussian_rows(&mut rng, 301, &mu, 2.5);
        let (mean, var) = two_pass(&rows);

        let mut whole = Moments::default();
        let (mut a, mut b) = (Moments::default(), Moments::default());
        for (i, r) in rows.iter().enumerate() {
            whole.push(r).unwrap();
            let part = if i < 120 { &mut a } else { &mut b };
            part.push(r).unwrap();
        }
        assert_eq!(whole.count, 301);
        assert!(close(&whole.mean, &mean, 1e-12));
        assert!(close(&whole.variance_per_dim(), &var, 1e-10));
        a.merge(&b).unwrap();
        assert_eq!(a.count, 301);
        assert!(close(&a.mean, &mean, 1e-12));
        assert!(close(&a.m2, &whole.m2, 1e-9));
        let v: f64 = var.iter().sum();
        assert!((whole.trace_variance() - v).abs() < 1e-9);
        let norm: f64 = mean.iter().map(|m| m * m).sum();
        assert!((whole.mean_norm_sq() - norm).abs() < 1e-12);
    }

    #[test]
    fn gpu_partials_merge_like_samples() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let rows = gaussian_rows(&mut rng, 200, &[0.5, -2.0, 3.0], 1.5);
        let mut whole = Moments::default();
        let mut merged = Moments::default();
        for chunk in rows.chunks(64) {
            let mut part = Moments::default();
            for r in chunk {
                part.push(r).unwrap();
                whole.push(r).unwrap();
            }
            let mean: Vec<f32> = part.mean.iter().map(|&v| v as f32).collect();
            let m2: Vec<f32> = part.m2.iter().map(|&v| v as f32).collect();
            merged
                .merge(&Moments::from_batch_partials(part.count, &mean, &m2).unwrap())
                .unwrap();
        }
        assert_eq!(merged.count, 200);
        let rel = (merged.trace_variance() - whole.trace_variance()).abs() / whole.trace_variance();
        assert!(rel < 1e-6, "rel {rel}");
        assert!(Moments::from_batch_partials(3, &[1.0], &[-1.0]).is_err());
        assert!(Moments::from_batch_partials(3, &[1.0], &[1.0, 2.0]).is_err());
        assert!(Moments::from_batch_partials(3, &[f32::NAN], &[1.0]).is_err());
    }

    #[test]
    fn moments_reject_bad_input() {
        let mut m = Moments::default();
        m.push(&[1.0, 2.0]).unwrap();
        assert!(m.push(&[1.0]).is_err());
        assert!(m.push(&[1.0, f64::NAN]).is_err());
        assert!(m
            .merge(&{
                let mut o = Moments::default();
                o.push(&[1.0, 2.0, 3.0]).unwrap();
                o
            })
            .is_err());
        assert!(Moments::new(3).merge(&m).is_err());
        assert!(m.merge(&Moments::default()).is_ok() && m.count == 1);
        assert!(m.trace_variance().is_nan());
        assert!(snr(&m).is_err());
        let mut flat = Moments::default();
        flat.push(&[1.0, 1.0]).unwrap();
        flat.push(&[1.0, 1.0]).unwrap();
        assert!(matches!(snr(&flat), Err(StatsError::ZeroVariance { .. })));
    }

    #[test]
    fn snr_recovers_known_signal() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let d = 16;
        let sigma = 2.0;
        let mu: Vec<f64> = (0..d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let mut m = Moments::default();
        for r in gaussian_rows(&mut rng, 20_000, &mu, sigma) {
            m.push(&r).unwrap();
        }
        let norm: f64 = mu.iter().map(|x| x * x).sum();
        let want_trace = norm / (d as f64 * sigma * sigma);
        let want_per_dim = norm / d as f64 / (sigma * sigma);
        let got = snr(&m).unwrap();
        assert!(
            (got.trace - want_trace).abs() < 0.01,
            "{got:?} vs {want_trace}"
        );
        assert!((got.per_dim - want_per_dim).abs() < 0.01, "{got:?}");

        // Pure noise: the bias-corrected trace SNR is centred on zero, not on d/S.
        let mut noise = Moments::default();
        for r in gaussian_rows(&mut rng, 50, &vec![0.0; 64], 1.0) {
            noise.push(&r).unwrap();
        }
        assert!(snr(&noise).unwrap().trace.abs() < 0.01);
    }

    #[test]
    fn fisher_snr_of_separated_classes() {
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let d = 8;
        let shift: Vec<f64> = (0..d).map(|k| if k == 3 { 1.5 } else { 0.0 }).collect();
        let neg_shift: Vec<f64> = shift.iter().map(|x| -x).collect();
        let (mut pos, mut neg) = (Moments::default(), Moments::default());
        for r in gaussian_rows(&mut rng, 20_000, &shift, 1.0) {
            pos.push(&r).unwrap();
        }
        for r in gaussian_rows(&mut rng, 20_000, &neg_shift, 1.0) {
            neg.push(&r).unwrap();
        }
        // ||2 * 1.5 e_3||^2 / (d + d) = 9 / 16.
        let f = fisher_snr(&pos, &neg).unwrap();
        assert!((f - 9.0 / 16.0).abs() < 0.01, "{f}");
        assert!(fisher_snr(&pos, &Moments::default()).is_err());
    }

    /// Two classes of one distribution (no label in the state): the raw ratio averages about
    /// 1/n, the debiased one about 0.
    #[test]
    fn debiased_fisher_snr_reads_zero_without_a_label() {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let (d, n, reps) = (64, 16, 400);
        let zero = vec![0.0; d];
        let (mut raw, mut debiased) = (0.0, 0.0);
        for _ in 0..reps {
            let (mut pos, mut neg) = (Moments::default(), Moments::default());
            for r in gaussian_rows(&mut rng, n, &zero, 1.0) {
                pos.push(&r).unwrap();
            }
            for r in gaussian_rows(&mut rng, n, &zero, 1.0) {
                neg.push(&r).unwrap();
            }
            raw += fisher_snr(&pos, &neg).unwrap() / reps as f64;
            debiased += fisher_snr_debiased(&pos, &neg).unwrap() / reps as f64;
        }
        assert!((raw - 1.0 / n as f64).abs() < 0.005, "raw {raw}");
        assert!(debiased.abs() < 0.005, "debiased {debiased}");
    }

    #[test]
    fn attention_spread_known_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        let n = 37;
        let (n_eff, h) = attention_spread(&vec![1.0 / n as f64; n]);
        assert!((n_eff - n as f64).abs() < 1e-9);
        assert!((h - (n as f64).ln()).abs() < 1e-12);
        let (n_eff, h) = attention_spread(&[0.0, 1.0, 0.0]);
        assert_eq!((n_eff, h), (1.0, 0.0));
        // Random row: n_eff lies in [1, n] and e^H >= n_eff (Renyi order).
        let w: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..1.0)).collect();
        let (n_eff, h) = attention_spread(&w);
        assert!(n_eff > 1.0 && n_eff < n as f64 && h.exp() >= n_eff);
        assert!(attention_spread(&[]).0.is_nan());
        assert!(attention_spread(&[0.5, -0.1]).1.is_nan());
    }

    #[test]
    fn cholesky_solves_spd_system() {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let d = 9;
        let b: Vec<f64> = (0..d * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        // A = B B^T + I is SPD.
        let mut a = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                a[i * d + j] = (0..d).map(|k| b[i * d + k] * b[j * d + k]).sum::<f64>()
                    + if i == j { 1.0 } else { 0.0 };
            }
        }
        let x: Vec<f64> = (0..d).map(|_| rng.random_range(-2.0..2.0)).collect();
        let mut rhs: Vec<f64> = (0..d)
            .map(|i| (0..d).map(|j| a[i * d + j] * x[j]).sum())
            .collect();
        cholesky_solve(&mut a.clone(), &mut rhs, d).unwrap();
        assert!(close(&rhs, &x, 1e-9));
        let mut not_pd = vec![1.0, 2.0, 2.0, 1.0];
        assert!(cholesky_solve(&mut not_pd, &mut [1.0, 1.0], 2).is_err());
    }

    #[test]
    fn readout_separates_planted_signal_and_not_noise() {
        let mut rng = ChaCha8Rng::seed_from_u64(17);
        let d = 40;
        let u: Vec<f64> = (0..d).map(|k| ((k * 7 % 5) as f64 - 2.0) / 10.0).collect();
        let (mut feats, mut labels, mut random_labels) = (vec![], vec![], vec![]);
        for _ in 0..400 {
            let y = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
            let x: Vec<f64> = u
                .iter()
                .map(|uk| {
                    3.0 * y * uk
                        + Distribution::<f64>::sample(&StandardNormal, &mut rng) * 0.3
                        + 5.0
                })
                .collect();
            feats.push(x);
            labels.push(y);
            random_labels.push(if rng.random_bool(0.5) { 1.0 } else { -1.0 });
        }
        let acc = linear_readout_accuracy(&feats, &labels, 1).unwrap();
        assert!(acc > 0.95, "{acc}");
        let chance = linear_readout_accuracy(&feats, &random_labels, 1).unwrap();
        assert!((0.35..0.65).contains(&chance), "{chance}");
        // More features than training samples still solves, thanks to the ridge.
        let wide: Vec<Vec<f64>> = feats[..20].iter().map(|f| f.repeat(2)).collect();
        assert!(linear_readout_accuracy(&wide, &labels[..20], 2).is_ok());
        assert!(linear_readout_accuracy(&feats, &vec![0.0; 400], 1).is_err());
        assert!(linear_readout_accuracy(&feats[..3], &labels[..3], 1).is_err());
    }
}

/// How [`quantile`] reads a quantile from sorted values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantileRule {
    /// The order statistic at the rounded position q (n - 1): a value that occurred. The
    /// bootstrap intervals of the sweep and of the loss curves use it.
    Nearest,
    /// Linear between the order statistics around q (n - 1) (R's and numpy's default):
    /// timing summaries and the curve fits' parameter intervals use it.
    Linear,
}

/// The `q` quantile (0..=1) of `sorted` (ascending) under `rule`; NaN when it is empty.
pub fn quantile(sorted: &[f64], q: f64, rule: QuantileRule) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    match rule {
        QuantileRule::Nearest => sorted[(pos.round() as usize).min(sorted.len() - 1)],
        QuantileRule::Linear => {
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (pos - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

#[cfg(test)]
mod quantile_tests {
    use super::*;

    #[test]
    fn both_rules_on_a_small_sample() {
        let v = [1.0, 2.0, 4.0, 8.0];
        // q (n - 1) = 0.3 x 3 = 0.9: the nearest order statistic is the second.
        assert_eq!(quantile(&v, 0.3, QuantileRule::Nearest), 2.0);
        assert!((quantile(&v, 0.3, QuantileRule::Linear) - 1.9).abs() < 1e-12);
        assert_eq!(quantile(&v, 1.0, QuantileRule::Linear), 8.0);
        assert_eq!(quantile(&v, 0.0, QuantileRule::Nearest), 1.0);
        assert!(quantile(&[], 0.5, QuantileRule::Linear).is_nan());
    }
}
