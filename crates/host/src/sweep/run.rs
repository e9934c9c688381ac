//! Measuring one context length of an attention-only control: inputs drawn on the host,
//! projections, fused attention and the moments across samples on the GPU.

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape};
use ceiling_core::model::{ForwardInput, ModelConfig};
use ceiling_core::process::{Process, Sampler};
use ceiling_core::stats::Moments;
use ceiling_core::sweep::{
    AttentionLayer, LengthResult, PoissonBootstrap, SiteResult, SweepConfig,
};
use ceiling_core::text::TokenizedCorpus;
use ceiling_shaders::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::weighted::WeightedIndex;
use rand_distr::Distribution;

use crate::error::{HostError, Result};
use crate::kernels::{self, AttentionKernel, MatmulKernel, STATS_PER_ROW};
use crate::model::GpuModel;
use crate::{Gpu, Tensor};

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

fn stats_error(e: impl std::fmt::Display) -> HostError {
    HostError::Stats(e.to_string())
}

/// Features kept per length for the planted task's read-out: enough for a stable accuracy,
/// and a fixed bound so memory does not grow with the number of samples.
const READOUT_SAMPLES: usize = 2048;

/// Streams the probe vectors of one site: moments (from GPU partials), bootstrap
/// replicates and, for the planted task, per-class moments and read-out features.
struct SiteAccumulator {
    name: String,
    moments: Moments,
    boot: PoissonBootstrap,
    classes: Option<[Moments; 2]>,
    features: Vec<Vec<f64>>,
    labels: Vec<f64>,
}

impl SiteAccumulator {
    /// `key` picks the bootstrap's stream with the site `index`: the length, or one key
    /// shared by every length measured on the same windows.
    fn new(name: String, d: usize, cfg: &SweepConfig, key: u64, index: usize) -> Self {
        let planted = matches!(cfg.process, Process::Planted { .. });
        let stream = (1 << 40) + ((index as u64) << 32) + key;
        Self {
            name,
            moments: Moments::new(d),
            boot: PoissonBootstrap::new(cfg.bootstrap, d, stream_rng(cfg.seed, stream)),
            classes: planted.then(|| [Moments::new(d), Moments::new(d)]),
            features: Vec::new(),
            labels: Vec::new(),
        }
    }

    /// Adds a batch of probe vectors `rows` [b, d] (already on the GPU as `t`).
    #[maybe_async::maybe_async]
    async fn add(
        &mut self,
        gpu: &Gpu,
        t: &Tensor,
        rows: &[f32],
        d: usize,
        labels: &[f64],
    ) -> Result<()> {
        let b = labels.len();
        let batch = kernels::column_moments(gpu, t, b, d).await?;
        self.moments.merge(&batch).map_err(stats_error)?;
        for (row, &y) in rows.chunks(d).zip(labels) {
            self.boot.push(row);
            if let Some(classes) = &mut self.classes {
                let v: Vec<f64> = row.iter().map(|&x| x as f64).collect();
                classes[(y < 0.0) as usize].push(&v).map_err(stats_error)?;
                if self.features.len() < READOUT_SAMPLES {
                    self.features.push(v);
                    self.labels.push(y);
                }
            }
        }
        Ok(())
    }

    fn finish(&self, seed: u64) -> Result<SiteResult> {
        let mut r = site_result(&self.name, &self.moments, &self.boot)?;
        if let Some([pos, neg]) = &self.classes {
            r.fisher_snr = ceiling_core::stats::fisher_snr(pos, neg).ok();
            r.readout_accuracy =
                ceiling_core::stats::linear_readout_accuracy(&self.features, &self.labels, seed)
                    .ok();
        }
        Ok(r)
    }
}

/// Attention spread at the probe row, summed over samples (and heads).
#[derive(Default)]
struct Spread {
    count: f64,
    n_eff: f64,
    n_eff_sq: f64,
    inv_n_eff: f64,
    entropy: f64,
}

impl Spread {
    fn add(&mut self, n_eff: f64, entropy: f64) {
        self.count += 1.0;
        self.n_eff += n_eff;
        self.n_eff_sq += n_eff * n_eff;
        self.inv_n_eff += 1.0 / n_eff;
        self.entropy += entropy;
    }

