//! Every kernel against its f64 reference, driven by the kernel harness
//! (`ceiling_host::cases`): each registered case at each precision the adapter offers, in
//! each variant its plans can choose, on fresh inputs and NaN-poisoned outputs. Then what
//! the registry cannot say: refusals, limits, threads, autotuning.

mod common;

use std::collections::BTreeSet;

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape};
use ceiling_core::reference::{self, next_token_loss};
use ceiling_host::cases::{self, KernelCase, MatmulCase, NormCase, NormKind};
use ceiling_host::kernels::lm_head::{lm_head_loss, IGNORE, OUT_PER_ROW};
use ceiling_host::kernels::{
    self, AttentionKernel, MatmulKernel, MatmulPlan, MatmulTiles, Vec4Tiles,
};
use ceiling_host::HostError;
use ceiling_shaders::Precision;
use common::*;
use rand::Rng;

/// Kernels each test below checks; `every_registered_kernel_is_checked` holds the registry
/// to it, so a new case cannot go unchecked.
const TESTED: &[&str] = &[
    "matmul",
    "attention",
    "attention_unfused",
    "softmax",
    "layer_norm",
    "rms_norm",
    "rope",
    "column_moments",
    "lm_head",
    "add",
    "mul",
];

/// Checks `case` at every precision and variant on `gpu`; returns the failures.
fn check_case(gpu: &ceiling_host::Gpu, case: &dyn KernelCase, run_seed: u64) -> Vec<String> {
    let results = cases::check_every_variant(gpu, case, run_seed, |r| eprintln!("{r}")).unwrap();
    results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| format!("{r} (seed {})", r.seed))
        .collect()
}

/// Every registered case of `kernel`, on a device per core (`on_own_devices`: from a cold
/// shader cache on 2 cores, attention took 7.8 minutes on one shared device, 4.5 on two).
fn check_kernel(kernel: &str) {
    let run_seed = ceiling_fuzz::fixtures::seed_from_env("CEILING_TEST_SEED");
    eprintln!("{kernel}: CEILING_TEST_SEED={run_seed}");
    // Under CI an adapter without f16 (or subgroups) fails here rather than silently
    // checking less.
    precisions();
    if kernel == "attention" && !gpu().has_subgroups() {
        missing_feature("subgroup");
    }
    // CEILING_TEST_MAX_HEAD_DIM (set by `cargo xtask test` for its GL run, where Mesa
    // compiles each rows kernel of a head dim over 64 in about a minute) leaves larger head
    // dims to the Vulkan run, and says so.
    let max_head_dim = std::env::var("CEILING_TEST_MAX_HEAD_DIM")
        .ok()
        .and_then(|v| v.parse::<usize>().ok());
    let (to_check, skipped): (Vec<_>, Vec<_>) = cases::checks()
        .into_iter()
        .filter(|c| c.kernel() == kernel)
        .partition(|c| c.within_head_dim(max_head_dim));
    for case in &skipped {
        eprintln!(
            "SKIPPED here (CEILING_TEST_MAX_HEAD_DIM={}): {}",
            max_head_dim.unwrap_or_default(),
            case.name()
        );
    }
    assert!(!to_check.is_empty(), "no {kernel} case was checked");
    let failures = on_own_devices(&to_check, |gpu, case| {
        check_case(gpu, case.as_ref(), run_seed)
    });
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn matmul_matches_reference() {
    check_kernel("matmul");
}

#[test]
fn attention_matches_reference() {
    check_kernel("attention");
}

#[test]
fn unfused_attention_matches_reference() {
    check_kernel("attention_unfused");
}

#[test]
fn softmax_matches_reference() {
    check_kernel("softmax");
}

#[test]
fn layer_norm_matches_reference() {
    check_kernel("layer_norm");
}

#[test]
fn rms_norm_matches_reference() {
    check_kernel("rms_norm");
}

#[test]
fn rope_matches_reference() {
    check_kernel("rope");
}

#[test]
fn column_moments_match_reference() {
    check_kernel("column_moments");
}

#[test]
fn lm_head_matches_reference() {
    check_kernel("lm_head");
}

#[test]
fn elementwise_add_matches_reference() {
    check_kernel("add");
}

#[test]
fn elementwise_mul_matches_reference() {
    check_kernel("mul");
}

#[test]
fn every_registered_kernel_is_checked() {
    let registered: BTreeSet<&str> = cases::checks().iter().map(|c| c.kernel()).collect();
    let benched: BTreeSet<&str> = cases::benches(true).iter().map(|c| c.kernel()).collect();
    let tested: BTreeSet<&str> = TESTED.iter().copied().collect();
    assert_eq!(registered, tested, "a registered kernel has no test above");
    assert_eq!(benched, tested, "a registered kernel is not benched");
}

/// The harness fails what it should: a kernel that writes nothing leaves the NaN poison,
/// and an output off by more than its tolerance fails.
#[test]
fn the_harness_fails_a_wrong_kernel() {
    struct Broken(MatmulCase, f32);
    impl KernelCase for Broken {
        fn kernel(&self) -> &'static str {
            "broken"
        }
        fn label(&self) -> String {
            self.0.label()
        }
        fn inputs(&self) -> Vec<cases::TensorSpec> {
            self.0.inputs()
        }
        fn outputs(&self) -> Vec<cases::TensorSpec> {
            self.0.outputs()
        }
        fn launch(
            &self,
            gpu: &ceiling_host::Gpu,
            v: cases::Variant,
            x: &[ceiling_host::Tensor],
            host: &[Vec<f32>],
            out: &[ceiling_host::Tensor],
        ) -> ceiling_host::Result<String> {
            if self.1 == 0.0 {
                return Ok("writes nothing".into());
            }
            // Scale a by (1 + error) before the real kernel runs.
            let a: Vec<f32> = host[0].iter().map(|v| v * (1.0 + self.1)).collect();
            let a = gpu.upload("a", &a, x[0].precision)?;
            let b = gpu.upload("b", &host[1], x[1].precision)?;
            self.0.launch(gpu, v, &[a, b], host, out)
        }
        fn reference(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
            self.0.reference(x)
        }
        fn flops(&self) -> f64 {
            0.0
        }
    }
    let gpu = gpu();
    let only = cases::Variant::Matmul(MatmulKernel::Auto);
    let nothing = Broken(MatmulCase::new(5, 6, 7), 0.0);
    let r = cases::check(gpu, &nothing, only, Precision::F32, 1).unwrap();
    assert!(!r.passed() && r.outputs[0].error.is_infinite(), "{r}");
    let off = Broken(MatmulCase::new(5, 6, 7), 1e-3);
    let r = cases::check(gpu, &off, only, Precision::F32, 1).unwrap();
    assert!(!r.passed() && r.outputs[0].error > 5e-4, "{r}");
    let right = Broken(MatmulCase::new(5, 6, 7), 1e-9);
    assert!(cases::check(gpu, &right, only, Precision::F32, 1)
        .unwrap()
        .passed());
}

