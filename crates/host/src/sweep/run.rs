//! Measuring one context length of an attention-only control: inputs drawn on the host,
//! projections, fused attention and the moments across samples on the GPU.

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape};
use ceiling_core::process::Sampler;
use ceiling_core::stats::Moments;
use ceiling_shaders::Precision;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Poisson};
use serde::{Deserialize, Serialize};

use super::config::SweepConfig;
use crate::error::{HostError, Result};
use crate::kernels::{self, AttentionKernel, MatmulTiles, STATS_PER_ROW};
use crate::Gpu;

/// What one context length gave, for one site (a place in the network that is probed).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SiteResult {
    pub site: String,
    /// Trace of the covariance across samples (unbiased): the noise V(n).
    pub variance: f64,
    /// V(n) / d.
    pub variance_per_dim: f64,
    /// Poisson-bootstrap replicates of V(n), in replicate order (replicate r of every
    /// length together is one resample of the whole sweep).
    pub variance_boot: Vec<f64>,
    pub mean_norm_sq: f64,
    /// (||mu||^2 - V/S) / V.
    pub snr: f64,
    pub snr_per_dim: f64,
    pub snr_boot: Vec<f64>,
}

/// Everything measured at one context length.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LengthResult {
    pub n: usize,
    pub samples: usize,
    pub sites: Vec<SiteResult>,
    /// Attention spread at the probe row, averaged over samples (and heads).
    pub n_eff_mean: f64,
    pub n_eff_se: f64,
    pub entropy_mean: f64,
    pub seconds: f64,
}

/// Weights of the single attention layer of the controls, drawn from the sweep seed.
///
/// Queries and keys read the first half of the input dimensions and values the second
/// half, so the values are independent of the attention weights: then
/// E||h - E h||^2 = tr Cov(v) E[1 / n_eff] exactly, the law the controls test. (When values
/// and keys share inputs, the softmax tilts the values towards the query and a floor
/// appears: the `model` preset measures that case.)
///
/// Head width is d + 1: the extra dimension carries the sink logit (query 1, first key
/// logit / scale, values 0) and is zero otherwise.
pub struct AttentionLayer {
    d: usize,
    wq: Vec<f32>,
    wk: Vec<f32>,
    wv: Vec<f32>,
    q_bias: Vec<f32>,
    scale: f64,
}

impl AttentionLayer {
    pub fn new(cfg: &SweepConfig) -> Self {
        let d = cfg.d_model;
        let hd = d + 1;
        let half = d / 2;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        // Unit-variance projections, so q.k / sqrt(d) has unit variance: O(1) logits.
        let normal = Normal::new(0.0, 1.0 / (half as f64).sqrt()).unwrap();
        let mut draw = |rows: std::ops::Range<usize>| -> Vec<f32> {
            (0..d * hd)
                .map(|i| {
                    if i % hd == d || !rows.contains(&(i / hd)) {
                        0.0
                    } else {
                        normal.sample(&mut rng) as f32
                    }
                })
                .collect()
        };
        let (wq, wk, wv) = (draw(0..half), draw(0..half), draw(half..d));
        let mut q_bias = vec![0.0; hd];
        q_bias[d] = 1.0;
        Self {
            d,
            wq,
            wk,
            wv,
            q_bias,
            scale: cfg.logit_gain / (d as f64).sqrt(),
        }
    }
}

/// The logit added to the first key so that it takes about `mass` of the attention.
fn sink_logit(mass: f64, n: usize) -> f64 {
    (mass / (1.0 - mass)).ln() + ((n.max(2) - 1) as f64).ln()
}

/// A deterministic generator for (seed, stream): one stream per length and purpose, so a
/// resumed sweep draws exactly what an uninterrupted one would.
fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Samples per GPU batch: bounded so that one batch of inputs stays near 16 MiB.
pub fn batch_size(n: usize, d: usize, samples: usize) -> usize {
    ((4 << 20) / (n * (d + 1)).max(1)).clamp(1, samples.clamp(1, 1024))
}

