/// `op` applied to each pair of elements of `a` and `b` (the residual add, the SwiGLU
/// product), in f64.
pub fn elementwise(a: &[f64], b: &[f64], op: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    assert_eq!(a.len(), b.len(), "elementwise: length mismatch");
    a.iter().zip(b).map(|(&x, &y)| op(x, y)).collect()
}
