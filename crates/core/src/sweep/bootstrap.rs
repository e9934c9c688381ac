//! The Poisson bootstrap of a sweep's statistics: every replicate of V(n) and of the SNR is
//! built while the samples stream past, so memory never grows with the sample count.
//! Replicate r of every length together is one resample of the whole sweep.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Poisson};

/// The Poisson bootstrap: each sample enters replicate r with a Poisson(1) weight, so
/// replicates are built while streaming and memory never grows with the sample count.
pub struct PoissonBootstrap {
    weight: Vec<f64>,
    /// Distinct samples with a non-zero weight, per replicate.
    distinct: Vec<u64>,
    mean: Vec<Vec<f64>>,
    m2: Vec<Vec<f64>>,
    rng: ChaCha8Rng,
}

impl PoissonBootstrap {
    pub fn new(reps: usize, d: usize, rng: ChaCha8Rng) -> Self {
        Self {
            weight: vec![0.0; reps],
            distinct: vec![0; reps],
            mean: vec![vec![0.0; d]; reps],
            m2: vec![vec![0.0; d]; reps],
            rng,
        }
    }

    pub fn push(&mut self, h: &[f32]) {
        let poisson = Poisson::new(1.0).unwrap();
        for r in 0..self.weight.len() {
            let w: f64 = poisson.sample(&mut self.rng);
            if w == 0.0 {
                continue;
            }
            // Weighted Welford update.
            self.weight[r] += w;
            self.distinct[r] += 1;
            let f = w / self.weight[r];
            for (k, &x) in h.iter().enumerate() {
                let x = x as f64;
                let delta = x - self.mean[r][k];
                self.mean[r][k] += f * delta;
                self.m2[r][k] += w * delta * (x - self.mean[r][k]);
            }
        }
    }

    /// (V, SNR) of each replicate; NaN for a replicate that drew fewer than two distinct
    /// samples (it has no variance). See [`super::config::MIN_SAMPLES`].
    pub fn replicates(&self) -> (Vec<f64>, Vec<f64>) {
        let mut v = Vec::with_capacity(self.weight.len());
        let mut snr = Vec::with_capacity(self.weight.len());
        for r in 0..self.weight.len() {
            if self.distinct[r] < 2 {
                v.push(f64::NAN);
                snr.push(f64::NAN);
                continue;
            }
            let w = self.weight[r];
            let vr = self.m2[r].iter().sum::<f64>() / (w - 1.0);
            let mu2: f64 = self.mean[r].iter().map(|m| m * m).sum();
            v.push(vr);
            snr.push((mu2 - vr / w) / vr);
        }
        (v, snr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A replicate of a single sample, however heavily weighted, has no variance: NaN, not 0.
    #[test]
    fn bootstrap_of_one_sample_gives_nan_replicates() {
        let mut boot = PoissonBootstrap::new(50, 3, ChaCha8Rng::seed_from_u64(1));
        boot.push(&[1.0, 2.0, 3.0]);
        let (v, snr) = boot.replicates();
        assert!(v.iter().chain(&snr).all(|x| x.is_nan()), "{v:?}");
    }

    #[test]
    fn bootstrap_spread_matches_the_variance_of_v() {
        // V of S Gaussian d-vectors has sd ~ V sqrt(2 / (d (S - 1))).
        let (s, d) = (400, 8);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut boot = PoissonBootstrap::new(400, d, ChaCha8Rng::seed_from_u64(4));
        for _ in 0..s {
            let h: Vec<f32> = (0..d).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect();
            boot.push(&h);
        }
        let (v, _) = boot.replicates();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        // Uniform(-1,1): var 1/3 per dim, kurtosis 1.8: sd(V) = sqrt(d * (1.8-1) / S) / 3
        let want = (d as f64 * 0.8 / s as f64).sqrt() / 3.0;
        assert!((mean - d as f64 / 3.0).abs() < 0.1, "mean {mean}");
        assert!((sd / want - 1.0).abs() < 0.2, "sd {sd}, want {want}");
    }
}
