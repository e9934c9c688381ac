//! Fused attention (rows, portable and subgroup) and the unfused baseline against the f64
//! reference.

mod common;

use ceiling_core::kernel::AttentionShape;
use ceiling_core::reference;
use ceiling_host::kernels::{self, attention::ROWS_WG, AttentionKernel, STATS_PER_ROW};
use ceiling_shaders::Precision;
use common::*;

fn kernels_to_test() -> Vec<AttentionKernel> {
    let mut k = vec![
        AttentionKernel::Auto,
        AttentionKernel::Rows {
            wg: ROWS_WG,
            rows: 0,
        },
        AttentionKernel::Portable,
    ];
    if gpu().has_subgroups() {
        k.push(AttentionKernel::Subgroup);
    } else {
        missing_feature("subgroup");
    }
    k
}

struct Case {
    shape: AttentionShape,
    masked: bool,
}

#[allow(clippy::too_many_arguments)]
fn case(
    batch: usize,
    heads: usize,
    kv_heads: usize,
    n_q: usize,
    n_kv: usize,
    head_dim: usize,
    causal: bool,
    masked: bool,
) -> Case {
    let mut shape = AttentionShape::new(batch, heads, n_q, head_dim);
    shape.kv_heads = kv_heads;
    shape.n_kv = n_kv;
    shape.causal = causal;
    Case { shape, masked }
}

