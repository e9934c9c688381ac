//! Matmul, norms and softmax on a real adapter against the f64 references.

mod common;

use ceiling_core::kernel::{Activation, MatmulShape, SoftmaxShape};
use ceiling_core::reference;
use ceiling_host::kernels::{self, MatmulKernel, MatmulPlan, MatmulTiles, Vec4Tiles};
use ceiling_host::HostError;
use ceiling_shaders::Precision;
use common::*;

fn run_matmul(
    shape: MatmulShape,
    precision: Precision,
    bias: bool,
    residual: bool,
    act: Activation,
    kernel: MatmulKernel,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> MatmulPlan {
    let gpu = gpu();
    let a = random(rng, shape.a_len());
    let b = random(rng, shape.b_len());
    let bias_v = random(rng, shape.n);
    let res_v = random(rng, shape.out_len());
    let up = |name, v: &[f32]| gpu.upload(name, v, precision).unwrap();
    let (ta, tb, tbias, tres) = (
        up("a", &a),
        up("b", &b),
        up("bias", &bias_v),
        up("r", &res_v),
    );
    let out = gpu.nan_tensor("out", shape.out_len(), precision).unwrap();
    let plan = kernels::matmul(
        gpu,
        &shape,
        &ta,
        &tb,
        bias.then_some(&tbias),
        residual.then_some(&tres),
        act,
        &out,
        kernel,
    )
    .unwrap();
    let got = gpu.download(&out).unwrap();
    let want = reference::matmul(
        &shape,
        &stored(&a, precision),
        &stored(&b, precision),
        bias.then(|| stored(&bias_v, precision)).as_deref(),
        residual.then(|| stored(&res_v, precision)).as_deref(),
        act,
    );
    assert_close(
        &format!("matmul {shape:?} {precision} bias={bias} res={residual} {act:?} ({plan})"),
        &got,
        &want,
        tolerance(precision),
    );
    plan
}

#[test]
fn matmul_matches_reference_on_awkward_shapes() {
    let mut rng = rng("matmul");
    for precision in precisions() {
        for (m, k, n) in [
            (1, 1, 1),
            (7, 3, 5),
            (63, 65, 33),
            (65, 63, 1),
            (1, 1000, 7),
            (130, 257, 66),
            (256, 64, 256),
        ] {
            for kernel in [
                MatmulKernel::Auto,
                MatmulKernel::Scalar(MatmulTiles::default()),
            ] {
                run_matmul(
                    MatmulShape::new(m, k, n),
                    precision,
                    false,
                    false,
                    Activation::None,
                    kernel,
                    &mut rng,
                );
            }
        }
    }
}

#[test]
fn matmul_epilogues_and_layouts() {
    let mut rng = rng("matmul-epilogue");
    for precision in precisions() {
        for act in [
            Activation::None,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
        ] {
            run_matmul(
                MatmulShape::new(37, 70, 45),
                precision,
                true,
                act == Activation::Gelu,
                act,
                MatmulKernel::Auto,
                &mut rng,
            );
        }
        // Batched, transposed b shared by groups of 3 batches (grouped-query attention).
        let shape = MatmulShape {
            batch: 6,
            m: 19,
            k: 24,
            n: 31,
            trans_b: true,
            b_group: 3,
        };
        run_matmul(
            shape,
            precision,
            false,
            true,
            Activation::None,
            MatmulKernel::Auto,
            &mut rng,
        );
    }
}

#[test]
fn matmul_tile_overrides() {
    let mut rng = rng("matmul-tiles");
    for tiles in [
        MatmulTiles {
            wg_x: 8,
            wg_y: 8,
            tile_k: 8,
        },
        MatmulTiles {
            wg_x: 16,
            wg_y: 8,
            tile_k: 32,
        },
        MatmulTiles {
            wg_x: 8,
            wg_y: 16,
            tile_k: 4,
        },
    ] {
        run_matmul(
            MatmulShape::new(45, 77, 90),
            Precision::F32,
            true,
            false,
            Activation::None,
            MatmulKernel::Scalar(tiles),
            &mut rng,
        );
    }
}

/// An `a` larger than one storage binding is processed in row chunks.
#[test]
fn matmul_larger_than_one_binding_is_split() {
    let gpu = gpu();
    let mut rng = rng("matmul-split");
    let k = 64;
    let m = (gpu.max_binding() as usize / (4 * k)) + 1000;
    // n = 3: the scalar kernel; n = 4: the vec4 kernel.
    for n in [3, 4] {
        let shape = MatmulShape::new(m, k, n);
        eprintln!(
            "a is {} MiB, binding limit {} MiB",
            (shape.a_len() * 4) >> 20,
            gpu.max_binding() >> 20
        );
        assert!((shape.a_len() * 4) as u64 > gpu.max_binding());
        run_matmul(
            shape,
            Precision::F32,
            true,
            false,
            Activation::None,
            MatmulKernel::Auto,
            &mut rng,
        );
    }
}

/// The vec4 kernel: checked on shapes its 128 x 64 x 16 block does not divide (any m, k and
/// n multiples of 4), unchecked only where it does; both layouts of b, batches sharing b,
/// every epilogue, f32 and f16.
#[test]
fn vec4_matmul_matches_reference_checked_and_unchecked() {
    let mut rng = rng("matmul-vec4");
    let unchecked = |plan: MatmulPlan| matches!(plan, MatmulPlan::Vec4 { checked: false, .. });
    for precision in precisions() {
        for (m, k, n) in [
            (1, 4, 4),
            (7, 12, 20),
            (63, 68, 36),
            (65, 4, 132),
            (130, 260, 68),
        ] {
            for trans_b in [false, true] {
                let mut shape = MatmulShape::new(m, k, n);
                shape.trans_b = trans_b;
                let plan = run_matmul(
                    shape,
                    precision,
                    false,
                    false,
                    Activation::None,
                    MatmulKernel::Auto,
                    &mut rng,
                );
                assert!(
                    matches!(plan, MatmulPlan::Vec4 { checked: true, .. }),
                    "{plan}"
                );
            }
        }
        for trans_b in [false, true] {
            let shape = MatmulShape {
                batch: 6,
                m: 128,
                k: 48,
                n: 64,
                trans_b,
                b_group: 3,
            };
            let plan = run_matmul(
                shape,
                precision,
                false,
                true,
                Activation::None,
                MatmulKernel::Auto,
                &mut rng,
            );
            assert!(unchecked(plan), "{plan}");
        }
        for act in [
            Activation::None,
            Activation::Gelu,
            Activation::GeluTanh,
            Activation::Silu,
        ] {
            let plan = run_matmul(
                MatmulShape::new(128, 32, 128),
                precision,
                true,
                act != Activation::None,
                act,
                MatmulKernel::Auto,
                &mut rng,
            );
            assert!(unchecked(plan), "{plan}");
        }
        // Other workgroup shapes and k stages through the plan.
        for tiles in [
            Vec4Tiles {
                wg_x: 4,
                wg_y: 8,
                bk: 8,
            },
            Vec4Tiles {
                wg_x: 16,
                wg_y: 4,
                bk: 32,
            },
        ] {
            run_matmul(
                MatmulShape::new(70, 96, 136),
                precision,
                true,
                false,
                Activation::Silu,
                MatmulKernel::Vec4(tiles),
                &mut rng,
            );
        }
    }
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

fn norm_case(rows: usize, cols: usize, precision: Precision, rng: &mut rand_chacha::ChaCha8Rng) {
    let gpu = gpu();
    // An offset mean makes the centring matter.
    let x: Vec<f32> = random(rng, rows * cols)
        .iter()
        .map(|v| v * 3.0 + 2.0)
        .collect();
    let g = random(rng, cols);
    let b = random(rng, cols);
    let (tx, tg, tb) = (
        gpu.upload("x", &x, precision).unwrap(),
        gpu.upload("g", &g, precision).unwrap(),
        gpu.upload("b", &b, precision).unwrap(),
    );
    let eps = 1e-5;
    let out = gpu.nan_tensor("out", x.len(), precision).unwrap();
    kernels::layer_norm(gpu, &tx, cols, &tg, &tb, eps, &out).unwrap();
    let want = reference::layer_norm(
        &stored(&x, precision),
        cols,
        &stored(&g, precision),
        &stored(&b, precision),
        eps as f64,
    );
    let tol = tolerance(precision);
    assert_close(
        &format!("layer_norm {rows}x{cols} {precision}"),
        &gpu.download(&out).unwrap(),
        &want,
        tol,
    );
    let out = gpu.nan_tensor("out", x.len(), precision).unwrap();
    kernels::rms_norm(gpu, &tx, cols, &tg, eps, &out).unwrap();
    let want = reference::rms_norm(
        &stored(&x, precision),
        cols,
        &stored(&g, precision),
        eps as f64,
    );
    assert_close(
        &format!("rms_norm {rows}x{cols} {precision}"),
        &gpu.download(&out).unwrap(),
        &want,
        tol,
    );
}

#[test]
fn norms_match_reference() {
    let mut rng = rng("norms");
    for precision in precisions() {
        for (rows, cols) in [(1, 1), (7, 3), (63, 65), (3, 1000), (100, 384), (2, 4099)] {
            norm_case(rows, cols, precision, &mut rng);
        }
    }
}

#[test]
fn norms_split_rows_beyond_one_binding() {
    let gpu = gpu();
    let mut rng = rng("norm-split");
    let cols = 1024;
    let rows = gpu.max_binding() as usize / (4 * cols) + 5;
    norm_case(rows, cols, Precision::F32, &mut rng);
}

#[test]
fn softmax_matches_reference_with_masks() {
    let gpu = gpu();
    let mut rng = rng("softmax");
    for precision in precisions() {
        for (batch, heads, q_len, cols, causal, masked) in [
            (1, 1, 1, 1, false, false),
            (1, 1, 7, 7, true, false),
            (2, 3, 5, 9, true, true),
            (1, 2, 63, 65, false, true),
            (1, 1, 3, 1000, false, false),
        ] {
            let rows = batch * heads * q_len;
            let shape = SoftmaxShape {
                rows,
                cols,
                scale: 3.7,
                causal,
                q_len,
                rows_per_batch: heads * q_len,
            };
            let x = random(&mut rng, rows * cols);
            // Mask about a third of the keys; with several batches, every key of batch 0:
            // a fully masked row must come out as zeros.
            let mask: Vec<f32> = (0..batch * cols)
                .map(|i| {
                    let all = batch > 1 && i < cols;
                    if all || rand::Rng::random_bool(&mut rng, 0.33) {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            let tx = gpu.upload("x", &x, precision).unwrap();
            let tm = gpu.upload("mask", &mask, Precision::F32).unwrap();
            let out = gpu.nan_tensor("out", x.len(), precision).unwrap();
            kernels::softmax(gpu, &shape, &tx, masked.then_some(&tm), &out).unwrap();
            let mask64 = stored(&mask, Precision::F32);
            let want =
                reference::softmax_rows(&shape, &stored(&x, precision), masked.then_some(&mask64));
            assert_close(
                &format!("softmax {shape:?} masked={masked} {precision}"),
                &gpu.download(&out).unwrap(),
                &want,
                tolerance(precision),
            );
        }
    }
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
