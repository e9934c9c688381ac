//! Seeded input processes for sweeps (docs/METHOD.md, "The controls"). Each sample is [n, d]
//! row-major, each dimension an independent copy of a scalar process. All randomness comes from
//! the caller's ChaCha8Rng, so a seed gives the same inputs on every machine (up to the last bit
//! of libm's transcendental functions, which rarely survives rounding to f32).

use std::fmt;
use std::str::FromStr;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Cauchy, Distribution, StandardNormal, StudentT};
use serde::{Deserialize, Serialize};

use crate::stats::StatsError;

/// Scalar input process, per dimension.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Process {
    /// i.i.d. N(0, 1).
    Gaussian,
    /// x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t, started from stationarity (unit variance).
    Ar1 { rho: f64 },
    /// i.i.d. Student-t with `df` degrees of freedom, unscaled (no finite variance for df <= 2).
    StudentT { df: f64 },
    /// i.i.d. standard Cauchy.
    Cauchy,
    /// Fractional Gaussian noise with Hurst exponent `hurst`, unit variance, generated exactly.
    Fgn { hurst: f64 },
    /// x_t = y s u + N(0, I) with label y = +-1 and the fixed unit vector `planted_direction(d)`.
    Planted { strength: f64 },
}

/// Seed of the planted direction u: fixed so every sample, run and machine shares it.
pub const PLANTED_SEED: u64 = 0x5EED;

fn invalid(reason: String) -> StatsError {
    StatsError::Invalid {
        what: "process",
        reason,
    }
}

impl Process {
    pub fn validate(&self) -> Result<(), StatsError> {
        match *self {
            Process::Gaussian | Process::Cauchy => Ok(()),
            Process::Ar1 { rho } if !(rho.is_finite() && rho.abs() < 1.0) => Err(invalid(format!(
                "ar1 rho = {rho}; it must satisfy |rho| < 1 to be stationary"
            ))),
            Process::StudentT { df } if !(df.is_finite() && df > 0.0) => Err(invalid(format!(
                "student-t df = {df}; degrees of freedom must be positive and finite"
            ))),
            Process::Fgn { hurst } if !(hurst > 0.0 && hurst < 1.0) => Err(invalid(format!(
                "fgn hurst = {hurst}; the Hurst exponent must lie strictly between 0 and 1"
            ))),
            Process::Planted { strength } if !(strength.is_finite() && strength >= 0.0) => {
                Err(invalid(format!(
                    "planted strength = {strength}; it must be finite and >= 0"
                )))
            }
            _ => Ok(()),
        }
    }

    /// One sample of length n and d dimensions into `out` ([n, d] row-major); returns the label
    /// (+1/-1 for Planted, 0 otherwise). Builds the caches every call: use `Sampler` for many.
    pub fn sample(
        &self,
        n: usize,
        d: usize,
        rng: &mut ChaCha8Rng,
        out: &mut [f32],
    ) -> Result<f64, StatsError> {
        Sampler::new(self.clone(), n, d)?.fill(rng, out)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Gaussian => write!(f, "gaussian"),
            Process::Ar1 { rho } => write!(f, "ar1:{rho}"),
            Process::StudentT { df } => write!(f, "student-t:{df}"),
            Process::Cauchy => write!(f, "cauchy"),
            Process::Fgn { hurst } => write!(f, "fgn:{hurst}"),
            Process::Planted { strength } => write!(f, "planted:{strength}"),
        }
    }
}

impl FromStr for Process {
    type Err = StatsError;

