/// Rotary position embedding (the GPT-NeoX / Llama "rotate half" layout) applied in place
/// to x laid out as [rows, seq, head_dim]: pair (i, i + half) at position p is rotated by
/// p * base^(-2i / rot_dim). Only the first `rot_dim` dims rotate.
pub fn rope(x: &mut [f64], seq: usize, head_dim: usize, rot_dim: usize, base: f64, pos0: usize) {
    let half = rot_dim / 2;
    for (r, row) in x.chunks_mut(head_dim).enumerate() {
        let p = (pos0 + r % seq) as f64;
        for i in 0..half {
            let theta = p * base.powf(-2.0 * i as f64 / rot_dim as f64);
            let (s, c) = theta.sin_cos();
            let (a, b) = (row[i], row[i + half]);
            row[i] = a * c - b * s;
            row[i + half] = a * s + b * c;
        }
    }
}
