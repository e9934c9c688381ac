//! What a control should show on the sweep's own grid: the slope of ln E[V] against ln n,
//! computed in f64 from the control's set-up rather than assumed from the large-n limit.
//!
//! In the controls the values read other input dimensions than the queries and keys, so for
//! the probe output h = sum_j w_j v_j (w the softmax weights of the last row)
//!   E||h - E h||^2 = tr Cov(v_0) E[sum_jl w_j w_l R(j - l)],
//! with R the autocorrelation of the input process along positions (R(k) = [k = 0] for
//! i.i.d. inputs, rho^k for AR(1), the fGn autocovariance for long-range dependence). Only
//! the expectation over the weights is left, and it is taken by Monte Carlo over the key
//! dimensions of the inputs. At finite n the weights are not uniform and n_eff / n drifts,
//! so for n = 16..2048 clt's expected slope is about -0.995 rather than -1, AR(1)'s about
//! -0.975 and fGn (H = 0.7) about -0.61.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::fit::loglog_line_weighted;
use crate::process::{fgn_autocovariance, Fft, Process, Sampler};
use crate::stats::StatsError;

/// Monte Carlo draws of the key inputs at length n: w^T R w scatters most between draws at
/// short n, where a draw is cheap, so the budget is about 2^19 key positions per length
/// (32768 draws at n = 16, 512 from n = 1024). The slopes then move by about 0.001 between
/// seeds of the Monte Carlo.
pub fn draws(n: usize) -> usize {
    ((1usize << 19) / n.max(1)).clamp(512, 32768)
}

/// The bilinear form of the controls' logits: logit_j = x_last^T M x_j over the `dim` key
/// dimensions of the inputs (M = scale Wq Wk^T, row-major `dim` x `dim`).
#[derive(Clone, Debug)]
pub struct LogitForm {
    pub dim: usize,
    pub m: Vec<f64>,
}

/// R(k) of the process, or None when the values have no finite second moment (Student-t with
/// df <= 2, Cauchy) or carry a signal (planted): then there is no slope to expect.
fn autocorrelation(process: &Process, n: usize) -> Option<Vec<f64>> {
    match *process {
        Process::Gaussian => Some((0..n).map(|k| if k == 0 { 1.0 } else { 0.0 }).collect()),
        Process::Ar1 { rho } => Some((0..n).map(|k| rho.powi(k as i32)).collect()),
        Process::Fgn { hurst } => Some((0..n).map(|k| fgn_autocovariance(k, hurst)).collect()),
        Process::StudentT { df } if df > 2.0 => {
            Some((0..n).map(|k| if k == 0 { 1.0 } else { 0.0 }).collect())
        }
        _ => None,
    }
}

/// sum_jl w_j w_l R(|j - l|), with the autocorrelation of w by FFT (O(n log n)).
fn quadratic_form(fft: &Fft, w: &[f64], r: &[f64], re: &mut [f64], im: &mut [f64]) -> f64 {
    re.fill(0.0);
    im.fill(0.0);
    re[..w.len()].copy_from_slice(w);
    fft.transform(re, im);
    for (a, b) in re.iter_mut().zip(im.iter_mut()) {
        *a = *a * *a + *b * *b;
        *b = 0.0;
    }
    // |W|^2 is real and even, so its forward transform is size x the autocorrelation.
    fft.transform(re, im);
    let size = re.len() as f64;
    r.iter()
        .enumerate()
        .map(|(k, rk)| rk * re[k] / size * if k == 0 { 1.0 } else { 2.0 })
        .sum()
}

/// E[w^T R w] at length n, over `draws` draws of the key inputs from `seed`. None when the
/// process has no autocorrelation to use (see `autocorrelation`).
pub fn mean_weight_form(
    process: &Process,
    form: &LogitForm,
    n: usize,
    draws: usize,
    seed: u64,
) -> Result<Option<f64>, StatsError> {
    let Some(r) = autocorrelation(process, n) else {
        return Ok(None);
    };
    let d = form.dim;
    if form.m.len() != d * d || d == 0 {
        return Err(StatsError::DimensionMismatch {
            what: "LogitForm (dim x dim)",
            expected: d * d,
            got: form.m.len(),
        });
    }
    let mut sampler = Sampler::new(process.clone(), n, d)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size = (2 * n).next_power_of_two().max(2);
    let fft = Fft::new(size);
    let (mut re, mut im) = (vec![0.0; size], vec![0.0; size]);
    let mut x = vec![0f32; n * d];
    let (mut g, mut w) = (vec![0.0; d], vec![0.0; n]);
    let mut sum = 0.0;
    for _ in 0..draws {
        sampler.fill(&mut rng, &mut x)?;
        let last = &x[(n - 1) * d..];
        for (b, gb) in g.iter_mut().enumerate() {
            *gb = (0..d).map(|a| last[a] as f64 * form.m[a * d + b]).sum();
        }
        for (j, wj) in w.iter_mut().enumerate() {
            *wj = x[j * d..][..d]
                .iter()
                .zip(&g)
                .map(|(&x, g)| x as f64 * g)
                .sum();
        }
        let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for wj in w.iter_mut() {
            *wj = (*wj - max).exp();
            total += *wj;
        }
        w.iter_mut().for_each(|wj| *wj /= total);
        sum += quadratic_form(&fft, &w, &r, &mut re, &mut im);
    }
    Ok(Some(sum / draws as f64))
}

