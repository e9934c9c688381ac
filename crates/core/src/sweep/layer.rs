//! The single attention layer of the control presets: its weights, drawn from the sweep
//! seed on the host (the GPU run in `ceiling_host::sweep::run` projects and attends with
//! them), and the bilinear form of its logits that the expected slope of a control needs.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::config::SweepConfig;
use crate::expected::LogitForm;

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
    /// Width of the inputs; the head is d + 1 wide.
    pub d: usize,
    /// Projections [d, d + 1] (row-major, input by head dimension).
    pub wq: Vec<f32>,
    pub wk: Vec<f32>,
    pub wv: Vec<f32>,
    /// Bias of the queries [d + 1]: 1 in the sink dimension, 0 elsewhere.
    pub q_bias: Vec<f32>,
    /// The logit scale, logit gain / sqrt(d).
    pub scale: f64,
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

impl AttentionLayer {
    /// The logits as a bilinear form of the key half of the inputs, logit_j = x_last^T M x_j
    /// with M = scale Wq Wk^T (the sink dimension left out): what `expected_slope` needs.
    pub fn logit_form(&self) -> LogitForm {
        let (d, hd, half) = (self.d, self.d + 1, self.d / 2);
        let m = (0..half * half)
            .map(|ab| {
                let (a, b) = (ab / half, ab % half);
                let dot: f64 = (0..d)
                    .map(|c| self.wq[a * hd + c] as f64 * self.wk[b * hd + c] as f64)
                    .sum();
                self.scale * dot
            })
            .collect();
        LogitForm { dim: half, m }
    }
}