    fn mean(&self) -> f64 {
        self.n_eff / self.count
    }

    fn harmonic(&self) -> f64 {
        self.count / self.inv_n_eff
    }

    fn se(&self) -> f64 {
        let m = self.mean();
        let var = (self.n_eff_sq / self.count - m * m).max(0.0) * self.count / (self.count - 1.0);
        (var / self.count).sqrt()
    }
}

/// Draws the inputs of `b` samples at length n: [b, n, d] and their labels (planted task).
fn draw_inputs(
    sampler: &mut Sampler,
    rng: &mut ChaCha8Rng,
    b: usize,
    n: usize,
    d: usize,
) -> Result<(Vec<f32>, Vec<f64>)> {
    let mut x = vec![0.0f32; b * n * d];
    let mut labels = Vec::with_capacity(b);
    for s in 0..b {
        labels.push(
            sampler
                .fill(rng, &mut x[s * n * d..][..n * d])
                .map_err(stats_error)?,
        );
    }
    Ok((x, labels))
}

/// Runs one context length of an attention-only control and returns its result.
#[maybe_async::maybe_async]
pub async fn measure_length(
    gpu: &Gpu,
    cfg: &SweepConfig,
    layer: &AttentionLayer,
    n: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<LengthResult> {
    let start = web_time::Instant::now();
    let precision = cfg.precision;
    let (d, hd) = (layer.d, layer.d + 1);
    let mut sampler = Sampler::new(cfg.process.clone(), n, d).map_err(stats_error)?;
    let mut rng = stream_rng(cfg.seed, n as u64);
    let mut site = SiteAccumulator::new("attn".into(), d, cfg, n as u64, 0);
    let mut spread = Spread::default();
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
        let (x, labels) = draw_inputs(&mut sampler, &mut rng, b, n, d)?;
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
                MatmulKernel::Auto,
            )
            .map(|_| ())
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
        // The extra (sink) dimension of the values is zero: keep the first d.
        let h: Vec<f32> = gpu
            .download(&out)
            .await?
            .chunks(hd)
            .flat_map(|r| r[..d].to_vec())
            .collect();
        site.add(gpu, &up("h", &h)?, &h, d, &labels).await?;
        for st in gpu.download(&stats).await?.chunks(STATS_PER_ROW) {
            spread.add(st[1] as f64, st[2] as f64);
        }
        done += b;
        progress(done);
    }
    Ok(LengthResult {
        n,
        samples: cfg.samples,
        sites: vec![site.finish(cfg.seed ^ n as u64)?],
        n_eff_mean: spread.mean(),
        n_eff_se: spread.se(),
        n_eff_harmonic: spread.harmonic(),
        entropy_mean: spread.entropy / spread.count,
        n_eff_layers: Vec::new(),
        n_eff_heads: Vec::new(),
        entropy_heads: Vec::new(),
        seconds: start.elapsed().as_secs_f64(),
        kernels: Default::default(),
        prefix_of: None,
    })
}

/// The stream of the windows that a prefix sweep cuts once for all its lengths (see
/// [`measures_prefixes`]); per-length sweeps use the stream of the length.
const PREFIX_STREAM: u64 = 1 << 48;

/// Whether one forward per window measures every length at once: a causal model reading
/// tokens, probed at the last context token (`--probe last`). The state at position n - 1 of
/// a window is then that of its n-token prefix, so the windows of the longest length give
/// every shorter one as well (the same windows at every n: paired samples).
pub fn measures_prefixes(mc: &ModelConfig, suffix: &[u32]) -> bool {
    mc.causal && mc.vocab > 0 && suffix.is_empty()
}

/// How the windows of a model sweep are cut: of one length each (`window` = that length), or
/// once for every length as prefixes of `window` tokens (see [`measures_prefixes`]).
pub struct Windows {
    pub window: usize,
    stream: u64,
}

impl Windows {
    /// Windows of exactly n tokens, from the stream of n.
    pub fn of_length(n: usize) -> Self {
        Self {
            window: n,
            stream: n as u64,
        }
    }