/// The slope of ln E[V] against ln n on `lengths`, fitted with `weights` (those of the
/// measured slope, so that both are the same estimator). None when the process has no finite
/// variance or carries a signal.
pub fn expected_slope(
    process: &Process,
    form: &LogitForm,
    lengths: &[usize],
    weights: &[f64],
    seed: u64,
) -> Result<Option<f64>, StatsError> {
    let mut points = Vec::with_capacity(lengths.len());
    for (i, &n) in lengths.iter().enumerate() {
        match mean_weight_form(process, form, n, draws(n), seed ^ ((i as u64) << 32))? {
            Some(v) => points.push((n as f64, v)),
            None => return Ok(None),
        }
    }
    Ok(Some(loglog_line_weighted(&points, weights)?.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform weights (M = 0): w^T R w is the mean of R over all pairs, known in closed form.
    #[test]
    fn uniform_weights_give_the_mean_autocorrelation() {
        let form = LogitForm {
            dim: 2,
            m: vec![0.0; 4],
        };
        let n = 37;
        let iid = mean_weight_form(&Process::Gaussian, &form, n, 2, 1)
            .unwrap()
            .unwrap();
        assert!((iid - 1.0 / n as f64).abs() < 1e-12, "{iid}");
        let rho: f64 = 0.5;
        let ar1 = mean_weight_form(&Process::Ar1 { rho }, &form, n, 2, 1)
            .unwrap()
            .unwrap();
        let exact: f64 = (0..n)
            .flat_map(|j| (0..n).map(move |l| rho.powi((j as i32 - l as i32).abs())))
            .sum::<f64>()
            / (n * n) as f64;
        assert!((ar1 - exact).abs() < 1e-12, "{ar1} vs {exact}");
        let none = mean_weight_form(&Process::Cauchy, &form, n, 2, 1).unwrap();
        assert!(none.is_none());
    }

    /// With uniform weights the expected slopes are the textbook ones at large n: -1 for
    /// i.i.d. and AR(1) (whose O(1/n) correction makes it a little shallower on a short grid),
    /// 2H - 2 for fGn.
    #[test]
    fn uniform_weights_give_the_textbook_slopes() {
        let form = LogitForm {
            dim: 1,
            m: vec![0.0],
        };
        let lengths = [256, 512, 1024, 2048];
        let w = [1.0; 4];
        let slope = |p: Process| expected_slope(&p, &form, &lengths, &w, 3).unwrap().unwrap();
        assert!((slope(Process::Gaussian) + 1.0).abs() < 1e-9);
        let ar1 = slope(Process::Ar1 { rho: 0.5 });
        assert!(ar1 > -1.0 && ar1 < -0.99, "{ar1}");
        let fgn = slope(Process::Fgn { hurst: 0.7 });
        assert!((fgn + 0.6).abs() < 0.01, "{fgn}");
    }

    /// The FFT form of w^T R w against the direct O(n^2) sum, for uneven weights.
    #[test]
    fn fft_quadratic_form_matches_the_direct_sum() {
        let n = 50;
        let fft = Fft::new(128);
        let (mut re, mut im) = (vec![0.0; 128], vec![0.0; 128]);
        let w: Vec<f64> = (0..n)
            .map(|j| ((j * 7 % 11) as f64 + 1.0) / 300.0)
            .collect();
        let r: Vec<f64> = (0..n).map(|k| fgn_autocovariance(k, 0.8)).collect();
        let direct: f64 = (0..n)
            .flat_map(|j| (0..n).map(move |l| (j, l)))
            .map(|(j, l)| w[j] * w[l] * r[j.abs_diff(l)])
            .sum();
        let fast = quadratic_form(&fft, &w, &r, &mut re, &mut im);
        assert!(
            (fast - direct).abs() < 1e-12 * direct.abs(),
            "{fast} {direct}"
        );
    }
}
