use crate::kernel::AttentionShape;

/// Attention output with the per-row statistics of the same softmax.
pub struct AttentionOutput {
    /// [batch, heads, n_q, head_dim]
    pub out: Vec<f64>,
    /// log sum_j exp(scale * q.k_j) over visible keys; -inf for a fully masked row.
    pub lse: Vec<f64>,
    /// 1 / sum_j a_j^2; 0 for a fully masked row.
    pub n_eff: Vec<f64>,
    /// -sum_j a_j ln a_j; 0 for a fully masked row.
    pub entropy: Vec<f64>,
}

/// softmax(scale * q k^T + mask) v, with key_mask [batch, n_kv] (0 = masked).
pub fn attention(
    s: &AttentionShape,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    key_mask: Option<&[f64]>,
) -> AttentionOutput {
    let d = s.head_dim;
    let rows = s.rows();
    let mut res = AttentionOutput {
        out: vec![0.0; rows * d],
        lse: vec![f64::NEG_INFINITY; rows],
        n_eff: vec![0.0; rows],
        entropy: vec![0.0; rows],
    };
    let mut logits = vec![0.0; s.n_kv];
    for b in 0..s.batch {
        for h in 0..s.heads {
            let kvh = b * s.kv_heads + h / s.group();
            let kk = &k[kvh * s.n_kv * d..][..s.n_kv * d];
            let vv = &v[kvh * s.n_kv * d..][..s.n_kv * d];
            for i in 0..s.n_q {
                let row = (b * s.heads + h) * s.n_q + i;
                let qi = &q[row * d..][..d];
                let visible = |j: usize| {
                    s.causal_visible(i, j) && key_mask.is_none_or(|m| m[b * s.n_kv + j] != 0.0)
                };
                let mut max = f64::NEG_INFINITY;
                for (j, l) in logits.iter_mut().enumerate() {
                    *l = if visible(j) {
                        s.scale * (0..d).map(|t| qi[t] * kk[j * d + t]).sum::<f64>()
                    } else {
                        f64::NEG_INFINITY
                    };
                    max = max.max(*l);
                }
                if max == f64::NEG_INFINITY {
                    continue;
                }
                let sum: f64 = logits.iter().map(|l| (l - max).exp()).sum();
                res.lse[row] = max + sum.ln();
                let (mut sq, mut ent) = (0.0, 0.0);
                let o = &mut res.out[row * d..][..d];
                for (j, l) in logits.iter().enumerate() {
                    let a = (l - max).exp() / sum;
                    if a > 0.0 {
                        sq += a * a;
                        ent -= a * a.ln();
                        for t in 0..d {
                            o[t] += a * vv[j * d + t];
                        }
                    }
                }
                res.n_eff[row] = 1.0 / sq;
                res.entropy[row] = ent;
            }
        }
    }
    res
}