/// An `a` larger than one storage binding is processed in row chunks (n = 3: the scalar
/// kernel; n = 4: the vec4 kernel).
#[test]
fn matmul_larger_than_one_binding_is_split() {
    let gpu = gpu();
    let k = 64;
    let m = (gpu.max_binding() as usize / (4 * k)) + 1000;
    for n in [3, 4] {
        let mut case = MatmulCase::new(m, k, n);
        case.bias = true;
        assert!((case.shape.a_len() * 4) as u64 > gpu.max_binding());
        let r = cases::check(
            gpu,
            &case,
            cases::Variant::Matmul(MatmulKernel::Auto),
            Precision::F32,
            7,
        )
        .unwrap();
        eprintln!("{r}");
        assert!(r.passed(), "{r}");
    }
}

#[test]
fn norms_split_rows_beyond_one_binding() {
    let gpu = gpu();
    let cols = 1024;
    let rows = gpu.max_binding() as usize / (4 * cols) + 5;
    for kind in [NormKind::Layer, NormKind::Rms] {
        let case = NormCase {
            kind,
            rows,
            cols,
            eps: 1e-5,
        };
        let r = cases::check(gpu, &case, cases::Variant::Only, Precision::F32, 3).unwrap();
        eprintln!("{r}");
        assert!(r.passed(), "{r}");
    }
}

/// The plans the matmul checks rely on: vec4 checked where its block does not divide the
/// shape, unchecked where it does.
#[test]
fn matmul_plans_check_bounds_only_where_needed() {
    let gpu = gpu();
    for (m, k, n, checked) in [
        (7, 12, 20, true),
        (130, 260, 68, true),
        (128, 32, 128, false),
    ] {
        let plan = MatmulPlan::choose(gpu, &MatmulShape::new(m, k, n), MatmulKernel::Auto).unwrap();
        assert_eq!(
            plan,
            MatmulPlan::Vec4 {
                tiles: Vec4Tiles::default(),
                checked
            },
            "{m}x{k}x{n}"
        );
    }
    let mut batched = MatmulShape::new(128, 48, 64);
    (batched.batch, batched.b_group) = (6, 3);
    let plan = MatmulPlan::choose(gpu, &batched, MatmulKernel::Auto).unwrap();
    assert!(
        matches!(plan, MatmulPlan::Vec4 { checked: false, .. }),
        "{plan}"
    );
}

