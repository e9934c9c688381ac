//! Next-token loss from final hidden states: logits against the output embedding in f64,
//! one row at a time, so the [rows, vocab] logits are never held.

/// A target that scores nothing (padding, a mask): nll 0 and top1 false.
pub const IGNORE: u32 = u32::MAX;

/// The model's prediction at one position, scored against the actual next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenLoss {
    /// log sum exp of the logits.
    pub lse: f64,
    /// -log p(target), nats.
    pub nll: f64,
    /// Entropy of the predicted distribution, nats.
    pub entropy: f64,
    /// Whether the most likely token is the target.
    pub top1: bool,
}

/// For each row of `states` [rows, d] (final-norm hidden states) and its target id, the loss
/// under logits = states E^T with `head` E [vocab, d]; a target of [`IGNORE`] scores
/// nothing. Rows are split over the CPU's threads.
pub fn next_token_loss(head: &[f32], d: usize, states: &[f32], targets: &[u32]) -> Vec<TokenLoss> {
    assert!(
        d > 0 && head.len().is_multiple_of(d),
        "head is not [vocab, d]"
    );
    assert_eq!(
        states.len(),
        targets.len() * d,
        "states are not [targets, d]"
    );
    let vocab = head.len() / d;
    assert!(
        targets.iter().all(|&t| t == IGNORE || (t as usize) < vocab),
        "a target id is outside the vocabulary"
    );
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
    // A browser (wasm32) has no threads: spawning one panics there.
    if threads == 1 || cfg!(target_arch = "wasm32") {
        return rows_loss(head, d, states, targets);
    }
    let per = targets.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let parts: Vec<_> = targets
            .chunks(per)
            .zip(states.chunks(per * d))
            .map(|(t, x)| s.spawn(move || rows_loss(head, d, x, t)))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("loss thread panicked"))
            .collect()
    })
}

fn rows_loss(head: &[f32], d: usize, states: &[f32], targets: &[u32]) -> Vec<TokenLoss> {
    let mut logits = vec![0.0f64; head.len() / d];
    states
        .chunks(d)
        .zip(targets)
        .map(|(x, &target)| {
            let x: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            for (z, e) in logits.iter_mut().zip(head.chunks(d)) {
                *z = x.iter().zip(e).map(|(a, &b)| a * b as f64).sum();
            }
            let (mut best, mut max) = (0, f64::NEG_INFINITY);
            for (v, &z) in logits.iter().enumerate() {
                if z > max {
                    (best, max) = (v, z);
                }
            }
            let sum: f64 = logits.iter().map(|z| (z - max).exp()).sum();
            let lse = max + sum.ln();
            let mean_z: f64 = logits.iter().map(|z| (z - lse).exp() * z).sum();
            let scored = target != IGNORE;
            TokenLoss {
                lse,
                nll: if scored {
                    lse - logits[target as usize]
                } else {
                    0.0
                },
                entropy: lse - mean_z,
                top1: scored && best == target as usize,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_logits_give_log_vocab() {
        // Zero states: every logit 0, so nll = entropy = ln(vocab).
        let (vocab, d) = (7, 3);
        let head: Vec<f32> = (0..vocab * d).map(|i| i as f32 * 0.1).collect();
        let out = next_token_loss(&head, d, &[0.0; 6], &[0, 6]);
        for l in out {
            assert!((l.nll - (vocab as f64).ln()).abs() < 1e-12);
            assert!((l.entropy - (vocab as f64).ln()).abs() < 1e-12);
        }
    }

    #[test]
    fn a_confident_correct_prediction_costs_little() {
        // Head rows are one-hot; the state points hard at token 2.
        let d = 3;
        let head = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];
        let out = next_token_loss(&head, d, &[0.0, 0.0, 50.0, 0.0, 0.0, 50.0], &[2, 0]);
        assert!(out[0].nll < 1e-20 && out[0].top1);
        assert!((out[1].nll - 50.0).abs() < 1e-9 && !out[1].top1);
        assert!(out[0].entropy < 1e-18);
    }
}
