use crate::kernel::SoftmaxShape;

/// Row softmax of `scale * x` with the masks of `shape`; a fully masked row gives zeros.
pub fn softmax_rows(shape: &SoftmaxShape, x: &[f64], key_mask: Option<&[f64]>) -> Vec<f64> {
    let cols = shape.cols;
    let mut out = vec![0.0; x.len()];
    for (r, row) in x.chunks(cols).enumerate() {
        let visible = |j: usize| shape.visible(r, j, key_mask);
        let max = (0..cols)
            .filter(|&j| visible(j))
            .map(|j| shape.scale * row[j])
            .fold(f64::NEG_INFINITY, f64::max);
        if max == f64::NEG_INFINITY {
            continue;
        }
        let sum: f64 = (0..cols)
            .filter(|&j| visible(j))
            .map(|j| (shape.scale * row[j] - max).exp())
            .sum();
        for j in (0..cols).filter(|&j| visible(j)) {
            out[r * cols + j] = (shape.scale * row[j] - max).exp() / sum;
        }
    }
    out
}