/// Auto takes the scalar kernel where a row of b or out would not start on a vec4, and an
/// explicit vec4 request on such a shape is refused with the reason.
#[test]
fn vec4_matmul_is_never_chosen_for_shapes_it_cannot_run() {
    let gpu = gpu();
    for (k, n) in [(3, 4), (4, 6), (65, 33)] {
        let shape = MatmulShape::new(8, k, n);
        let plan = MatmulPlan::choose(gpu, &shape, MatmulKernel::Auto).unwrap();
        assert!(matches!(plan, MatmulPlan::Scalar(_)), "k {k} n {n}: {plan}");
        let err = MatmulPlan::choose(gpu, &shape, MatmulKernel::Vec4(Vec4Tiles::default()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("divisible by 4"), "{err}");
    }
}

/// Runs the kernel and checks every row (or the `check` rows) against the reference.
fn lm_head_rows(what: &str, rows: usize, d: usize, vocab: usize, scale: f32, check: &[usize]) {
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

/// All-equal logits: the entropy is ln(vocab), the lse ln(vocab) too; ties go to the
/// first index.
#[test]
fn lm_head_equal_logits_and_ties() {
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
    lm_head_rows("many rows", rows, 4, vocab, 1.0, &check);
}

#[test]
fn lm_head_bad_inputs_are_refused() {
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

#[test]
fn bad_input_gets_clear_errors() {
    let gpu = gpu();
    let t = |n| gpu.upload("t", &vec![0.5; n], Precision::F32).unwrap();
    let (a, b, out) = (t(6), t(6), t(4));
    // Mismatched shapes.
    let err = kernels::matmul(
        gpu,
        &MatmulShape::new(2, 3, 3),
        &a,
        &b,
        None,
        None,
        Activation::None,
        &out,
        MatmulKernel::Auto,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("expected 9 elements, got 6"),
        "{err}"
    );
    // Zero sizes.
    let err = kernels::matmul(
        gpu,
        &MatmulShape::new(0, 3, 2),
        &a,
        &b,
        None,
        None,
        Activation::None,
        &out,
        MatmulKernel::Auto,
    )
    .unwrap_err();
    assert!(err.to_string().contains("m must be at least 1"), "{err}");
    // Beyond the device limits.
    let err = kernels::matmul(
        gpu,
        &MatmulShape::new(2, 3, 2),
        &a,
        &b,
        None,
        None,
        Activation::None,
        &out,
        MatmulKernel::Scalar(MatmulTiles {
            wg_x: 64,
            wg_y: 64,
            tile_k: 16,
        }),
    )
    .unwrap_err();
    assert!(matches!(err, HostError::Limit { .. }), "{err}");
    // NaN input.
    let err = gpu
        .upload("x", &[1.0, f32::NAN], Precision::F32)
        .err()
        .unwrap();
    assert!(err.to_string().contains("NaN"), "{err}");
    // Precision mismatch.
    if gpu.has_f16() {
        let h = gpu.upload("h", &[0.5; 4], Precision::F16).unwrap();
        let err = kernels::layer_norm(gpu, &h, 2, &t(2), &t(2), 1e-5, &t(4)).unwrap_err();
        assert!(err.to_string().contains("stored as f16"), "{err}");
    }
    let err = kernels::layer_norm(gpu, &t(6), 4, &t(4), &t(4), 1e-5, &t(6)).unwrap_err();
    assert!(err.to_string().contains("do not form rows"), "{err}");
}

#[test]
fn f16_on_an_adapter_without_f16_is_a_clear_error() {
    let gpu = ceiling_host::Gpu::new(&ceiling_host::AdapterRequest {
        without_f16: true,
        ..Default::default()
    })
    .unwrap();
    let err = gpu.upload("x", &[1.0; 4], Precision::F16).err().unwrap();
    let msg = err.to_string();
    assert!(msg.contains("does not offer shader-f16"), "{msg}");
    assert!(msg.contains("use f32 storage"), "{msg}");
}

#[test]
fn a_missing_adapter_is_an_error_that_names_the_fix() {
    let err = ceiling_host::Gpu::new(&ceiling_host::AdapterRequest {
        name: Some("no-such-adapter-anywhere".into()),
        ..Default::default()
    })
    .err()
    .expect("no adapter has that name");
    let msg = err.to_string();
    assert!(
        msg.contains("whose name contains 'no-such-adapter-anywhere'"),
        "{msg}"
    );
    // Adapters exist, just none of that name: it lists them instead of a driver to install.
    assert!(msg.contains(gpu().name()), "{msg}");
    assert!(!msg.contains("apt-get"), "{msg}");
}

/// Threads sharing one device: each one's results are read only after its own work ran
/// (a submit taken by one thread must not be overtaken by another's).
#[test]
fn threads_sharing_the_device_read_their_own_finished_results() {
    let gpu = gpu();
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                let mut rng = rng(&format!("threads-{t}"));
                for _ in 0..25 {
                    let shape = MatmulShape::new(9, 17, 5);
                    let (a, b) = (
                        random(&mut rng, shape.a_len()),
                        random(&mut rng, shape.b_len()),
                    );
                    let out = gpu
                        .nan_tensor("out", shape.out_len(), Precision::F32)
                        .unwrap();
                    kernels::matmul(
                        gpu,
                        &shape,
                        &gpu.upload("a", &a, Precision::F32).unwrap(),
                        &gpu.upload("b", &b, Precision::F32).unwrap(),
                        None,
                        None,
                        Activation::None,
                        &out,
                        MatmulKernel::Auto,
                    )
                    .unwrap();
                    let want = reference::matmul(
                        &shape,
                        &stored(&a, Precision::F32),
                        &stored(&b, Precision::F32),
                        None,
                        None,
                        Activation::None,
                    );
                    let e = reference::compare(&gpu.download(&out).unwrap(), &want);
                    assert!(e.rel < 1e-5, "thread {t}: {e}");
                }
            });
        }
    });
}

