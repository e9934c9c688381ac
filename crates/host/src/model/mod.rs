//! The transformer forward pass on the GPU, composed from the kernels. Mirrors
//! `ceiling_core::model::reference::forward` step by step, so a difference between the two
//! points at one kernel.

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape, ShapeError};
use ceiling_core::model::{
    FfnActivation, ForwardInput, Layout, Linear, LmHead, ModelError, ModelWeights, Norm, NormKind,
    Position, ProbeStates,
};
use ceiling_shaders::Precision;

use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::kernels::elementwise::{self, EmbedSource, Indices};
use crate::kernels::{self, AttentionKernel, MatmulKernel, STATS_PER_ROW};
use crate::tensor::Tensor;

fn model_error(e: ModelError) -> HostError {
    HostError::Shape(ShapeError::Invalid(e.to_string()))
}

struct GpuLinear {
    weight: Tensor,
    bias: Option<Tensor>,
    out_dim: usize,
    in_dim: usize,
}

struct GpuNorm {
    gamma: Tensor,
    beta: Option<Tensor>,
}

struct GpuLayer {
    attn_norm: GpuNorm,
    q: GpuLinear,
    k: GpuLinear,
    v: GpuLinear,
    o: GpuLinear,
    ffn_norm: GpuNorm,
    up: GpuLinear,
    gate: Option<GpuLinear>,
    down: GpuLinear,
}

/// The matmul and attention kernels a model's forward pass asks for (Auto by default;
/// the benches also run the pre-vec4 kernels through this, for a before/after in one run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelKernels {
    pub matmul: MatmulKernel,
    pub attention: AttentionKernel,
}

/// A model's weights on the GPU at one storage precision.
pub struct GpuModel {
    config: ceiling_core::model::ModelConfig,
    precision: Precision,
    pub kernels: ModelKernels,
    token_embedding: Option<Tensor>,
    position_embedding: Option<Tensor>,
    embed_norm: Option<GpuNorm>,
    layers: Vec<GpuLayer>,
    final_norm: Option<GpuNorm>,
    /// The output embedding when it is not the token embedding; see `has_lm_head`.
    lm_head: Option<Tensor>,
    tied_lm_head: bool,
}

/// Scratch tensors of one forward call (one batch).
struct Scratch {
    x: Tensor,
    y: Tensor,
    a: Tensor,
    qp: Tensor,
    kp: Tensor,
    vp: Tensor,
    qh: Tensor,
    kh: Tensor,
    vh: Tensor,
    att: Tensor,
    merged: Tensor,
    o: Tensor,
    g: Tensor,
    u: Option<Tensor>,
    gu: Option<Tensor>,
    stats: Tensor,
}