    /// Parses "gaussian", "ar1:0.5", "student-t:1.5", "cauchy", "fgn:0.7", "planted:0.5", and
    /// validates the parameter.
    fn from_str(s: &str) -> Result<Self, StatsError> {
        let text = s.trim().to_ascii_lowercase();
        let (name, arg) = match text.split_once(':') {
            Some((name, arg)) => (name.trim(), Some(arg.trim())),
            None => (text.as_str(), None),
        };
        let err = |reason: &str| StatsError::Parse {
            input: s.to_string(),
            reason: reason.to_string(),
        };
        let param = || -> Result<f64, StatsError> {
            let arg = arg.ok_or_else(|| err(&format!("{name} needs a parameter, as {name}:X")))?;
            arg.parse::<f64>()
                .map_err(|_| err(&format!("{arg:?} is not a number")))
        };
        let no_param = |p: Process| match arg {
            Some(_) => Err(err(&format!("{name} takes no parameter"))),
            None => Ok(p),
        };
        let process = match name {
            "gaussian" => no_param(Process::Gaussian)?,
            "cauchy" => no_param(Process::Cauchy)?,
            "ar1" => Process::Ar1 { rho: param()? },
            "student-t" | "student_t" => Process::StudentT { df: param()? },
            "fgn" => Process::Fgn { hurst: param()? },
            "planted" => Process::Planted { strength: param()? },
            _ => return Err(err(&format!("unknown process {name:?}"))),
        };
        process.validate()?;
        Ok(process)
    }
}

/// The planted direction u for dimension d: a normalised Gaussian vector from `PLANTED_SEED`.
pub fn planted_direction(d: usize) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(PLANTED_SEED);
    let mut u: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
    let norm = u.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        u.iter_mut().for_each(|x| *x /= norm);
    }
    u
}