/// Full autotuning times the candidates, runs the winner (still matching the reference),
/// and caches it per adapter; a cached-only tuner then takes the cached plan without
/// timing anything, and a corrupt cache is ignored rather than an error.
#[test]
fn autotune_caches_the_fastest_plan_and_reuses_it() {
    use ceiling_host::autotune::Tuner;
    use ceiling_host::{AdapterRequest, Autotune, Gpu};
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rng("autotune");
    let mut gpu = Gpu::new(&AdapterRequest::default()).unwrap();
    gpu.tuner = Tuner::in_dir(Autotune::Full, "test adapter", dir.path());
    let shape = MatmulShape::new(100, 64, 96);
    let a = random(&mut rng, shape.a_len());
    let b = random(&mut rng, shape.b_len());
    let ta = gpu.upload("a", &a, Precision::F32).unwrap();
    let tb = gpu.upload("b", &b, Precision::F32).unwrap();
    let run = |gpu: &Gpu| {
        let out = gpu
            .nan_tensor("out", shape.out_len(), Precision::F32)
            .unwrap();
        let plan = kernels::matmul(
            gpu,
            &shape,
            &ta,
            &tb,
            None,
            None,
            Activation::None,
            &out,
            MatmulKernel::Auto,
        )
        .unwrap();
        (plan, gpu.download(&out).unwrap())
    };
    let (tuned, got) = run(&gpu);
    let want = reference::matmul(
        &shape,
        &stored(&a, Precision::F32),
        &stored(&b, Precision::F32),
        None,
        None,
        Activation::None,
    );
    assert_close(
        &format!("tuned matmul ({tuned})"),
        &got,
        &want,
        tolerance(Precision::F32),
    );
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let cache = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        cache.contains("matmul f32") && cache.contains("\"version\": 1"),
        "{cache}"
    );
    assert!(gpu
        .tuner
        .take_plans_used()
        .values()
        .any(|p| *p == tuned.to_string()));

    gpu.tuner = Tuner::in_dir(Autotune::Cached, "test adapter", dir.path());
    assert_eq!(run(&gpu).0, tuned);
    // Another adapter's cache holds nothing for this one: the built-in rules apply.
    gpu.tuner = Tuner::in_dir(Autotune::Cached, "other adapter", dir.path());
    let rules = MatmulPlan::choose(&gpu, &shape, MatmulKernel::Auto).unwrap();
    assert_eq!(run(&gpu).0, rules);
    std::fs::write(&files[0], "{ not json").unwrap();
    gpu.tuner = Tuner::in_dir(Autotune::Cached, "test adapter", dir.path());
    assert_eq!(run(&gpu).0, rules);
}

#[test]
fn rope_bad_shapes_are_refused() {
    let gpu = gpu();
    let t = gpu.upload("x", &[1.0; 10], Precision::F32).unwrap();
    let e = kernels::rope(gpu, &t, 5, 2, 3, 10000.0, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rot_dim 3 must be even"), "{e}");
    let e = kernels::rope(gpu, &t, 3, 2, 2, 10000.0, 0)
        .unwrap_err()
        .to_string();
    assert!(e.contains("do not form rows"), "{e}");
}
