//! The f64 CPU reference of the forward pass, built from the kernel references so that each
//! GPU step has its counterpart here.

use super::{
    FfnActivation, ForwardInput, Layout, Linear, ModelError, ModelWeights, Norm, NormKind,
    Position, ProbeStates,
};
use crate::kernel::{Activation, AttentionShape, MatmulShape};
use crate::reference;

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// x [rows, in] -> x W^T + b [rows, out], with `act` applied.
fn linear(x: &[f64], rows: usize, l: &Linear, act: Activation) -> Vec<f64> {
    let mut s = MatmulShape::new(rows, l.in_dim, l.out_dim);
    s.trans_b = true;
    let bias = l.bias.as_deref().map(f64s);
    reference::matmul(&s, x, &f64s(&l.weight), bias.as_deref(), None, act)
}

fn norm(x: &[f64], d: usize, n: &Norm, kind: NormKind, eps: f64) -> Vec<f64> {
    let gamma = f64s(&n.gamma);
    match kind {
        NormKind::LayerNorm => {
            let beta = n.beta.as_deref().map(f64s).unwrap_or_else(|| vec![0.0; d]);
            reference::layer_norm(x, d, &gamma, &beta, eps)
        }
        NormKind::RmsNorm => reference::rms_norm(x, d, &gamma, eps),
    }
}

/// [batch, n, heads * hd] -> [batch, heads, n, hd]
pub fn split_heads(x: &[f64], batch: usize, n: usize, heads: usize, hd: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for b in 0..batch {
        for i in 0..n {
            for h in 0..heads {
                let src = &x[((b * n + i) * heads + h) * hd..][..hd];
                out[((b * heads + h) * n + i) * hd..][..hd].copy_from_slice(src);
            }
        }
    }
    out
}

/// [batch, heads, n, hd] -> [batch, n, heads * hd]
pub fn merge_heads(x: &[f64], batch: usize, n: usize, heads: usize, hd: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for b in 0..batch {
        for h in 0..heads {
            for i in 0..n {
                let src = &x[((b * heads + h) * n + i) * hd..][..hd];
                out[((b * n + i) * heads + h) * hd..][..hd].copy_from_slice(src);
            }
        }
    }
    out
}

/// Rows `probes` of each batch of x [batch, n, d], as [batch, probes, d].
fn gather(x: &[f64], batch: usize, n: usize, d: usize, probes: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(batch * probes.len() * d);
    for b in 0..batch {
        for &p in probes {
            out.extend_from_slice(&x[(b * n + p) * d..][..d]);
        }
    }
    out
}

/// The forward pass in f64, keeping what [`ProbeStates`] describes at `probes`.
pub fn forward(
    w: &ModelWeights,
    input: &ForwardInput,
    probes: &[usize],
) -> Result<ProbeStates<f64>, ModelError> {
    let c = &w.config;
    let (batch, n) = input.validate(c, probes)?;
    let d = c.d_model;
    let hd = c.head_dim();
    let rows = batch * n;
    let mut x = match *input {
        ForwardInput::Tokens { ids, .. } => {
            let table = w
                .token_embedding
                .as_ref()
                .ok_or_else(|| ModelError::Missing("token_embedding".into()))?;
            ids.iter()
                .flat_map(|&id| table[id as usize * d..][..d].iter().map(|&v| v as f64))
                .collect()
        }
        ForwardInput::Vectors { x, .. } => f64s(x),
    };
    if let (Position::Learned { .. }, Some(pos)) = (c.position, &w.position_embedding) {
        for (r, row) in x.chunks_mut(d).enumerate() {
            let p = &pos[(r % n) * d..][..d];
            row.iter_mut().zip(p).for_each(|(v, &e)| *v += e as f64);
        }
    }
    if let Some(en) = &w.embed_norm {
        x = norm(&x, d, en, c.norm, c.norm_eps);
    }
    let mut shape = AttentionShape::new(batch, c.heads, n, hd);
    shape.kv_heads = c.kv_heads;
    shape.causal = c.causal;
    let mut states = ProbeStates {
        batch,
        probes: probes.to_vec(),
        d_model: d,
        heads: c.heads,
        embeddings: gather(&x, batch, n, d, probes),
        hidden: Vec::new(),
        attn_out: Vec::new(),
        final_norm: None,
        n_eff: Vec::new(),
        entropy: Vec::new(),
    };
    for l in &w.layers {
        let pre = c.layout == Layout::PreNorm;
        let a = if pre {
            norm(&x, d, &l.attn_norm, c.norm, c.norm_eps)
        } else {
            x.clone()
        };
        let mut q = split_heads(
            &linear(&a, rows, &l.q, Activation::None),
            batch,
            n,
            c.heads,
            hd,
        );
        let mut k = split_heads(
            &linear(&a, rows, &l.k, Activation::None),
            batch,
            n,
            c.kv_heads,
            hd,
        );
        let v = split_heads(
            &linear(&a, rows, &l.v, Activation::None),
            batch,
            n,
            c.kv_heads,
            hd,
        );
        if let Position::Rotary { base } = c.position {
            reference::rope(&mut q, n, hd, hd, base, 0);
            reference::rope(&mut k, n, hd, hd, base, 0);
        }
        let att = reference::attention(&shape, &q, &k, &v, None);
        let merged = merge_heads(&att.out, batch, n, c.heads, hd);
        let o = linear(&merged, rows, &l.o, Activation::None);
        states.attn_out.push(gather(&o, batch, n, d, probes));
        let mut n_eff = Vec::with_capacity(batch * c.heads * probes.len());
        let mut entropy = Vec::with_capacity(n_eff.capacity());
        for bh in 0..batch * c.heads {
            for &p in probes {
                n_eff.push(att.n_eff[bh * n + p]);
                entropy.push(att.entropy[bh * n + p]);
            }
        }
        states.n_eff.push(n_eff);
        states.entropy.push(entropy);
        let sum: Vec<f64> = x.iter().zip(&o).map(|(a, b)| a + b).collect();
        let y = if pre {
            sum
        } else {
            norm(&sum, d, &l.attn_norm, c.norm, c.norm_eps)
        };
        let f = if pre {
            norm(&y, d, &l.ffn_norm, c.norm, c.norm_eps)
        } else {
            y.clone()
        };
        let g = match (&l.gate, c.activation) {
            (Some(gate), FfnActivation::SwiGlu) => {
                let g = linear(&f, rows, gate, Activation::Silu);
                let u = linear(&f, rows, &l.up, Activation::None);
                g.iter().zip(&u).map(|(a, b)| a * b).collect()
            }
            (None, FfnActivation::SwiGlu) => {
                return Err(ModelError::Missing("gate of a SwiGLU layer".into()))
            }
            (_, act) => linear(&f, rows, &l.up, act.kernel_activation()),
        };
        let down = linear(&g, rows, &l.down, Activation::None);
        let sum: Vec<f64> = y.iter().zip(&down).map(|(a, b)| a + b).collect();
        x = if pre {
            sum
        } else {
            norm(&sum, d, &l.ffn_norm, c.norm, c.norm_eps)
        };
        states.hidden.push(gather(&x, batch, n, d, probes));
    }
    if let Some(fnorm) = &w.final_norm {
        let last = gather(&x, batch, n, d, probes);
        states.final_norm = Some(norm(&last, d, fnorm, c.norm, c.norm_eps));
    }
    Ok(states)
}