/// Runs one context length and returns its result.
pub fn measure_length(
    gpu: &Gpu,
    cfg: &SweepConfig,
    layer: &AttentionLayer,
    n: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<LengthResult> {
    let start = std::time::Instant::now();
    let precision = if cfg.precision == "f16" {
        Precision::F16
    } else {
        Precision::F32
    };
    let (d, hd) = (layer.d, layer.d + 1);
    let mut sampler =
        Sampler::new(cfg.process.clone(), n, d).map_err(|e| HostError::Gpu(e.to_string()))?;
    let mut rng = stream_rng(cfg.seed, n as u64);
    let mut boot =
        PoissonBootstrap::new(cfg.bootstrap, d, stream_rng(cfg.seed, (1 << 40) + n as u64));
    let mut moments = Moments::new(d);
    let (mut neff_sum, mut neff_sq, mut ent_sum) = (0.0, 0.0, 0.0);
    let up = |what, v: &[f32]| gpu.upload(what, v, precision);
    let (wq, wk, wv, qb) = (
        up("wq", &layer.wq)?,
        up("wk", &layer.wk)?,
        up("wv", &layer.wv)?,
        up("q_bias", &layer.q_bias)?,
    );
    let mut done = 0;
    while done < cfg.samples {
        let b = batch_size(n, d, cfg.samples).min(cfg.samples - done);
        let mut x = vec![0.0f32; b * n * d];
        for s in 0..b {
            sampler
                .fill(&mut rng, &mut x[s * n * d..][..n * d])
                .map_err(|e| HostError::Gpu(e.to_string()))?;
        }
        let last: Vec<f32> = (0..b)
            .flat_map(|s| x[(s * n + n - 1) * d..][..d].to_vec())
            .collect();
        let tx = up("x", &x)?;
        let tlast = up("x_last", &last)?;
        let k = gpu.nan_tensor("k", b * n * hd, precision)?;
        let v = gpu.nan_tensor("v", b * n * hd, precision)?;
        let q = gpu.nan_tensor("q", b * hd, precision)?;
        let sink = if cfg.sink_mass > 0.0 {
            let mut r = vec![0.0f32; b * n * hd];
            for s in 0..b {
                r[s * n * hd + d] = (sink_logit(cfg.sink_mass, n) / layer.scale) as f32;
            }
            Some(up("sink", &r)?)
        } else {
            None
        };
        let proj = |input, rows, w, bias, residual, out| {
            kernels::matmul(
                gpu,
                &MatmulShape::new(rows, d, hd),
                input,
                w,
                bias,
                residual,
                Activation::None,
                out,
                MatmulTiles::default(),
            )
        };
        proj(&tx, b * n, &wk, None, sink.as_ref(), &k)?;
        proj(&tx, b * n, &wv, None, None, &v)?;
        proj(&tlast, b, &wq, Some(&qb), None, &q)?;
        let mut shape = AttentionShape::new(b, 1, 1, hd);
        shape.n_kv = n;
        shape.scale = layer.scale;
        let out = gpu.nan_tensor("h", b * hd, precision)?;
        let stats = gpu.nan_tensor("stats", b * STATS_PER_ROW, Precision::F32)?;
        kernels::attention(
            gpu,
            &shape,
            &q,
            &k,
            &v,
            None,
            &out,
            Some(&stats),
            AttentionKernel::Auto,
        )?;
        let batch = kernels::column_moments(gpu, &out, b, hd)?;
        moments
            .merge(&truncate(&batch, d))
            .map_err(|e| HostError::Gpu(e.to_string()))?;
        let h = gpu.download(&out)?;
        for row in h.chunks(hd) {
            boot.push(&row[..d]);
        }
        for st in gpu.download(&stats)?.chunks(STATS_PER_ROW) {
            let ne = st[1] as f64;
            neff_sum += ne;
            neff_sq += ne * ne;
            ent_sum += st[2] as f64;
        }
        done += b;
        progress(done);
    }
    let s = cfg.samples as f64;
    let neff_mean = neff_sum / s;
    let neff_var = (neff_sq / s - neff_mean * neff_mean).max(0.0) * s / (s - 1.0);
    let site = site_result("attn", &moments, &boot)?;
    Ok(LengthResult {
        n,
        samples: cfg.samples,
        sites: vec![site],
        n_eff_mean: neff_mean,
        n_eff_se: (neff_var / s).sqrt(),
        entropy_mean: ent_sum / s,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn truncate(m: &Moments, d: usize) -> Moments {
    Moments {
        count: m.count,
        mean: m.mean[..d].to_vec(),
        m2: m.m2[..d].to_vec(),
    }
}

/// Summarises the moments of one site, with its bootstrap replicates.
pub fn site_result(site: &str, m: &Moments, boot: &PoissonBootstrap) -> Result<SiteResult> {
    let v = m.trace_variance();
    let snr = ceiling_core::stats::snr(m).map_err(|e| HostError::Gpu(format!("{site}: {e}")))?;
    let (variance_boot, snr_boot) = boot.replicates();
    Ok(SiteResult {
        site: site.to_string(),
        variance: v,
        variance_per_dim: v / m.dim() as f64,
        variance_boot,
        mean_norm_sq: m.mean_norm_sq(),
        snr: snr.trace,
        snr_per_dim: snr.per_dim,
        snr_boot,
    })
}

/// The Poisson bootstrap: each sample enters replicate r with a Poisson(1) weight, so
/// replicates are built while streaming and memory never grows with the sample count.
pub struct PoissonBootstrap {
    weight: Vec<f64>,
    mean: Vec<Vec<f64>>,
    m2: Vec<Vec<f64>>,
    rng: ChaCha8Rng,
}

impl PoissonBootstrap {
    pub fn new(reps: usize, d: usize, rng: ChaCha8Rng) -> Self {
        Self {
            weight: vec![0.0; reps],
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
            let f = w / self.weight[r];
            for (k, &x) in h.iter().enumerate() {
                let x = x as f64;
                let delta = x - self.mean[r][k];
                self.mean[r][k] += f * delta;
                self.m2[r][k] += w * delta * (x - self.mean[r][k]);
            }
        }
    }

    /// (V, SNR) of each replicate.
    pub fn replicates(&self) -> (Vec<f64>, Vec<f64>) {
        let mut v = Vec::with_capacity(self.weight.len());
        let mut snr = Vec::with_capacity(self.weight.len());
        for r in 0..self.weight.len() {
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
    use rand::Rng;

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
