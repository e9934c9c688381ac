//! The LM-head kernel (lse, nll, entropy, top-1 per row without the logits) against the f64
//! reference `next_token_loss`: vocabularies that are not block multiples, a target at the
//! last vocabulary entry, ignored positions, extreme logits, f16 storage, NaN-poisoned
//! outputs, and rows beyond one launch.

mod common;

use ceiling_core::reference::next_token_loss;
use ceiling_host::kernels::lm_head::{lm_head_loss, IGNORE, OUT_PER_ROW};
use ceiling_shaders::Precision;
use common::*;
use rand::Rng;

/// Runs the kernel and checks every row (or the `check` rows) against the reference.
fn check_case(what: &str, rows: usize, d: usize, vocab: usize, scale: f32, check: &[usize]) {
    let gpu = gpu();
    let mut rng = rng(what);
    for precision in precisions() {
        let x: Vec<f32> = random(&mut rng, rows * d)
            .iter()
            .map(|v| v * scale)
            .collect();
        let head = random(&mut rng, vocab * d);
        let mut targets: Vec<u32> = (0..rows)
            .map(|_| rng.random_range(0..vocab as u32))
            .collect();
        targets[0] = vocab as u32 - 1;
        if rows > 2 {
            targets[rows / 2] = IGNORE;
        }
        let xt = gpu.upload("x", &x, precision).unwrap();
        let ht = gpu.upload("head", &head, precision).unwrap();
        let out = gpu
            .nan_tensor("out", rows * OUT_PER_ROW, Precision::F32)
            .unwrap();
        let plan = lm_head_loss(gpu, &xt, &ht, &targets, d, &out).unwrap();
        let got = gpu.download(&out).unwrap();
        assert!(
            got.iter().all(|v| v.is_finite()),
            "{what}: a row was not written"
        );
        // The reference sees the values as stored.
        let f =
            |v: &[f32]| -> Vec<f32> { stored(v, precision).iter().map(|&x| x as f32).collect() };
        let (xs, hs) = (f(&x), f(&head));
        let rows_checked: Vec<usize> = if check.is_empty() {
            (0..rows).collect()
        } else {
            check.to_vec()
        };
        let sub_x: Vec<f32> = rows_checked
            .iter()
            .flat_map(|&r| xs[r * d..][..d].to_vec())
            .collect();
        let sub_t: Vec<u32> = rows_checked.iter().map(|&r| targets[r]).collect();
        let want = next_token_loss(&hs, d, &sub_x, &sub_t);
        let tol = match precision {
            Precision::F32 => 2e-5,
            Precision::F16 => 2e-3,
        };
        let mut worst: f64 = 0.0;
        for (&r, w) in rows_checked.iter().zip(&want) {
            let g = &got[r * OUT_PER_ROW..][..OUT_PER_ROW];
            let (z_max, tie) = logit_range(&hs, &xs[r * d..][..d], d);
            for (name, gv, wv) in [
                ("lse", g[0], w.lse),
                ("nll", g[1], w.nll),
                ("entropy", g[2], w.entropy),
            ] {
                // The kernel's logits are f32 sums: their rounding scales with the largest.
                let err = (gv as f64 - wv).abs() / (1.0 + wv.abs() + z_max);
                worst = worst.max(err);
                assert!(
                    err < tol,
                    "{what} {precision} row {r} {name}: {gv} vs {wv} ({plan})"
                );
            }
            if targets[r] == IGNORE {
                assert_eq!((g[1], g[3]), (0.0, 0.0), "{what}: an ignored row scored");
            } else if !tie {
                assert_eq!(g[3] == 1.0, w.top1, "{what} {precision} row {r} top1");
            }
        }
        eprintln!("{what} {precision}: {plan}, worst relative error {worst:.2e}");
    }
}

/// The largest |logit| of a row, and whether its two largest logits are too close for f32
/// to order them surely.
fn logit_range(head: &[f32], x: &[f32], d: usize) -> (f64, bool) {
    let mut z: Vec<f64> = head
        .chunks(d)
        .map(|e| e.iter().zip(x).map(|(&a, &b)| a as f64 * b as f64).sum())
        .collect();
    let z_max = z.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    z.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let tie = z.len() > 1 && (z[0] - z[1]).abs() < 1e-3 * (1.0 + z[0].abs());
    (z_max, tie)
}

#[test]
fn awkward_vocabularies_and_rows() {
    check_case("one token", 1, 4, 1, 1.0, &[]);
    check_case("vocab 37", 5, 12, 37, 1.0, &[]);
    check_case("rows past one block", 130, 64, 200, 1.0, &[]);
    check_case("block multiples", 128, 64, 128, 1.0, &[]);
    check_case("smollm-like width", 33, 576, 1000, 0.2, &[]);
}

#[test]
fn extreme_logits_stay_finite() {
    // Logits in the thousands: exp() of them overflows f32 without the online max.
    check_case("extreme logits", 40, 32, 300, 400.0, &[]);
    // All-equal logits: the entropy is ln(vocab), the lse ln(vocab) too.
    let gpu = gpu();
    let (rows, d, vocab) = (3, 8, 100);
    let x = gpu
        .upload("x", &vec![0.0; rows * d], Precision::F32)
        .unwrap();
    let h = gpu
        .upload("h", &vec![0.5; vocab * d], Precision::F32)
        .unwrap();
    let out = gpu
        .nan_tensor("out", rows * OUT_PER_ROW, Precision::F32)
        .unwrap();
    lm_head_loss(gpu, &x, &h, &[0, 99, IGNORE], d, &out).unwrap();
    let got = gpu.download(&out).unwrap();
    let ln_v = (vocab as f32).ln();
    for r in 0..rows {
        assert!((got[r * 4] - ln_v).abs() < 1e-5 && (got[r * 4 + 2] - ln_v).abs() < 1e-5);
    }
    // Ties: the first index wins, so token 0 is the top-1 and token 99 is not.
    assert_eq!((got[3], got[7]), (1.0, 0.0));
}

#[test]
fn rows_beyond_one_launch_are_split() {
    // 1024 vocabulary blocks of 16 bytes per row: more rows than one binding of partials.
    let gpu = gpu();
    let vocab = 65536;
    let rows = (gpu.max_binding() / (16 * 1024)) as usize + 40;
    let check: Vec<usize> = (0..4).chain(rows - 60..rows).collect();
    check_case("many rows", rows, 4, vocab, 1.0, &check);
}

#[test]
fn bad_inputs_are_refused() {
    let gpu = gpu();
    let x = gpu.upload("x", &[0.0; 8], Precision::F32).unwrap();
    let h = gpu.upload("h", &[0.0; 12], Precision::F32).unwrap();
    let out = gpu.nan_tensor("out", 8, Precision::F32).unwrap();
    let e = lm_head_loss(gpu, &x, &h, &[0, 3], 4, &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("target 3") && e.contains("vocabulary of 3"),
        "{e}"
    );
    let e = lm_head_loss(gpu, &x, &h, &[0, 1], 6, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("multiple of 4"), "{e}");
    let e = lm_head_loss(gpu, &x, &h, &[0], 4, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("x"), "{e}");
}
