//! `ceiling kernel ...` end to end: the real binary on safetensors files of fresh random
//! data, its output compared with the f64 reference; and bad files refused with clear errors.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape, SoftmaxShape};
use ceiling_core::reference;
use ceiling_shaders::Precision;
use common::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// One tensor to write into an input file.
struct In {
    name: &'static str,
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Vec<u8>,
}

impl In {
    fn f32(name: &'static str, shape: &[usize], data: &[f32]) -> Self {
        Self::encode(name, shape, data, Dtype::F32)
    }

    /// F32, F16 or BF16 bytes of `data` (rounded to that dtype).
    fn encode(name: &'static str, shape: &[usize], data: &[f32], dtype: Dtype) -> Self {
        assert_eq!(shape.iter().product::<usize>(), data.len(), "{name}");
        let bytes = dtype_bytes(data, dtype);
        In {
            name,
            shape: shape.to_vec(),
            dtype,
            bytes,
        }
    }
}

fn write_input(path: &Path, tensors: &[In]) {
    let views: Vec<_> = tensors
        .iter()
        .map(|t| {
            (
                t.name,
                TensorView::new(t.dtype, t.shape.clone(), &t.bytes).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Output tensors: name -> (dtype, shape, values as f32).
fn read_output(path: &Path) -> HashMap<String, (Dtype, Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match v.dtype() {
                Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                    .collect(),
                Dtype::F16 => v
                    .data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                d => panic!("unexpected output dtype {d:?}"),
            };
            (name, (v.dtype(), v.shape().to_vec(), data))
        })
        .collect()
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs `ceiling kernel <args>` (lavapipe through Vulkan unless WGPU_BACKEND says otherwise).
fn ceiling(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ceiling"));
    cmd.arg("kernel").args(args);
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let out = cmd.output().expect("running the ceiling binary");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "ceiling kernel {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

struct Files {
    _dir: tempfile::TempDir,
    input: PathBuf,
    output: PathBuf,
}

impl Files {
    fn new(tensors: &[In]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        let output = dir.path().join("out.safetensors");
        write_input(&input, tensors);
        Files {
            _dir: dir,
            input,
            output,
        }
    }

    /// Runs `kernel` on the input; asserts success and that no temporary file is left.
    fn run_ok(
        &self,
        kernel: &str,
        extra: &[&str],
    ) -> HashMap<String, (Dtype, Vec<usize>, Vec<f32>)> {
        let run = self.run(kernel, extra);
        assert!(run.ok, "ceiling kernel {kernel} failed: {}", run.stderr);
        assert!(
            run.stdout.contains(" ms -> "),
            "no summary line: {}",
            run.stdout
        );
        let left: Vec<_> = std::fs::read_dir(self.output.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tmp"))
            .collect();
        assert!(left.is_empty(), "temporary output left behind: {left:?}");
        read_output(&self.output)
    }

    /// Runs `kernel`, expects failure with every one of `needles` in stderr and no output.
    fn run_err(&self, kernel: &str, extra: &[&str], needles: &[&str]) {
        let run = self.run(kernel, extra);
        assert!(!run.ok, "expected failure, got: {}", run.stdout);
        for n in needles {
            assert!(run.stderr.contains(n), "stderr lacks {n:?}: {}", run.stderr);
        }
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert!(!self.output.exists(), "output written despite the error");
    }

    fn run(&self, kernel: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            kernel,
            "--input",
            self.input.to_str().unwrap(),
            "--output",
            self.output.to_str().unwrap(),
        ];
        args.extend(extra);
        ceiling(&args)
    }
}

fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Checks `out` (and the stats when present) of an attention run against the reference.
fn check_attention(
    got: &HashMap<String, (Dtype, Vec<usize>, Vec<f32>)>,
    want: &reference::AttentionOutput,
    s: &AttentionShape,
    precision: Precision,
) {
    let (dtype, shape, out) = &got["out"];
    let want_dtype = match precision {
        Precision::F32 => Dtype::F32,
        Precision::F16 => Dtype::F16,
    };
    assert_eq!(*dtype, want_dtype);
    assert_eq!(shape, &[s.batch, s.heads, s.n_q, s.head_dim]);
    assert_close("attention out", out, &want.out, tolerance(precision));
    for (name, w) in [
        ("lse", &want.lse),
        ("n_eff", &want.n_eff),
        ("entropy", &want.entropy),
    ] {
        let (dtype, shape, g) = &got[name];
        assert_eq!(*dtype, Dtype::F32, "{name}");
        assert_eq!(shape, &[s.batch, s.heads, s.n_q], "{name}");
        // Fully masked rows must be exactly (-inf, 0, 0); compare the others.
        for (g, w) in g.iter().zip(w.iter()).filter(|(_, w)| !w.is_finite()) {
            assert!(*w == f64::NEG_INFINITY && *g == f32::NEG_INFINITY, "{name}");
        }
        for (i, g) in g.iter().enumerate() {
            if want.lse[i] == f64::NEG_INFINITY && name != "lse" {
                assert_eq!(*g, 0.0, "{name} of fully masked row {i}");
            }
        }
        let (g, w): (Vec<f32>, Vec<f64>) = g
            .iter()
            .zip(w.iter())
            .filter(|(_, w)| w.is_finite())
            .map(|(g, w)| (*g, *w))
            .unzip();
        assert_close(name, &g, &w, tolerance(precision));
    }
}

#[test]
fn attention_causal_gqa_with_mask() {
    let mut rng = rng("attention_causal_gqa_with_mask");
    let mut s = AttentionShape::new(2, 4, 5, 24);
    s.kv_heads = 2;
    s.n_kv = 9;
    s.causal = true;
    s.scale = 0.3;
    let q = random(&mut rng, s.q_len());
    let k = random(&mut rng, s.kv_len());
    let v = random(&mut rng, s.kv_len());
    // Batch 0: random keep/drop, always keeping the last key so no causal row is empty.
    // Batch 1: fully masked, which must give zeros and (-inf, 0, 0) stats, never NaN.
    let mask: Vec<f32> = (0..s.batch * s.n_kv)
        .map(|i| {
            let keep = i == s.n_kv - 1 || rand::Rng::random_bool(&mut rng, 0.6);
            (i < s.n_kv && keep) as u8 as f32
        })
        .collect();
    let files = Files::new(&[
        In::f32("q", &[2, 4, 5, 24], &q),
        In::f32("k", &[2, 2, 9, 24], &k),
        In::f32("v", &[2, 2, 9, 24], &v),
        In::f32("mask", &[2, 9], &mask),
    ]);
    let want = reference::attention(&s, &f64s(&q), &f64s(&k), &f64s(&v), Some(&f64s(&mask)));
    for kernel in ["auto", "portable"] {
        let got = files.run_ok(
            "attention",
            &["--causal", "--scale", "0.3", "--kernel", kernel],
        );
        check_attention(&got, &want, &s, Precision::F32);
    }
    // The unfused baseline writes only `out`.
    let got = files.run_ok(
        "attention",
        &["--causal", "--scale", "0.3", "--kernel", "unfused"],
    );
    assert_eq!(got.len(), 1);
    assert_close("unfused out", &got["out"].2, &want.out, 1e-5);
}

#[test]
fn attention_f16_from_f16_file() {
    if !precisions().contains(&Precision::F16) {
        eprintln!("adapter lacks shader-f16: f16 attention not tested");
        return;
    }
    let mut rng = rng("attention_f16_from_f16_file");
    let mut s = AttentionShape::new(1, 3, 7, 16);
    s.n_kv = 6;
    let q = random(&mut rng, s.q_len());
    let k = random(&mut rng, s.kv_len());
    let v = random(&mut rng, s.kv_len());
    // F16 in the file: the reference sees exactly the values the kernel gets.
    let files = Files::new(&[
        In::encode("q", &[1, 3, 7, 16], &q, Dtype::F16),
        In::encode("k", &[1, 3, 6, 16], &k, Dtype::F16),
        In::encode("v", &[1, 3, 6, 16], &v, Dtype::F16),
    ]);
    let p = Precision::F16;
    let want = reference::attention(&s, &stored(&q, p), &stored(&k, p), &stored(&v, p), None);
    let got = files.run_ok("attention", &["--f16"]);
    check_attention(&got, &want, &s, p);
}

#[test]
fn matmul_bias_gelu_batched() {
    let mut rng = rng("matmul_bias_gelu_batched");
    let (batch, m, k, n) = (2, 5, 19, 13);
    let a = random(&mut rng, batch * m * k);
    let b = random(&mut rng, k * n);
    let bias = random(&mut rng, n);
    let files = Files::new(&[
        In::f32("a", &[batch, m, k], &a),
        In::f32("b", &[k, n], &b),
        In::f32("bias", &[n], &bias),
    ]);
    let got = files.run_ok("matmul", &["--activation", "gelu"]);
    let (_, shape, out) = &got["out"];
    assert_eq!(shape, &[batch, m, n]);
    let want = reference::matmul(
        &MatmulShape::new(batch * m, k, n),
        &f64s(&a),
        &f64s(&b),
        Some(&f64s(&bias)),
        None,
        Activation::Gelu,
    );
    assert_close("matmul", out, &want, 1e-5);
}

#[test]
fn matmul_f16_with_residual_and_silu() {
    let mut rng = rng("matmul_f16_with_residual_and_silu");
    let (m, k, n) = (7, 33, 10);
    let a = random(&mut rng, m * k);
    let b = random(&mut rng, k * n);
    let r = random(&mut rng, m * n);
    let files = Files::new(&[
        In::f32("a", &[m, k], &a),
        In::f32("b", &[k, n], &b),
        In::f32("residual", &[m, n], &r),
    ]);
    let got = files.run_ok("matmul", &["--activation", "silu", "--f16"]);
    let (dtype, shape, out) = &got["out"];
    assert_eq!((dtype, shape.as_slice()), (&Dtype::F16, &[m, n][..]));
    let want = reference::matmul(
        &MatmulShape::new(m, k, n),
        &stored(&a, Precision::F16),
        &stored(&b, Precision::F16),
        None,
        Some(&stored(&r, Precision::F16)),
        Activation::Silu,
    );
    assert_close("matmul f16 silu + residual", out, &want, 2e-3);
}

#[test]
fn attention_forced_subgroup_kernel() {
    let mut rng = rng("attention_forced_subgroup_kernel");
    let (b, h, n, d) = (1, 2, 11, 32);
    let q = random(&mut rng, b * h * n * d);
    let k = random(&mut rng, b * h * n * d);
    let v = random(&mut rng, b * h * n * d);
    let files = Files::new(&[
        In::f32("q", &[b, h, n, d], &q),
        In::f32("k", &[b, h, n, d], &k),
        In::f32("v", &[b, h, n, d], &v),
    ]);
    let got = files.run_ok("attention", &["--kernel", "subgroup", "--causal"]);
    let mut shape = AttentionShape::new(b, h, n, d);
    shape.causal = true;
    let want = reference::attention(&shape, &f64s(&q), &f64s(&k), &f64s(&v), None);
    assert_close("attention subgroup", &got["out"].2, &want.out, 1e-5);
    assert_close("n_eff subgroup", &got["n_eff"].2, &want.n_eff, 1e-4);
}

#[test]
fn layer_norm_from_bf16_and_rms_norm() {
    let mut rng = rng("layer_norm_from_bf16_and_rms_norm");
    let (rows, cols) = (6, 37);
    // BF16 in the file, rounded here the same way, then run in f32.
    let round = |x: Vec<f32>| -> Vec<f32> {
        x.iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect()
    };
    let x = round(random(&mut rng, rows * cols));
    let gamma = round(random(&mut rng, cols));
    let beta = round(random(&mut rng, cols));
    let files = Files::new(&[
        In::encode("x", &[2, 3, cols], &x, Dtype::BF16),
        In::encode("gamma", &[cols], &gamma, Dtype::BF16),
        In::encode("beta", &[cols], &beta, Dtype::BF16),
    ]);
    let got = files.run_ok("layer-norm", &["--eps", "1e-4"]);
    let (_, shape, out) = &got["out"];
    assert_eq!(shape, &[2, 3, cols]);
    let want = reference::layer_norm(&f64s(&x), cols, &f64s(&gamma), &f64s(&beta), 1e-4);
    assert_close("layer_norm", out, &want, 1e-5);

    let files = Files::new(&[
        In::f32("x", &[rows, cols], &x),
        In::f32("gamma", &[cols], &gamma),
    ]);
    let got = files.run_ok("rms-norm", &[]);
    let want = reference::rms_norm(&f64s(&x), cols, &f64s(&gamma), 1e-5);
    assert_close("rms_norm", &got["out"].2, &want, 1e-5);
}

#[test]
fn softmax_with_scale() {
    let mut rng = rng("softmax_with_scale");
    let (rows, cols) = (7, 45);
    let x = random(&mut rng, rows * cols);
    let files = Files::new(&[In::f32("x", &[rows, cols], &x)]);
    let got = files.run_ok("softmax", &["--scale", "3.5"]);
    let mut shape = SoftmaxShape::plain(rows, cols);
    shape.scale = 3.5;
    let want = reference::softmax_rows(&shape, &f64s(&x), None);
    assert_close("softmax", &got["out"].2, &want, 1e-5);
}

/// A small valid attention input, for the error cases to break.
fn qkv(k_shape: &[usize]) -> Vec<In> {
    let mut rng = rng("qkv");
    let kv_len: usize = k_shape.iter().product();
    vec![
        In::f32("q", &[1, 2, 3, 8], &random(&mut rng, 48)),
        In::f32("k", k_shape, &random(&mut rng, kv_len)),
        In::f32("v", k_shape, &random(&mut rng, kv_len)),
    ]
}

#[test]
fn missing_tensor_is_named() {
    let mut t = qkv(&[1, 2, 4, 8]);
    t.remove(1);
    Files::new(&t).run_err("attention", &[], &["missing tensor `k`", "it has: q, v"]);
}

#[test]
fn unexpected_name_is_named() {
    let mut t = qkv(&[1, 2, 4, 8]);
    t[1].name = "key";
    Files::new(&t).run_err("attention", &[], &["unexpected tensor `key`"]);
}

#[test]
fn wrong_rank_is_named() {
    let mut rng = rng("wrong_rank_is_named");
    let files = Files::new(&[
        In::f32("q", &[2, 3, 8], &random(&mut rng, 48)),
        In::f32("k", &[1, 2, 4, 8], &random(&mut rng, 64)),
        In::f32("v", &[1, 2, 4, 8], &random(&mut rng, 64)),
    ]);
    files.run_err(
        "attention",
        &[],
        &["tensor `q`", "expected rank 4", "[2, 3, 8]"],
    );
}

#[test]
fn mismatched_head_dim_is_named() {
    Files::new(&qkv(&[1, 2, 4, 16])).run_err(
        "attention",
        &[],
        &["`k` has head_dim 16", "`q` has head_dim 8"],
    );
}

#[test]
fn unsupported_dtype_is_named() {
    let files = Files::new(&[In {
        name: "x",
        shape: vec![2, 2],
        dtype: Dtype::I32,
        bytes: [1i32, 2, 3, 4]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
    }]);
    files.run_err("softmax", &[], &["tensor `x`", "I32", "not supported"]);
}

#[test]
fn truncated_file_is_refused() {
    let files = Files::new(&qkv(&[1, 2, 4, 8]));
    let bytes = std::fs::read(&files.input).unwrap();
    std::fs::write(&files.input, &bytes[..bytes.len() - 10]).unwrap();
    files.run_err("attention", &[], &["not a valid safetensors file"]);
    std::fs::remove_file(&files.input).unwrap();
    files.run_err("attention", &[], &["reading", "in.safetensors"]);
}

#[test]
fn missing_output_dir_is_refused() {
    let files = Files::new(&qkv(&[1, 2, 4, 8]));
    let output = files
        .output
        .parent()
        .unwrap()
        .join("no/such/dir/out.safetensors");
    let run = ceiling(&[
        "attention",
        "--input",
        files.input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(!run.ok);
    assert!(run.stderr.contains("does not exist"), "{}", run.stderr);
}

#[test]
fn nan_input_is_named() {
    let mut rng = rng("nan_input_is_named");
    let mut a = random(&mut rng, 12);
    a[7] = f32::NAN;
    let files = Files::new(&[
        In::f32("a", &[3, 4], &a),
        In::f32("b", &[4, 2], &random(&mut rng, 8)),
    ]);
    files.run_err("matmul", &[], &["tensor `a`", "NaN", "[1, 3]"]);
}