    /// Windows of `window` tokens whose prefixes give every length up to it. The draws do
    /// not depend on which lengths are still to measure, so a resumed or sharded sweep
    /// measures each length on the windows an uninterrupted one would.
    pub fn prefixes_of(window: usize) -> Self {
        Self {
            window,
            stream: PREFIX_STREAM,
        }
    }

    fn are_prefixes(&self) -> bool {
        self.stream == PREFIX_STREAM
    }
}

/// Runs a whole model over `lengths` and returns one result per length: every chosen layer's
/// hidden state and attention output at the probe position are the sites. With `suffix`
/// empty (`--probe last`) that is the last of the n context tokens; otherwise the suffix's
/// ids follow the n context tokens of every sample (token models only) and the probe is the
/// suffix's last token, at n + s - 1. Each result is reported at its context length n.
///
/// Several lengths are measured together only on prefixes of `windows` (causal token models,
/// `--probe last`): one forward of the longest pending length per batch, probed at every
/// n - 1. Every length then sees the same windows, and the bootstrap gives a window the same
/// Poisson weight at every length, so a replicate resamples windows, not points.
#[allow(clippy::too_many_arguments)]
#[maybe_async::maybe_async]
pub async fn measure_lengths_model(
    gpu: &Gpu,
    cfg: &SweepConfig,
    model: &GpuModel,
    layers: &[usize],
    corpus: Option<&TokenizedCorpus>,
    suffix: &[u32],
    lengths: &[usize],
    windows: &Windows,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<LengthResult>> {
    let start = web_time::Instant::now();
    let mc = model.config().clone();
    let d = mc.d_model;
    let prefixes = windows.are_prefixes();
    if prefixes && !measures_prefixes(&mc, suffix) {
        return Err(HostError::Config(
            "several lengths from one window need a causal token model probed at its last \
             token"
                .into(),
        ));
    }
    if !suffix.is_empty() && mc.vocab == 0 {
        return Err(HostError::Config(
            "a suffix probe needs a token model: this model reads vectors".into(),
        ));
    }
    let longest = lengths.iter().copied().max().unwrap_or(0);
    if longest == 0 || longest > windows.window || (!prefixes && lengths.len() > 1) {
        return Err(HostError::Config(format!(
            "lengths {lengths:?} do not fit windows of {} tokens",
            windows.window
        )));
    }
    let mut rng = stream_rng(cfg.seed, windows.stream);
    // One accumulator per length and site ([length][site]); per length and layer the spread
    // of attention, and per length, layer and head that of each head's probe row.
    let mut sites: Vec<Vec<SiteAccumulator>> = lengths
        .iter()
        .map(|_| {
            layers
                .iter()
                .flat_map(|&l| [format!("L{l}.attn"), format!("L{l}.hidden")])
                .enumerate()
                .map(|(i, name)| SiteAccumulator::new(name, d, cfg, windows.stream, i))
                .collect()
        })
        .collect();
    let mut spread: Vec<Vec<Spread>> = lengths
        .iter()
        .map(|_| layers.iter().map(|_| Spread::default()).collect())
        .collect();
    let mut heads: Vec<Vec<Vec<Spread>>> = lengths
        .iter()
        .map(|_| {
            layers
                .iter()
                .map(|_| (0..mc.heads).map(|_| Spread::default()).collect())
                .collect()
        })
        .collect();
    // The forward length: the longest context, then the suffix; the probes, one per length.
    let len = longest + suffix.len();
    let probes: Vec<usize> = lengths.iter().map(|&n| n + suffix.len() - 1).collect();
    let np = probes.len();
    let unigram = match &cfg.unigram {
        Some(w) => Some(WeightedIndex::new(w).map_err(stats_error)?),
        None => None,
    };
    let (w, mut sampler) = (windows.window, None);
    let mut done = 0;
    while done < cfg.samples {
        // Sized from the window, not the forward: the draws must not depend on the lengths.
        let b = model_batch_size(w + suffix.len(), &mc).min(cfg.samples - done);
        let (states, labels) = if mc.vocab > 0 {
            // Windows of real text, or random ids: uniform, or from the unigram.
            let drawn: Vec<u32> = match (corpus, &unigram) {
                (Some(c), _) => c
                    .windows(w, b, rng.random())
                    .map_err(|e| HostError::Config(e.to_string()))?,
                (None, Some(dist)) => (0..b * w).map(|_| dist.sample(&mut rng) as u32).collect(),
                (None, None) => (0..b * w)
                    .map(|_| rng.random_range(0..mc.vocab as u32))
                    .collect(),
            };
            let ids: Vec<u32> = drawn
                .chunks(w)
                .flat_map(|win| win[..longest].iter().chain(suffix).copied())
                .collect();
            let input = ForwardInput::Tokens {
                ids: &ids,
                batch: b,
                n: len,
            };
            (model.forward(gpu, &input, &probes).await?, vec![0.0; b])
        } else {
            let sampler = match &mut sampler {
                Some(s) => s,
                None => {
                    sampler.insert(Sampler::new(cfg.process.clone(), w, d).map_err(stats_error)?)
                }
            };
            let (x, labels) = draw_inputs(sampler, &mut rng, b, w, d)?;
            let input = ForwardInput::Vectors {
                x: &x,
                batch: b,
                n: w,
            };
            (model.forward(gpu, &input, &probes).await?, labels)
        };
        // Probe rows are [batch, probes, d]; spreads [batch, heads, probes].
        let at = |all: &[f32], p: usize| -> Vec<f32> {
            all.chunks(np * d)
                .flat_map(|s| s[p * d..][..d].to_vec())
                .collect()
        };
        for p in 0..np {
            for (k, &l) in layers.iter().enumerate() {
                for (j, all) in [&states.attn_out[l], &states.hidden[l]]
                    .into_iter()
                    .enumerate()
                {
                    let rows = at(all, p);
                    let t = gpu.upload("probe rows", &rows, Precision::F32)?;
                    sites[p][2 * k + j].add(gpu, &t, &rows, d, &labels).await?;
                }
                let spreads = states.n_eff[l].iter().zip(&states.entropy[l]);
                for (i, (ne, en)) in spreads.enumerate().filter(|(i, _)| i % np == p) {
                    spread[p][k].add(*ne as f64, *en as f64);
                    heads[p][k][(i / np) % mc.heads].add(*ne as f64, *en as f64);
                }
            }
        }
        done += b;
        progress(done);
    }
    let seconds = start.elapsed().as_secs_f64();
    lengths
        .iter()
        .enumerate()
        .map(|(p, &n)| {
            let first = &spread[p][0];
            Ok(LengthResult {
                n,
                samples: cfg.samples,
                sites: sites[p]
                    .iter()
                    .map(|s| s.finish(cfg.seed ^ n as u64))
                    .collect::<Result<_>>()?,
                n_eff_mean: first.mean(),
                n_eff_se: first.se(),
                n_eff_harmonic: first.harmonic(),
                entropy_mean: first.entropy / first.count,
                n_eff_layers: spread[p].iter().map(Spread::mean).collect(),
                n_eff_heads: heads[p]
                    .iter()
                    .map(|hs| hs.iter().map(Spread::mean).collect())
                    .collect(),
                entropy_heads: heads[p]
                    .iter()
                    .map(|hs| hs.iter().map(|h| h.entropy / h.count).collect())
                    .collect(),
                seconds,
                kernels: Default::default(),
                prefix_of: prefixes.then_some(w),
            })
        })
        .collect()
}

/// Samples per forward batch: about 2^20 activations of width d_model per batch.
fn model_batch_size(n: usize, mc: &ModelConfig) -> usize {
    ((1 << 20) / (n * mc.d_model.max(mc.ff_dim / 4)).max(1)).clamp(1, 256)
}

/// Summarises the moments of one site, with its bootstrap replicates.
pub fn site_result(site: &str, m: &Moments, boot: &PoissonBootstrap) -> Result<SiteResult> {
    let v = m.trace_variance();
    let snr = ceiling_core::stats::snr(m).map_err(|e| HostError::Stats(format!("{site}: {e}")))?;
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
        fisher_snr: None,
        readout_accuracy: None,
    })
}