/// In-place radix-2 FFT (forward, e^{-2 pi i jk / M}) with precomputed twiddles.
#[derive(Clone, Debug)]
pub(crate) struct Fft {
    rev: Vec<usize>,
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl Fft {
    /// `size` must be a power of two >= 2.
    pub(crate) fn new(size: usize) -> Self {
        let bits = size.trailing_zeros();
        let rev = (0..size)
            .map(|i| i.reverse_bits() >> (usize::BITS - bits))
            .collect();
        let angle = |k: usize| 2.0 * std::f64::consts::PI * k as f64 / size as f64;
        Fft {
            rev,
            cos: (0..size / 2).map(|k| angle(k).cos()).collect(),
            sin: (0..size / 2).map(|k| angle(k).sin()).collect(),
        }
    }

    pub(crate) fn transform(&self, re: &mut [f64], im: &mut [f64]) {
        let size = self.rev.len();
        for (i, &j) in self.rev.iter().enumerate() {
            if i < j {
                re.swap(i, j);
                im.swap(i, j);
            }
        }
        let mut len = 2;
        while len <= size {
            let half = len / 2;
            let step = size / len;
            for start in (0..size).step_by(len) {
                for j in 0..half {
                    let (wr, wi) = (self.cos[j * step], -self.sin[j * step]);
                    let (a, b) = (start + j, start + j + half);
                    let vr = re[b] * wr - im[b] * wi;
                    let vi = re[b] * wi + im[b] * wr;
                    re[b] = re[a] - vr;
                    im[b] = im[a] - vi;
                    re[a] += vr;
                    im[a] += vi;
                }
            }
            len *= 2;
        }
    }
}

/// Largest n for fGn, to keep the circulant buffers reasonable.
const FGN_MAX_N: usize = 1 << 24;

/// Exact fractional Gaussian noise by Davies-Harte circulant embedding. Built once per (n, H);
/// each call to `generate_pair` yields two independent unit-variance paths from one FFT (the real
/// and imaginary parts of a circular complex Gaussian field).
#[derive(Clone, Debug)]
pub struct FgnGenerator {
    n: usize,
    fft: Fft,
    /// sqrt(lambda_k / M), lambda the circulant eigenvalues.
    scale: Vec<f64>,
    re: Vec<f64>,
    im: Vec<f64>,
}

/// Autocovariance of unit-variance fGn at lag k.
pub fn fgn_autocovariance(k: usize, hurst: f64) -> f64 {
    let h2 = 2.0 * hurst;
    let k = k as f64;
    0.5 * ((k + 1.0).powf(h2) - 2.0 * k.powf(h2) + (k - 1.0).abs().powf(h2))
}

impl FgnGenerator {
    pub fn new(n: usize, hurst: f64) -> Result<Self, StatsError> {
        Process::Fgn { hurst }.validate()?;
        if n == 0 || n > FGN_MAX_N {
            return Err(invalid(format!(
                "fgn length n = {n}; it must be between 1 and {FGN_MAX_N}"
            )));
        }
        let m = n.next_power_of_two();
        let size = 2 * m;
        let fft = Fft::new(size);
        // First row of the circulant: gamma(0..=m) then mirrored.
        let mut re: Vec<f64> = (0..size)
            .map(|j| fgn_autocovariance(j.min(size - j), hurst))
            .collect();
        let mut im = vec![0.0; size];
        fft.transform(&mut re, &mut im);
        let max = re.iter().copied().fold(0.0, f64::max);
        if let Some(bad) = re.iter().find(|&&l| l < -1e-9 * max) {
            return Err(invalid(format!(
                "fgn circulant embedding has a negative eigenvalue {bad} for n = {n}, H = {hurst}"
            )));
        }
        let scale = re
            .iter()
            .map(|&l| (l.max(0.0) / size as f64).sqrt())
            .collect();
        Ok(FgnGenerator {
            n,
            fft,
            scale,
            re: vec![0.0; size],
            im: vec![0.0; size],
        })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    /// Two independent fGn paths of length n.
    pub fn generate_pair(&mut self, rng: &mut ChaCha8Rng) -> (&[f64], &[f64]) {
        // W_k = sqrt(lambda_k / M) (A + iB): then FFT(W) has E[X X^*] = 2C and E[X X^T] = 0, so
        // Re X and Im X are independent with covariance C.
        for ((r, i), s) in self.re.iter_mut().zip(self.im.iter_mut()).zip(&self.scale) {
            *r = s * Distribution::<f64>::sample(&StandardNormal, rng);
            *i = s * Distribution::<f64>::sample(&StandardNormal, rng);
        }
        self.fft.transform(&mut self.re, &mut self.im);
        (&self.re[..self.n], &self.im[..self.n])
    }
}

#[derive(Clone, Debug)]
enum Kind {
    Gaussian,
    Ar1 { rho: f64, innovation: f64 },
    StudentT(StudentT<f64>),
    Cauchy(Cauchy<f64>),
    Fgn(FgnGenerator),
    Planted { strength: f64, u: Vec<f64> },
}

/// Draws samples of one process at one (n, d), with its caches built once.
#[derive(Clone, Debug)]
pub struct Sampler {
    process: Process,
    n: usize,
    d: usize,
    kind: Kind,
}

/// f64 to f32, saturating: heavy tails must not turn into inf on the GPU.
fn to_f32(x: f64) -> f32 {
    x.clamp(-(f32::MAX as f64), f32::MAX as f64) as f32
}

impl Sampler {
    pub fn new(process: Process, n: usize, d: usize) -> Result<Self, StatsError> {
        process.validate()?;
        if n == 0 || d == 0 || n.checked_mul(d).is_none() {
            return Err(invalid(format!(
                "sample shape n = {n}, d = {d}; both must be at least 1 and n * d must fit in memory"
            )));
        }
        let kind = match process {
            Process::Gaussian => Kind::Gaussian,
            Process::Ar1 { rho } => Kind::Ar1 {
                rho,
                innovation: (1.0 - rho * rho).sqrt(),
            },
            Process::StudentT { df } => Kind::StudentT(
                StudentT::new(df).map_err(|e| invalid(format!("student-t df = {df}: {e}")))?,
            ),
            Process::Cauchy => {
                Kind::Cauchy(Cauchy::new(0.0, 1.0).map_err(|e| invalid(format!("cauchy: {e}")))?)
            }
            Process::Fgn { hurst } => Kind::Fgn(FgnGenerator::new(n, hurst)?),
            Process::Planted { strength } => Kind::Planted {
                strength,
                u: planted_direction(d),
            },
        };
        Ok(Sampler {
            process,
            n,
            d,
            kind,
        })
    }

