use crate::kernel::{Activation, MatmulShape};

/// out[z, m, n] = act(sum_k a[z, m, k] * b[z / b_group, k, n] + bias[n]) + residual[z, m, n].
/// With `shape.trans_b`, b is stored as [n, k].
pub fn matmul(
    shape: &MatmulShape,
    a: &[f64],
    b: &[f64],
    bias: Option<&[f64]>,
    residual: Option<&[f64]>,
    act: Activation,
) -> Vec<f64> {
    let MatmulShape { batch, m, k, n, .. } = *shape;
    let mut out = vec![0.0; batch * m * n];
    for z in 0..batch {
        let a = &a[z * m * k..][..m * k];
        let b = &b[(z / shape.b_group) * k * n..][..k * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for p in 0..k {
                    let bv = if shape.trans_b {
                        b[j * k + p]
                    } else {
                        b[p * n + j]
                    };
                    acc += a[i * k + p] * bv;
                }
                if let Some(bias) = bias {
                    acc += bias[j];
                }
                let mut y = act.apply(acc);
                if let Some(r) = residual {
                    y += r[z * m * n + i * n + j];
                }
                out[z * m * n + i * n + j] = y;
            }
        }
    }
    out
}