impl GpuModel {
    /// Validates and uploads the weights, stored at `precision`.
    pub fn new(gpu: &Gpu, weights: &ModelWeights, precision: Precision) -> Result<Self> {
        weights.validate().map_err(model_error)?;
        gpu.require_precision(precision)?;
        let up = |what: &str, t: &[f32]| gpu.upload(what, t, precision);
        let lin = |what: &str, l: &Linear| -> Result<GpuLinear> {
            Ok(GpuLinear {
                weight: up(what, &l.weight)?,
                bias: l.bias.as_deref().map(|b| up(what, b)).transpose()?,
                out_dim: l.out_dim,
                in_dim: l.in_dim,
            })
        };
        let norm = |what: &str, n: &Norm| -> Result<GpuNorm> {
            Ok(GpuNorm {
                gamma: up(what, &n.gamma)?,
                beta: n.beta.as_deref().map(|b| up(what, b)).transpose()?,
            })
        };
        let layers = weights
            .layers
            .iter()
            .map(|l| {
                Ok(GpuLayer {
                    attn_norm: norm("attn_norm", &l.attn_norm)?,
                    q: lin("q", &l.q)?,
                    k: lin("k", &l.k)?,
                    v: lin("v", &l.v)?,
                    o: lin("o", &l.o)?,
                    ffn_norm: norm("ffn_norm", &l.ffn_norm)?,
                    up: lin("up", &l.up)?,
                    gate: l.gate.as_ref().map(|g| lin("gate", g)).transpose()?,
                    down: lin("down", &l.down)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            config: weights.config.clone(),
            precision,
            kernels: ModelKernels::default(),
            token_embedding: weights
                .token_embedding
                .as_deref()
                .map(|t| up("token_embedding", t))
                .transpose()?,
            position_embedding: weights
                .position_embedding
                .as_deref()
                .map(|t| up("position_embedding", t))
                .transpose()?,
            embed_norm: weights
                .embed_norm
                .as_ref()
                .map(|n| norm("embed_norm", n))
                .transpose()?,
            layers,
            final_norm: weights
                .final_norm
                .as_ref()
                .map(|n| norm("final_norm", n))
                .transpose()?,
            lm_head: match &weights.lm_head {
                LmHead::Separate(e) => Some(up("lm_head", e)?),
                _ => None,
            },
            tied_lm_head: weights.lm_head == LmHead::Tied,
        })
    }

    /// The output embedding [vocab, d] on the GPU, if the model has a language-model head.
    fn output_embedding(&self) -> Option<&Tensor> {
        match (&self.lm_head, self.tied_lm_head) {
            (Some(e), _) => Some(e),
            (None, true) => self.token_embedding.as_ref(),
            (None, false) => None,
        }
    }

    /// Next-token scores of token windows `ids` [batch, n]: for each window and position
    /// t < n - 1, (lse, nll of ids[t + 1], entropy, top1) from the final state at t, as
    /// [batch, n - 1, 4] (see `kernels::lm_head`). The logits are never stored.
    #[maybe_async::maybe_async]
    pub async fn next_token_loss(
        &self,
        gpu: &Gpu,
        ids: &[u32],
        batch: usize,
        n: usize,
    ) -> Result<(Vec<f32>, kernels::LmHeadPlan)> {
        let head = self.output_embedding().ok_or_else(|| {
            model_error(ModelError::Missing(
                "an output embedding (this model has no language-model head)".into(),
            ))
        })?;
        if n < 2 {
            return Err(model_error(ModelError::Input(format!(
                "windows of {n} token(s) hold no next token to predict: use 2 or more"
            ))));
        }
        let input = ForwardInput::Tokens { ids, batch, n };
        // Every position is scored (the probes only matter for the check).
        input
            .validate(&self.config, &[n - 1])
            .map_err(model_error)?;
        let s = self.run(gpu, &input, batch, n, None)?;
        let last = if self.final_norm.is_some() {
            &s.a
        } else {
            &s.x
        };
        let targets: Vec<u32> = (0..batch * n)
            .map(|r| {
                if r % n == n - 1 {
                    kernels::lm_head::IGNORE
                } else {
                    ids[r + 1]
                }
            })
            .collect();
        let d = self.config.d_model;
        let out = gpu.nan_tensor("next-token scores", batch * n * 4, Precision::F32)?;
        let plan = kernels::lm_head_loss(gpu, last, head, &targets, d, &out)?;
        let all = gpu.download(&out).await?;
        let scores = all
            .chunks(n * 4)
            .flat_map(|w| w[..(n - 1) * 4].to_vec())
            .collect();
        Ok((scores, plan))
    }

    /// Scores final states `x` [rows, d] (a forward's `final_norm` probes, or its last
    /// `hidden` for a post-norm model) against the output embedding for `targets`: (lse, nll,
    /// entropy, top1) per row, as in [`Self::next_token_loss`].
    #[maybe_async::maybe_async]
    pub async fn score_states(&self, gpu: &Gpu, x: &[f32], targets: &[u32]) -> Result<Vec<f32>> {
        let head = self.output_embedding().ok_or_else(|| {
            model_error(ModelError::Missing(
                "an output embedding (this model has no language-model head)".into(),
            ))
        })?;
        let d = self.config.d_model;
        let t = gpu.upload("final states", x, self.precision)?;
        let out = gpu.nan_tensor("scores", targets.len() * 4, Precision::F32)?;
        kernels::lm_head_loss(gpu, &t, head, targets, d, &out)?;
        gpu.download(&out).await
    }

    pub fn config(&self) -> &ceiling_core::model::ModelConfig {
        &self.config
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// x W^T + b, with `act` and an optional residual added after it.
    #[allow(clippy::too_many_arguments)]
    fn linear(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        rows: usize,
        l: &GpuLinear,
        act: Activation,
        residual: Option<&Tensor>,
        out: &Tensor,
    ) -> Result<()> {
        let mut shape = MatmulShape::new(rows, l.in_dim, l.out_dim);
        shape.trans_b = true;
        kernels::matmul(
            gpu,
            &shape,
            x,
            &l.weight,
            l.bias.as_ref(),
            residual,
            act,
            out,
            self.kernels.matmul,
        )?;
        Ok(())
    }

    fn norm(&self, gpu: &Gpu, x: &Tensor, n: &GpuNorm, out: &Tensor) -> Result<()> {
        let (d, eps) = (self.config.d_model, self.config.norm_eps as f32);
        match (self.config.norm, &n.beta) {
            (NormKind::LayerNorm, Some(beta)) => {
                kernels::layer_norm(gpu, x, d, &n.gamma, beta, eps, out)
            }
            (NormKind::LayerNorm, None) => Err(model_error(ModelError::Missing(
                "beta of a layer norm".into(),
            ))),
            (NormKind::RmsNorm, _) => kernels::rms_norm(gpu, x, d, &n.gamma, eps, out),
        }
    }

    fn scratch(&self, gpu: &Gpu, batch: usize, n: usize) -> Result<Scratch> {
        let c = &self.config;
        let p = self.precision;
        let rows = batch * n;
        let (d, hd, ff) = (c.d_model, c.head_dim(), c.ff_dim);
        let t = |what: &str, len: usize| gpu.nan_tensor(what, len, p);
        let swiglu = c.activation == FfnActivation::SwiGlu;
        Ok(Scratch {
            x: t("x", rows * d)?,
            y: t("y", rows * d)?,
            a: t("a", rows * d)?,
            qp: t("q proj", rows * c.heads * hd)?,
            kp: t("k proj", rows * c.kv_heads * hd)?,
            vp: t("v proj", rows * c.kv_heads * hd)?,
            qh: t("q heads", rows * c.heads * hd)?,
            kh: t("k heads", rows * c.kv_heads * hd)?,
            vh: t("v heads", rows * c.kv_heads * hd)?,
            att: t("attention", rows * c.heads * hd)?,
            merged: t("merged", rows * c.heads * hd)?,
            o: t("attn out", rows * d)?,
            g: t("ffn", rows * ff)?,
            u: swiglu.then(|| t("ffn up", rows * ff)).transpose()?,
            gu: swiglu.then(|| t("ffn gated", rows * ff)).transpose()?,
            stats: gpu.nan_tensor("stats", batch * c.heads * n * STATS_PER_ROW, Precision::F32)?,
        })
    }

    /// The forward pass of one batch; returns the scratch whose `a` holds the final-norm
    /// states (pre-norm models) and whose `x` holds the last hidden state. With `gather`,
    /// the states and attention statistics at its probes are copied out on the way.
    fn run(
        &self,
        gpu: &Gpu,
        input: &ForwardInput,
        batch: usize,
        n: usize,
        gather: Option<&Gather>,
    ) -> Result<Scratch> {
        let c = &self.config;
        let (d, hd, heads, kv) = (c.d_model, c.head_dim(), c.heads, c.kv_heads);
        let rows = batch * n;
        let layers = self.layers.len();
        let s = self.scratch(gpu, batch, n)?;
        // Embeddings (into y when a norm follows, so that x holds the block input).
        let first = if self.embed_norm.is_some() {
            &s.y
        } else {
            &s.x
        };
        let input_tensor;
        let ids;
        let source = match *input {
            ForwardInput::Tokens { ids: tok, .. } => {
                ids = Indices::upload(gpu, "token ids", tok);
                let table = self
                    .token_embedding
                    .as_ref()
                    .ok_or_else(|| model_error(ModelError::Missing("token_embedding".into())))?;
                EmbedSource::Tokens { table, ids: &ids }
            }
            ForwardInput::Vectors { x, .. } => {
                input_tensor = gpu.upload("input", x, self.precision)?;
                EmbedSource::Vectors(&input_tensor)
            }
        };
        let positions = match c.position {
            Position::Learned { .. } => self.position_embedding.as_ref(),
            _ => None,
        };
        elementwise::embed(gpu, source, positions, n, d, first)?;
        if let Some(en) = &self.embed_norm {
            self.norm(gpu, &s.y, en, &s.x)?;
        }
        if let Some(g) = gather {
            g.rows(gpu, &s.x, batch, n, d, 0)?;
        }

        let rope_table = match c.position {
            Position::Rotary { base } => Some(kernels::rope_table(gpu, n, hd, base, 0)?),
            _ => None,
        };
        let mut shape = AttentionShape::new(batch, heads, n, hd);
        shape.kv_heads = kv;
        shape.causal = c.causal;
        let pre = c.layout == Layout::PreNorm;
        for (li, l) in self.layers.iter().enumerate() {
            let src = if pre {
                self.norm(gpu, &s.x, &l.attn_norm, &s.a)?;
                &s.a
            } else {
                &s.x
            };
            self.linear(gpu, src, rows, &l.q, Activation::None, None, &s.qp)?;
            self.linear(gpu, src, rows, &l.k, Activation::None, None, &s.kp)?;
            self.linear(gpu, src, rows, &l.v, Activation::None, None, &s.vp)?;
            elementwise::split_heads(gpu, &s.qp, batch, n, heads, hd, heads * hd, 0, &s.qh)?;
            elementwise::split_heads(gpu, &s.kp, batch, n, kv, hd, kv * hd, 0, &s.kh)?;
            elementwise::split_heads(gpu, &s.vp, batch, n, kv, hd, kv * hd, 0, &s.vh)?;
            if let Some(table) = &rope_table {
                kernels::rope_with_table(gpu, &s.qh, n, hd, hd, table)?;
                kernels::rope_with_table(gpu, &s.kh, n, hd, hd, table)?;
            }
            kernels::attention(
                gpu,
                &shape,
                &s.qh,
                &s.kh,
                &s.vh,
                None,
                &s.att,
                // Attention statistics only where they are gathered.
                gather.map(|_| &s.stats),
                self.kernels.attention,
            )?;
            if let Some(g) = gather {
                let at = li * g.stat_slot;
                elementwise::gather_stats(gpu, &s.stats, batch * heads, n, g.idx, g.stats, at)?;
            }
            elementwise::merge_heads(gpu, &s.att, batch, n, heads, hd, &s.merged)?;
            self.linear(gpu, &s.merged, rows, &l.o, Activation::None, None, &s.o)?;
            if let Some(g) = gather {
                g.rows(gpu, &s.o, batch, n, d, 1 + layers + li)?;
            }
            // y = x + attention; post-norm normalises it (into a) before the FFN.
            elementwise::add(gpu, &s.x, &s.o, &s.y)?;
            let (ffn_in, residual) = if pre {
                self.norm(gpu, &s.y, &l.ffn_norm, &s.a)?;
                (&s.a, &s.y)
            } else {
                self.norm(gpu, &s.y, &l.attn_norm, &s.a)?;
                (&s.a, &s.a)
            };
            let hidden = match (&l.gate, &s.u, &s.gu) {
                (Some(gate), Some(u), Some(gu)) => {
                    self.linear(gpu, ffn_in, rows, gate, Activation::Silu, None, &s.g)?;
                    self.linear(gpu, ffn_in, rows, &l.up, Activation::None, None, u)?;
                    elementwise::mul(gpu, &s.g, u, gu)?;
                    gu
                }
                _ => {
                    let act = c.activation.kernel_activation();
                    self.linear(gpu, ffn_in, rows, &l.up, act, None, &s.g)?;
                    &s.g
                }
            };
            if pre {
                self.linear(
                    gpu,
                    hidden,
                    rows,
                    &l.down,
                    Activation::None,
                    Some(residual),
                    &s.x,
                )?;
            } else {
                self.linear(
                    gpu,
                    hidden,
                    rows,
                    &l.down,
                    Activation::None,
                    Some(residual),
                    &s.y,
                )?;
                self.norm(gpu, &s.y, &l.ffn_norm, &s.x)?;
            }
            if let Some(g) = gather {
                g.rows(gpu, &s.x, batch, n, d, 1 + li)?;
            }
        }
        if let Some(fnorm) = &self.final_norm {
            self.norm(gpu, &s.x, fnorm, &s.a)?;
            if let Some(g) = gather {
                g.rows(gpu, &s.a, batch, n, d, 1 + 2 * layers)?;
            }
        }
        Ok(s)
    }

    /// Runs one batch and returns the states at `probes` (positions within each sequence).
    /// GPU memory is bounded by this batch: split long sweeps into batches.
    #[maybe_async::maybe_async]
    pub async fn forward(
        &self,
        gpu: &Gpu,
        input: &ForwardInput<'_>,
        probes: &[usize],
    ) -> Result<ProbeStates<f32>> {
        let c = &self.config;
        let (batch, n) = input.validate(c, probes).map_err(model_error)?;
        let (d, heads) = (c.d_model, c.heads);
        let np = probes.len();
        let probe_ids: Vec<u32> = probes.iter().map(|&p| p as u32).collect();
        let probe_idx = Indices::upload(gpu, "probes", &probe_ids);
        // Slots of [batch, probes, d]: embeddings, hidden per layer, attn_out per layer, final.
        let slot = batch * np * d;
        let layers = self.layers.len();
        let out = ProbeSlots::new(gpu, 2 * layers + 2, slot, self.precision)?;
        let stat_slot = batch * heads * np * 2;
        let out_stats = gpu.nan_tensor("probe stats", layers * stat_slot, Precision::F32)?;
        let gather = Gather {
            idx: &probe_idx,
            slots: &out,
            stats: &out_stats,
            stat_slot,
        };
        self.run(gpu, input, batch, n, Some(&gather))?;

        let all = out.download(gpu).await?;
        let stats = gpu.download(&out_stats).await?;
        let slot_at = |i: usize| all[i * slot..][..slot].to_vec();
        let spread = |li: usize, k: usize| -> Vec<f32> {
            stats[li * stat_slot..][..stat_slot]
                .chunks_exact(2)
                .map(|pair| pair[k])
                .collect()
        };
        Ok(ProbeStates {
            batch,
            probes: probes.to_vec(),
            d_model: d,
            heads,
            embeddings: slot_at(0),
            hidden: (0..layers).map(|l| slot_at(1 + l)).collect(),
            attn_out: (0..layers).map(|l| slot_at(1 + layers + l)).collect(),
            final_norm: self.final_norm.as_ref().map(|_| slot_at(1 + 2 * layers)),
            n_eff: (0..layers).map(|l| spread(l, 0)).collect(),
            entropy: (0..layers).map(|l| spread(l, 1)).collect(),
        })
    }
}

/// Where a forward copies the states and attention statistics at its probes.
struct Gather<'a> {
    idx: &'a Indices,
    slots: &'a ProbeSlots,
    stats: &'a Tensor,
    stat_slot: usize,
}

impl Gather<'_> {
    /// Rows at the probes of `x` [batch, n, d] into slot `slot`.
    fn rows(
        &self,
        gpu: &Gpu,
        x: &Tensor,
        batch: usize,
        n: usize,
        d: usize,
        slot: usize,
    ) -> Result<()> {
        let (t, at) = self.slots.slot(slot);
        elementwise::gather_rows(gpu, x, batch, n, d, self.idx, t, at)
    }
}

/// The probe states of one forward, slot after slot ([batch, probes, d] each), in as few
/// tensors as the adapter's storage binding allows: a model's states at every position of a
/// long window outgrow one binding (SmolLM2, 4 x 256 tokens: 146 MB).
struct ProbeSlots {
    tensors: Vec<Tensor>,
    slot: usize,
    per_tensor: usize,
}

impl ProbeSlots {
    fn new(gpu: &Gpu, slots: usize, slot: usize, precision: Precision) -> Result<Self> {
        let slot_bytes = (slot * precision.size()).max(1) as u64;
        let per_tensor = ((gpu.max_binding() / slot_bytes) as usize).clamp(1, slots);
        let tensors = (0..slots.div_ceil(per_tensor))
            .map(|i| {
                let count = per_tensor.min(slots - i * per_tensor);
                gpu.nan_tensor("probe states", count * slot, precision)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            tensors,
            slot,
            per_tensor,
        })
    }

    /// The tensor holding slot `i` and the element offset of the slot in it.
    fn slot(&self, i: usize) -> (&Tensor, usize) {
        (
            &self.tensors[i / self.per_tensor],
            (i % self.per_tensor) * self.slot,
        )
    }

    /// Every slot, in order.
    #[maybe_async::maybe_async]
    async fn download(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        let mut all = Vec::with_capacity(self.tensors.len() * self.per_tensor * self.slot);
        for t in &self.tensors {
            all.extend(gpu.download(t).await?);
        }
        Ok(all)
    }
}