    pub fn process(&self) -> &Process {
        &self.process
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn d(&self) -> usize {
        self.d
    }

    /// Fills `out` ([n, d] row-major) with one sample; returns the label (+1/-1 for Planted,
    /// 0 otherwise).
    pub fn fill(&mut self, rng: &mut ChaCha8Rng, out: &mut [f32]) -> Result<f64, StatsError> {
        let (n, d) = (self.n, self.d);
        if out.len() != n * d {
            return Err(StatsError::DimensionMismatch {
                what: "Sampler::fill output buffer (n * d)",
                expected: n * d,
                got: out.len(),
            });
        }
        let mut label = 0.0;
        match &mut self.kind {
            Kind::Gaussian => {
                for x in out.iter_mut() {
                    *x = StandardNormal.sample(rng);
                }
            }
            Kind::Ar1 { rho, innovation } => {
                for k in 0..d {
                    let mut x: f64 = StandardNormal.sample(rng);
                    out[k] = x as f32;
                    for t in 1..n {
                        let e: f64 = StandardNormal.sample(rng);
                        x = *rho * x + *innovation * e;
                        out[t * d + k] = x as f32;
                    }
                }
            }
            Kind::StudentT(dist) => {
                for x in out.iter_mut() {
                    *x = to_f32(dist.sample(rng));
                }
            }
            Kind::Cauchy(dist) => {
                for x in out.iter_mut() {
                    *x = to_f32(dist.sample(rng));
                }
            }
            Kind::Fgn(generator) => {
                for k in (0..d).step_by(2) {
                    let (a, b) = generator.generate_pair(rng);
                    for t in 0..n {
                        out[t * d + k] = a[t] as f32;
                        if k + 1 < d {
                            out[t * d + k + 1] = b[t] as f32;
                        }
                    }
                }
            }
            Kind::Planted { strength, u } => {
                label = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
                for row in out.chunks_exact_mut(d) {
                    for (x, uk) in row.iter_mut().zip(u.iter()) {
                        let noise: f64 = StandardNormal.sample(rng);
                        *x = (label * *strength * uk + noise) as f32;
                    }
                }
            }
        }
        Ok(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws `samples` samples and returns them as f64 rows of [n, d].
    fn draw(process: Process, n: usize, d: usize, samples: usize, seed: u64) -> Vec<Vec<f64>> {
        let mut sampler = Sampler::new(process, n, d).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut buf = vec![f32::NAN; n * d];
        (0..samples)
            .map(|_| {
                sampler.fill(&mut rng, &mut buf).unwrap();
                assert!(buf.iter().all(|x| x.is_finite()));
                buf.iter().map(|&x| x as f64).collect()
            })
            .collect()
    }

    /// Mean, variance and lag-`lag` autocorrelation over all series (pooled).
    fn series_stats(rows: &[Vec<f64>], n: usize, d: usize, lag: usize) -> (f64, f64, f64) {
        let all: Vec<f64> = rows.iter().flatten().copied().collect();
        let mean = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / all.len() as f64;
        let (mut cov, mut count) = (0.0, 0.0);
        for r in rows {
            for k in 0..d {
                for t in lag..n {
                    cov += (r[t * d + k] - mean) * (r[(t - lag) * d + k] - mean);
                    count += 1.0;
                }
            }
        }
        (mean, var, cov / count / var)
    }

    #[test]
    fn gaussian_has_unit_variance_and_no_memory() {
        let rows = draw(Process::Gaussian, 200, 6, 40, 31);
        let (mean, var, r1) = series_stats(&rows, 200, 6, 1);
        assert!(mean.abs() < 0.02 && (var - 1.0).abs() < 0.03 && r1.abs() < 0.03);
    }

    #[test]
    fn ar1_is_stationary_with_lag_one_rho() {
        let (n, d) = (300, 5);
        let rows = draw(Process::Ar1 { rho: 0.5 }, n, d, 60, 32);
        let (mean, var, r1) = series_stats(&rows, n, d, 1);
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!((r1 - 0.5).abs() < 0.03, "{r1}");
        let (_, _, r2) = series_stats(&rows, n, d, 2);
        assert!((r2 - 0.25).abs() < 0.03, "{r2}");
        // Started from stationarity: the first step already has unit variance.
        let first: Vec<f64> = rows.iter().flat_map(|r| r[..d].to_vec()).collect();
        let v0 = first.iter().map(|x| x * x).sum::<f64>() / first.len() as f64;
        assert!((v0 - 1.0).abs() < 0.2, "{v0}");
    }

    #[test]
    fn fft_matches_naive_dft() {
        let mut rng = ChaCha8Rng::seed_from_u64(33);
        let size = 16;
        let xr: Vec<f64> = (0..size).map(|_| rng.random_range(-1.0..1.0)).collect();
        let xi: Vec<f64> = (0..size).map(|_| rng.random_range(-1.0..1.0)).collect();
        let (mut re, mut im) = (xr.clone(), xi.clone());
        Fft::new(size).transform(&mut re, &mut im);
        for k in 0..size {
            let (mut sr, mut si) = (0.0, 0.0);
            for j in 0..size {
                let a = -2.0 * std::f64::consts::PI * (j * k) as f64 / size as f64;
                sr += xr[j] * a.cos() - xi[j] * a.sin();
                si += xr[j] * a.sin() + xi[j] * a.cos();
            }
            assert!((re[k] - sr).abs() < 1e-12 && (im[k] - si).abs() < 1e-12);
        }
    }

    #[test]
    fn fgn_has_the_right_correlations() {
        let (n, d, hurst) = (300, 8, 0.7);
        let rows = draw(Process::Fgn { hurst }, n, d, 60, 34);
        let (mean, var, r1) = series_stats(&rows, n, d, 1);
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "{mean} {var}");
        // 2^(2H-1) - 1 = 0.3195 for H = 0.7.
        assert!((fgn_autocovariance(1, hurst) - 0.3195).abs() < 1e-4);
        assert!((r1 - 0.3195).abs() < 0.03, "{r1}");
        let (_, _, r10) = series_stats(&rows, n, d, 10);
        assert!((r10 - fgn_autocovariance(10, hurst)).abs() < 0.04, "{r10}");
    }

    #[test]
    fn fgn_mean_variance_scales_like_n_to_2h_minus_2() {
        let (d, hurst) = (16, 0.7);
        let mut points = vec![];
        for n in [8usize, 64, 512] {
            let rows = draw(Process::Fgn { hurst }, n, d, 150, 35 + n as u64);
            // Variance (about the known zero mean) of each series' time average.
            let mut sum_sq = 0.0;
            for r in &rows {
                for k in 0..d {
                    let m = (0..n).map(|t| r[t * d + k]).sum::<f64>() / n as f64;
                    sum_sq += m * m;
                }
            }
            let var = sum_sq / (rows.len() * d) as f64;
            // Exact for fGn: Var(mean) = n^(2H - 2).
            let want = (n as f64).powf(2.0 * hurst - 2.0);
            assert!((var / want - 1.0).abs() < 0.15, "n {n}: {var} vs {want}");
            points.push(var);
        }
        let slope = (points[2] / points[0]).ln() / (512f64 / 8.0).ln();
        assert!((slope - (2.0 * hurst - 2.0)).abs() < 0.05, "{slope}");
    }

    #[test]
    fn heavy_tails_have_the_right_scale() {
        let rows = draw(Process::Cauchy, 500, 4, 20, 36);
        let mut abs: Vec<f64> = rows.iter().flatten().map(|x| x.abs()).collect();
        abs.sort_by(f64::total_cmp);
        // The median of |standard Cauchy| is 1.
        assert!((abs[abs.len() / 2] - 1.0).abs() < 0.05);
        let rows = draw(Process::StudentT { df: 5.0 }, 500, 4, 20, 37);
        let (_, var, _) = series_stats(&rows, 500, 4, 1);
        assert!((var - 5.0 / 3.0).abs() < 0.2, "{var}");
    }

    #[test]
    fn planted_labels_balance_and_shift_along_u() {
        let (n, d, s) = (4, 10, 2000);
        let u = planted_direction(d);
        assert!((u.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
        let mut sampler = Sampler::new(Process::Planted { strength: 0.8 }, n, d).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(38);
        let mut buf = vec![0.0f32; n * d];
        let (mut positives, mut along, mut across) = (0, 0.0, 0.0);
        let other: Vec<f64> = (0..d)
            .map(|k| {
                if k == 0 {
                    u[1]
                } else if k == 1 {
                    -u[0]
                } else {
                    0.0
                }
            })
            .collect();
        for _ in 0..s {
            let y = sampler.fill(&mut rng, &mut buf).unwrap();
            assert!(y == 1.0 || y == -1.0);
            positives += (y > 0.0) as usize;
            for row in buf.chunks(d) {
                along += y * row.iter().zip(&u).map(|(&x, u)| x as f64 * u).sum::<f64>();
                across += y * row
                    .iter()
                    .zip(&other)
                    .map(|(&x, o)| x as f64 * o)
                    .sum::<f64>();
            }
        }
        let frac = positives as f64 / s as f64;
        assert!((frac - 0.5).abs() < 0.04, "{frac}");
        let rows = (s * n) as f64;
        assert!((along / rows - 0.8).abs() < 0.05, "{}", along / rows);
        assert!((across / rows).abs() < 0.05, "{}", across / rows);
    }

    #[test]
    fn same_seed_same_sample() {
        for p in [
            Process::Gaussian,
            Process::Ar1 { rho: -0.3 },
            Process::StudentT { df: 1.5 },
            Process::Cauchy,
            Process::Fgn { hurst: 0.3 },
            Process::Planted { strength: 1.0 },
        ] {
            let a = draw(p.clone(), 17, 3, 2, 99);
            assert_eq!(a, draw(p.clone(), 17, 3, 2, 99), "{p}");
            assert_ne!(a, draw(p.clone(), 17, 3, 2, 100), "{p}");
            let mut rng = ChaCha8Rng::seed_from_u64(99);
            let mut one = vec![0.0f32; 17 * 3];
            p.sample(17, 3, &mut rng, &mut one).unwrap();
            let one: Vec<f64> = one.iter().map(|&x| x as f64).collect();
            assert_eq!(one, a[0], "{p}");
        }
    }

    #[test]
    fn validation_and_parsing() {
        for bad in [
            Process::Ar1 { rho: 1.0 },
            Process::Ar1 { rho: f64::NAN },
            Process::StudentT { df: 0.0 },
            Process::StudentT { df: f64::INFINITY },
            Process::Fgn { hurst: 1.0 },
            Process::Fgn { hurst: 0.0 },
            Process::Planted { strength: -0.1 },
            Process::Planted { strength: f64::NAN },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(Sampler::new(bad, 4, 4).is_err());
        }
        for text in [
            "gaussian",
            "ar1:0.5",
            "student-t:1.5",
            "cauchy",
            "fgn:0.7",
            "planted:0.5",
        ] {
            let p: Process = text.parse().unwrap();
            assert_eq!(p.to_string(), text);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Process>(&json).unwrap(), p);
        }
        assert_eq!(
            serde_json::to_string(&Process::Fgn { hurst: 0.7 }).unwrap(),
            r#"{"kind":"fgn","hurst":0.7}"#
        );
        for bad in [
            "",
            "ar1",
            "ar1:x",
            "ar1:2",
            "gaussian:1",
            "brownian",
            "fgn:1.2",
        ] {
            assert!(bad.parse::<Process>().is_err(), "{bad}");
        }
        assert!(Sampler::new(Process::Gaussian, 0, 4).is_err());
        let mut s = Sampler::new(Process::Gaussian, 3, 4).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(s.fill(&mut rng, &mut [0.0; 11]).is_err());
    }
}
