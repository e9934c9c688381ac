/// Layer norm over the last dimension: (x - mean) / sqrt(var + eps) * gamma + beta.
pub fn layer_norm(x: &[f64], cols: usize, gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let mean = row.iter().sum::<f64>() / cols as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend(
            row.iter()
                .enumerate()
                .map(|(j, v)| (v - mean) * inv * gamma[j] + beta[j]),
        );
    }
    out
}

/// RMS norm over the last dimension: x / sqrt(mean(x^2) + eps) * gamma.
pub fn rms_norm(x: &[f64], cols: usize, gamma: &[f64], eps: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let ms = row.iter().map(|v| v * v).sum::<f64>() / cols as f64;
        let inv = 1.0 / (ms + eps).sqrt();
        out.extend(row.iter().enumerate().map(|(j, v)| v * inv * gamma[j]));
    }
    out
}