/// Runs one case on every kernel and precision, checks output and stats; returns the
/// worst relative error of the output.
fn check(c: &Case, kinds: &[AttentionKernel], rng: &mut rand_chacha::ChaCha8Rng) -> f64 {
    let gpu = gpu();
    let s = &c.shape;
    // CEILING_TEST_MAX_HEAD_DIM (set by `cargo xtask test` for its GL run, where Mesa
    // compiles each rows kernel of a head dim over 64 in about a minute) leaves larger head
    // dims to the Vulkan run, and says so.
    if let Some(max) = std::env::var("CEILING_TEST_MAX_HEAD_DIM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&max| s.head_dim > max)
    {
        eprintln!(
            "SKIPPED here (CEILING_TEST_MAX_HEAD_DIM={max}): head_dim {} of {s:?}",
            s.head_dim
        );
        return 0.0;
    }
    let q = random(rng, s.q_len());
    let k = random(rng, s.kv_len());
    let v = random(rng, s.kv_len());
    // Random key mask; with several batches batch 0 is masked completely.
    let mask: Vec<f32> = (0..s.batch * s.n_kv)
        .map(|i| {
            let all = s.batch > 1 && i < s.n_kv;
            if all || rand::Rng::random_bool(rng, 0.3) {
                0.0
            } else {
                1.0
            }
        })
        .collect();
    let mask64 = stored(&mask, Precision::F32);
    let tm = gpu.upload("mask", &mask, Precision::F32).unwrap();
    // One pass over every (query, key) pair per case, not per precision and kernel: the long
    // case has four million of them.
    let dz = logit_error(s, &q, &k);
    let mut worst: f64 = 0.0;
    for precision in precisions() {
        let (tq, tk, tv) = (
            gpu.upload("q", &q, precision).unwrap(),
            gpu.upload("k", &k, precision).unwrap(),
            gpu.upload("v", &v, precision).unwrap(),
        );
        let want = reference::attention(
            s,
            &stored(&q, precision),
            &stored(&k, precision),
            &stored(&v, precision),
            c.masked.then_some(&mask64[..]),
        );
        for &kind in kinds {
            let out = gpu.nan_tensor("out", s.q_len(), precision).unwrap();
            let stats = gpu
                .nan_tensor("stats", s.rows() * STATS_PER_ROW, Precision::F32)
                .unwrap();
            kernels::attention(
                gpu,
                s,
                &tq,
                &tk,
                &tv,
                c.masked.then_some(&tm),
                &out,
                Some(&stats),
                kind,
            )
            .unwrap();
            let label = format!("{kind:?} {precision} {s:?} masked={}", c.masked);
            let e = assert_close(
                &format!("attention {label}"),
                &gpu.download(&out).unwrap(),
                &want.out,
                tolerance(precision) + dz,
            );
            worst = worst.max(e.rel);
            check_stats(&label, &gpu.download(&stats).unwrap(), &want, dz);
        }
    }
    worst
}

/// How well f32 can know the logits of `s`: one ulp (relative to 1) of the largest |scale
/// q.k| over any query row and key row (every pair, so every head is covered). Attention is
/// no better conditioned than its logits: at scale 1e5 they reach ~5e5, and 0.06 of
/// rounding there, not the kernel, limits the output and the stats. At the ordinary scale
/// 1/sqrt(head_dim) this is below 1e-6 and changes nothing.
fn logit_error(s: &AttentionShape, q: &[f32], k: &[f32]) -> f64 {
    let mut max: f64 = 0.0;
    for qr in q.chunks(s.head_dim) {
        for kr in k.chunks(s.head_dim) {
            let dot: f64 = qr.iter().zip(kr).map(|(&a, &b)| a as f64 * b as f64).sum();
            max = max.max((s.scale * dot).abs());
        }
    }
    f32::EPSILON as f64 * max
}

/// lse, n_eff and entropy against the reference; fully masked rows must be (-inf, 0, 0).
/// `dz` (`logit_error`) is the rounding of the logits: it moves lse by about dz, entropy H by
/// up to 2 dz H and n_eff by a relative 4 dz (first order), on top of the 1e-4 tolerance.
fn check_stats(label: &str, got: &[f32], want: &reference::AttentionOutput, dz: f64) {
    let (mut g, mut w) = ([vec![], vec![], vec![]], [vec![], vec![], vec![]]);
    for (row, st) in got.chunks(STATS_PER_ROW).enumerate() {
        if want.lse[row] == f64::NEG_INFINITY {
            assert!(
                st[0] == f32::NEG_INFINITY && st[1] == 0.0 && st[2] == 0.0,
                "{label}: fully masked row {row} gave stats {st:?}"
            );
            continue;
        }
        for (x, wx) in [want.lse[row], want.n_eff[row], want.entropy[row]]
            .iter()
            .enumerate()
        {
            g[x].push(st[x]);
            w[x].push(*wx);
        }
    }
    // Mixed tolerance: with near one-hot rows the entropy is ~1e-6, and f32 rounding of
    // logits in the thousands sets an absolute floor on its error.
    for (x, name) in ["lse", "n_eff", "entropy"].iter().enumerate() {
        let e = ceiling_core::reference::compare(&g[x], &w[x]);
        eprintln!("{name} {label}: {e}");
        for (gv, wv) in g[x].iter().zip(&w[x]) {
            let err = (*gv as f64 - wv).abs();
            let rounding = match x {
                0 => dz,
                1 => 4.0 * dz * wv.abs(),
                _ => 2.0 * dz * wv.abs(),
            };
            assert!(
                err <= 1e-4 * (1.0 + wv.abs()) + rounding,
                "{name} {label}: got {gv}, want {wv} (logit rounding allows {rounding:.1e})"
            );
        }
    }
}

#[test]
fn fused_attention_matches_reference_across_shapes() {
    let mut rng = rng("attention-shapes");
    let kinds = kernels_to_test();
    for c in [
        case(1, 1, 1, 1, 1, 16, false, false),
        case(1, 1, 1, 1, 1, 16, true, false),
        case(1, 2, 2, 7, 7, 24, true, false),
        case(2, 4, 2, 33, 33, 64, true, false),
        case(1, 3, 1, 17, 65, 40, false, true),
        case(2, 2, 1, 5, 70, 80, true, true),
        // A fully masked batch (rows with stats -inf, 0, 0) at a head dim the GL run reaches.
        case(2, 2, 1, 6, 40, 24, true, true),
        case(1, 1, 1, 63, 130, 100, true, false),
        case(1, 2, 2, 20, 40, 128, false, false),
        case(1, 1, 1, 9, 31, 200, true, true),
        case(1, 2, 1, 18, 18, 256, true, false),
        case(1, 1, 1, 70, 9, 48, false, false),
        // Head dims that are not multiples of 4 (the rows kernel pads to vec4s).
        case(1, 1, 1, 3, 5, 1, false, false),
        case(1, 2, 1, 13, 21, 30, true, true),
        case(2, 3, 3, 40, 35, 61, true, false),
    ] {
        check(&c, &kinds, &mut rng);
    }
}

#[test]
fn fused_attention_long_context() {
    let mut rng = rng("attention-long");
    let kinds = kernels_to_test();
    let worst = check(
        &case(1, 1, 1, 2048, 2048, 64, true, false),
        &kinds,
        &mut rng,
    );
    eprintln!("n = 2048: worst relative error {worst:.3e}");
    check(&case(1, 1, 1, 4, 3000, 72, false, true), &kinds, &mut rng);
}

#[test]
fn extreme_logit_scales_stay_finite() {
    let mut rng = rng("attention-scales");
    let kinds = kernels_to_test();
    for scale in [1e-4, 30.0, 1e3, 1e5] {
        let mut c = case(1, 2, 2, 19, 45, 32, true, false);
        c.shape.scale = scale;
        check(&c, &kinds, &mut rng);
    }
}

#[test]
fn unfused_baseline_matches_reference() {
    let gpu = gpu();
    let mut rng = rng("attention-unfused");
    for c in [
        case(1, 1, 1, 1, 1, 16, false, false),
        case(2, 4, 2, 33, 47, 40, true, true),
        case(1, 2, 1, 64, 64, 64, false, false),
    ] {
        let s = &c.shape;
        let q = random(&mut rng, s.q_len());
        let k = random(&mut rng, s.kv_len());
        let v = random(&mut rng, s.kv_len());
        let mask: Vec<f32> = (0..s.batch * s.n_kv)
            .map(|i| (i % 3 != 1) as u8 as f32)
            .collect();
        for precision in precisions() {
            let up = |name, x: &[f32]| gpu.upload(name, x, precision).unwrap();
            let tm = gpu.upload("mask", &mask, Precision::F32).unwrap();
            let out = gpu.nan_tensor("out", s.q_len(), precision).unwrap();
            kernels::attention_unfused(
                gpu,
                s,
                &up("q", &q),
                &up("k", &k),
                &up("v", &v),
                c.masked.then_some(&tm),
                &out,
            )
            .unwrap();
            let mask64 = stored(&mask, Precision::F32);
            let want = reference::attention(
                s,
                &stored(&q, precision),
                &stored(&k, precision),
                &stored(&v, precision),
                c.masked.then_some(&mask64[..]),
            );
            // Scores and probabilities round to f16 between the steps: looser than fused.
            let tol = match precision {
                Precision::F32 => tolerance(precision),
                Precision::F16 => 5e-3,
            };
            assert_close(
                &format!("unfused {precision} {s:?}"),
                &gpu.download(&out).unwrap(),
                &want.out,
                tol,
            );
        }
    }
}

#[test]
fn attention_bad_input_is_refused() {
    let gpu = gpu();
    let t = |n| gpu.upload("t", &vec![0.5; n], Precision::F32).unwrap();
    let mut s = AttentionShape::new(1, 4, 8, 16);
    s.kv_heads = 3;
    let err = kernels::attention(
        gpu,
        &s,
        &t(512),
        &t(384),
        &t(384),
        None,
        &t(512),
        None,
        AttentionKernel::Auto,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("not a multiple of kv_heads"),
        "{err}"
    );
    let s = AttentionShape::new(1, 1, 8, 16);
    let err = kernels::attention(
        gpu,
        &s,
        &t(128),
        &t(100),
        &t(128),
        None,
        &t(128),
        None,
        AttentionKernel::Auto,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("k: expected 128 elements, got 100"),
        "{err}"
    );
}

/// Without a key mask and without stats, both stand-in buffers are bound at once.
#[test]
fn attention_without_mask_or_stats_runs() {
    let gpu = gpu();
    let mut rng = rng("attention-bare");
    // Without stats the rows kernel keeps only the softmax sum: check it bare, and with a
    // causal and a key mask (n_kv > n_q).
    for (causal, masked) in [(false, false), (true, true), (true, false)] {
        let mut s = AttentionShape::new(1, 2, 9, 24);
        s.n_kv = 21;
        s.causal = causal;
        let (q, k, v) = (
            random(&mut rng, s.q_len()),
            random(&mut rng, s.kv_len()),
            random(&mut rng, s.kv_len()),
        );
        let mask: Vec<f32> = (0..s.n_kv).map(|j| (j % 3 != 1) as u32 as f32).collect();
        let up = |name, x: &[f32]| gpu.upload(name, x, Precision::F32).unwrap();
        let tm = up("mask", &mask);
        // Rows per workgroup and per invocation that divide nothing (each rows plan is a
        // shader of its own, compiled once: the other tests keep to the rules' plans).
        let mut kinds = kernels_to_test();
        kinds.push(AttentionKernel::Rows { wg: 5, rows: 3 });
        for kind in kinds {
            let out = gpu.nan_tensor("out", s.q_len(), Precision::F32).unwrap();
            kernels::attention(
                gpu,
                &s,
                &up("q", &q),
                &up("k", &k),
                &up("v", &v),
                masked.then_some(&tm),
                &out,
                None,
                kind,
            )
            .unwrap();
            let want = reference::attention(
                &s,
                &stored(&q, Precision::F32),
                &stored(&k, Precision::F32),
                &stored(&v, Precision::F32),
                masked.then(|| stored(&mask, Precision::F32)).as_deref(),
            );
            assert_close(
                &format!("attention {kind:?} without stats, causal {causal}, mask {masked}"),
                &gpu.download(&out).unwrap(),
                &want.out,
                1e-5,
            );
        }
    }
}
