//! Bad input to the `ceiling` binary (issue 14): each test gives one bad value and expects a
//! clear error that names the value, the limit and the fix, no panic or abort, and nothing
//! lost; or, where the input is legal, a result that reads back.
//!
//! Runs the real binary with CEILING_AUTOTUNE=off, on lavapipe through Vulkan unless
//! WGPU_BACKEND says otherwise.

use std::path::Path;
use std::process::Command;

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ceiling(args: &[&str]) -> Run {
    ceiling_env(args, &[])
}

fn ceiling_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ceiling"));
    cmd.args(args).env("CEILING_AUTOTUNE", "off");
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("running the ceiling binary");
    let run = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("ceiling {}\n{}{}", args.join(" "), run.stdout, run.stderr);
    run
}

/// Expects a clean refusal (exit 1, no panic, no abort) whose message holds every needle.
fn refused(run: &Run, needles: &[&str]) {
    assert!(!run.ok, "expected a refusal, got success: {}", run.stdout);
    // 1: refused by ceiling; 2: a usage error from the argument parser.
    assert!(
        matches!(run.code, Some(1) | Some(2)),
        "not a clean exit ({:?}): {}",
        run.code,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    for n in needles {
        assert!(run.stderr.contains(n), "stderr lacks {n:?}: {}", run.stderr);
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// Item 2: sample counts too small to estimate.

#[test]
fn sweep_samples_2_is_refused_with_the_minimum() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = ceiling(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16",
        "--samples",
        "2",
        "--out",
        s(&out),
    ]);
    refused(&run, &["--samples 2", "at least 8", "--samples 8 or more"]);
    assert!(!out.exists(), "a results folder was started");
}

/// With the fewest samples allowed, some bootstrap replicates have no variance: the folder
/// still reads back, so the sweep resumes (it used to be "not a valid result file" forever).
#[test]
fn sweep_samples_8_resumes_from_its_own_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let args = [
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16,32,64",
        "--samples",
        "8",
        "--out",
        s(&out),
    ];
    let first = ceiling(&args);
    assert!(first.ok, "{}", first.stderr);
    let again = ceiling(&args);
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.stderr.matches("(resumed from disk)").count(), 3);
}

// Item 3: values that overflow f16.

/// Writes F32 tensors to a safetensors file.
fn write_f32(path: &Path, tensors: &[(&str, &[usize], &[f32])]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<_> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.to_string(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), b)
                    .unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

#[test]
fn kernel_f16_input_1e5_is_refused_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.st"), dir.path().join("out.st"));
    for big in [1e5f32, 3e38] {
        write_f32(&input, &[("x", &[2, 3], &[0.5, 1.0, 2.0, 3.0, big, -1.0])]);
        let run = ceiling(&[
            "kernel",
            "softmax",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--f16",
        ]);
        refused(&run, &["`x`", "[1, 1]", "65504", "drop --f16"]);
        assert!(!output.exists());
    }
}

#[test]
fn kernel_f16_matmul_output_300_x_300_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.st"), dir.path().join("out.st"));
    // Every input fits f16, the product 2 * 300 * 300 = 180000 does not.
    write_f32(
        &input,
        &[
            ("a", &[2, 2], &[300.0, 300.0, 1.0, 1.0]),
            ("b", &[2, 1], &[300.0, 300.0]),
        ],
    );
    let run = ceiling(&[
        "kernel",
        "matmul",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--f16",
    ]);
    refused(&run, &["`out`", "[0, 0]", "65504", "drop --f16"]);
    assert!(!output.exists());
}

/// Every upload at f16 (model weights, sweep inputs, `hidden --precision f16`) refuses a
/// value that f16 cannot hold, naming it and its index, instead of storing infinity.
#[test]
fn upload_f16_of_1e5_is_refused_with_its_index() {
    let gpu = ceiling_host::Gpu::new(&ceiling_host::AdapterRequest::default())
        .expect("this test needs a GPU adapter (lavapipe: WGPU_BACKEND=vulkan)");
    let err = gpu
        .upload(
            "w",
            &[1.0, -2.0, -1e5, 3.0],
            ceiling_shaders::Precision::F16,
        )
        .err()
        .expect("1e5 does not fit f16")
        .to_string();
    for needle in ["`w`", "-1e5", "element 2", "65504", "f32"] {
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
    // 65504 itself fits.
    assert!(gpu
        .upload("w", &[65504.0], ceiling_shaders::Precision::F16)
        .is_ok());
}

// Items 4 and 5: sizes are checked, in 64-bit arithmetic, before anything is allocated.

/// A GPT-2-like model config as JSON with `change` applied.
fn config_file(dir: &Path, name: &str, change: impl Fn(&mut serde_json::Value)) -> String {
    let c = ceiling_core::model::ModelConfig::gpt2_like(2, 64, 4, 0);
    let mut v = serde_json::to_value(c).unwrap();
    change(&mut v);
    let path = dir.join(name);
    std::fs::write(&path, v.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

fn sweep_model(config: &str, out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "sweep",
        "--preset",
        "model",
        "--config",
        config,
        "--lengths",
        "16",
        "--samples",
        "8",
        "--out",
        s(out),
    ];
    args.extend(extra);
    ceiling(&args)
}

#[test]
fn sweep_config_layers_1e9_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |v| v["layers"] = 1_000_000_000.into());
    let run = sweep_model(&cfg, &dir.path().join("out"), &[]);
    refused(&run, &["host memory", "TiB", "fewer layers"]);
}

#[test]
fn sweep_config_d_model_2_pow_40_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |v| {
        v["d_model"] = (1u64 << 40).into();
        v["heads"] = (1u64 << 34).into();
        v["kv_heads"] = (1u64 << 34).into();
    });
    let run = sweep_model(&cfg, &dir.path().join("out"), &["--d-model", "32"]);
    refused(&run, &["1099511627776"]);
}

#[test]
fn hidden_config_vocab_2_pow_60_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |v| v["vocab"] = (1u64 << 60).into());
    let out = dir.path().join("h.safetensors");
    let run = ceiling(&["hidden", "--config", &cfg, "--out", s(&out), "--check"]);
    refused(&run, &["vocab 1152921504606846976", "64-bit"]);
    assert!(!out.exists());
}

#[test]
fn hidden_config_max_positions_2_pow_61_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |v| {
        v["position"] = serde_json::json!({"learned": {"max_positions": 1u64 << 61}})
    });
    let out = dir.path().join("h.safetensors");
    let run = ceiling(&["hidden", "--config", &cfg, "--out", s(&out)]);
    refused(&run, &["max_positions 2305843009213693952"]);
}

#[test]
fn hidden_n_1e9_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |v| {
        v["position"] = serde_json::json!({"rotary": {"base": 10000.0}})
    });
    let out = dir.path().join("h.safetensors");
    let run = ceiling(&[
        "hidden",
        "--config",
        &cfg,
        "--n",
        "1000000000",
        "--out",
        s(&out),
    ]);
    refused(&run, &["--n 1000000000", "memory", "--n"]);
    assert!(!out.exists());
}

#[test]
fn hidden_batch_1e12_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |_| {});
    let out = dir.path().join("h.safetensors");
    let run = ceiling(&[
        "hidden",
        "--config",
        &cfg,
        "--batch",
        "1000000000000",
        "--out",
        s(&out),
    ]);
    refused(&run, &["--batch 1000000000000", "memory"]);
    assert!(!out.exists());
}

#[test]
fn sweep_lengths_2_pow_40_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let run = ceiling(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16,1099511627776",
        "--samples",
        "8",
        "--out",
        s(&dir.path().join("out")),
    ]);
    refused(&run, &["1099511627776", "memory", "--lengths"]);
}

#[test]
fn sweep_bootstrap_1e12_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let run = ceiling(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16",
        "--samples",
        "8",
        "--bootstrap",
        "1000000000000",
        "--out",
        s(&dir.path().join("out")),
    ]);
    refused(&run, &["--bootstrap 1000000000000", "memory"]);
}

// Item 8: output handling.

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn tmp_files(dir: &Path) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"))
        .collect()
}

#[test]
fn kernel_output_equal_to_input_is_refused_and_the_input_kept() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.st");
    write_f32(&input, &[("x", &[2, 2], &[1.0, 2.0, 3.0, 4.0])]);
    let before = std::fs::read(&input).unwrap();
    // The same file, also under another spelling of its path.
    let other = dir.path().join(".").join("in.st");
    for output in [&input, &other] {
        let run = ceiling(&[
            "kernel",
            "softmax",
            "--input",
            s(&input),
            "--output",
            s(output),
        ]);
        refused(&run, &["--output", "is the --input file"]);
        assert_eq!(std::fs::read(&input).unwrap(), before, "the input changed");
    }
}

/// Runs the binary with writes limited to 8 KiB per file (`ulimit -f`, SIGXFSZ ignored), as
/// on a disk that fills up during the write.
#[cfg(target_os = "linux")]
fn ceiling_on_a_full_disk(args: &[&str]) -> Run {
    let mut script = String::from("trap '' XFSZ; ulimit -f 16; exec \"$0\" \"$@\"");
    script.push('\n');
    let mut all = vec!["-c", &script, env!("CARGO_BIN_EXE_ceiling")];
    all.extend(args);
    let mut cmd = Command::new("sh");
    cmd.args(&all).env("CEILING_AUTOTUNE", "off");
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let out = cmd.output().unwrap();
    let run = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!(
        "(full disk) ceiling {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    );
    run
}

#[cfg(target_os = "linux")]
#[test]
fn kernel_output_on_a_full_disk_leaves_no_tmp_file() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.st"), dir.path().join("out.st"));
    let x: Vec<f32> = (0..64 * 64).map(|i| (i % 7) as f32).collect();
    write_f32(&input, &[("x", &[64, 64], &x)]);
    let run = ceiling_on_a_full_disk(&[
        "kernel",
        "softmax",
        "--input",
        s(&input),
        "--output",
        s(&output),
    ]);
    refused(&run, &["out.st"]);
    assert!(!output.exists());
    assert_eq!(tmp_files(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[cfg(target_os = "linux")]
#[test]
fn sweep_results_on_a_full_disk_leave_no_tmp_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = ceiling_on_a_full_disk(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16,32",
        "--samples",
        "8",
        "--bootstrap",
        "2000",
        "--out",
        s(&out),
    ]);
    refused(&run, &["n-000016.json"]);
    assert_eq!(tmp_files(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[test]
fn hidden_out_in_a_missing_folder_is_refused_before_the_forward_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path(), "c.json", |_| {});
    let out = dir.path().join("no-such-folder").join("h.safetensors");
    let run = ceiling(&["hidden", "--config", &cfg, "--out", s(&out)]);
    refused(&run, &["no-such-folder", "does not exist"]);
    assert!(
        !run.stderr.contains("layers, d_model"),
        "the forward pass ran first"
    );
}

// Item 9: messages.

#[test]
fn sweep_theta_minus_5_is_refused_with_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    for theta in [["--theta", "-5"].as_slice(), &["--theta=-5"]] {
        let mut args = vec!["sweep", "--preset", "clt", "--lengths", "16", "--out"];
        let out = dir.path().join("out");
        args.push(s(&out));
        args.extend(theta);
        let run = ceiling(&args);
        refused(&run, &["theta -5", "> 0"]);
        assert!(!out.exists());
    }
}

#[test]
fn sweep_samples_minus_1_is_named_as_negative() {
    let run = ceiling(&["sweep", "--preset", "clt", "--samples", "-1"]);
    refused(&run, &["--samples", "-1", "negative"]);
}

#[test]
fn kernel_softmax_scale_minus_1_needs_no_equals_sign() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.st"), dir.path().join("out.st"));
    write_f32(&input, &[("x", &[1, 3], &[0.0, 1.0, 2.0])]);
    let run = ceiling(&[
        "kernel",
        "softmax",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--scale",
        "-1",
    ]);
    assert!(run.ok, "{}", run.stderr);
    assert!(output.exists());
}

#[test]
fn wgpu_backend_vulkna_is_named_not_taken_for_a_missing_driver() {
    let run = ceiling_env(&["info"], &[("WGPU_BACKEND", "vulkna")]);
    refused(&run, &["WGPU_BACKEND=vulkna", "vulkan, metal, dx12, gl"]);
    assert!(!run.stderr.contains("apt-get"), "{}", run.stderr);
}

/// GL asked for where EGL finds no driver while Vulkan has one: the error names the
/// backend, what GL needs and the adapters the other backends have, not "install a driver".
#[cfg(target_os = "linux")]
#[test]
fn a_backend_without_an_adapter_is_told_apart_from_no_driver() {
    // glvnd reads its EGL vendor list from here: with none, wgpu's GL backend finds nothing.
    let run = ceiling_env(
        &["info"],
        &[
            ("WGPU_BACKEND", "gl"),
            (
                "__EGL_VENDOR_LIBRARY_FILENAMES",
                "/nonexistent/egl_vendor.json",
            ),
        ],
    );
    refused(
        &run,
        &[
            "WGPU_BACKEND=gl: no GPU adapter on that backend",
            "libegl1 libegl-mesa0 libgl1-mesa-dri",
            "other backends have",
            "(Vulkan)",
        ],
    );
    assert!(
        !run.stderr.contains("no GPU driver installed"),
        "{}",
        run.stderr
    );
}

/// No Vulkan driver manifest and no EGL vendor: no backend has an adapter, and the error
/// says that no driver is installed, with what to install.
#[cfg(target_os = "linux")]
#[test]
fn no_driver_on_any_backend_is_told_apart() {
    let out = Command::new(env!("CARGO_BIN_EXE_ceiling"))
        .arg("info")
        .env_remove("WGPU_BACKEND")
        .env("VK_DRIVER_FILES", "/nonexistent/icd.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
        .env(
            "__EGL_VENDOR_LIBRARY_FILENAMES",
            "/nonexistent/egl_vendor.json",
        )
        .output()
        .expect("running the ceiling binary");
    let run = Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("{}{}", run.stdout, run.stderr);
    refused(
        &run,
        &[
            "no GPU driver installed",
            "mesa-vulkan-drivers libvulkan1",
            "libegl1 libegl-mesa0 libgl1-mesa-dri",
        ],
    );
}

#[test]
fn info_adapter_no_such_gpu_is_refused() {
    let run = ceiling(&["info", "--adapter", "no-such-gpu"]);
    refused(&run, &["no-such-gpu"]);
    assert!(run.stdout.is_empty(), "listed adapters: {}", run.stdout);
}

/// A safetensors file whose header names tensor `x` twice (hand-written: the crate cannot
/// write one).
#[test]
fn kernel_input_with_duplicate_tensor_x_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.st"), dir.path().join("out.st"));
    let header = r#"{"x":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"x":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}"#;
    let mut header = header.as_bytes().to_vec();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(&header);
    for v in [1.0f32, 2.0] {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(&input, bytes).unwrap();
    let run = ceiling(&[
        "kernel",
        "softmax",
        "--input",
        s(&input),
        "--output",
        s(&output),
    ]);
    refused(&run, &["`x`", "twice"]);
    assert!(!output.exists());
}

/// Causal attention with more queries than keys: the first queries see no key. The fused
/// and the unfused kernels follow one rule: such rows are zeros.
#[test]
fn kernel_attention_causal_n_q_5_above_n_kv_3_is_one_rule_for_both_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.st");
    let q: Vec<f32> = (0..5 * 4)
        .map(|i| ((i * 7) % 5) as f32 * 0.3 - 0.6)
        .collect();
    let k: Vec<f32> = (0..3 * 4)
        .map(|i| ((i * 3) % 4) as f32 * 0.4 - 0.5)
        .collect();
    let v: Vec<f32> = (0..3 * 4).map(|i| i as f32 * 0.1).collect();
    write_f32(
        &input,
        &[
            ("q", &[1, 1, 5, 4], &q),
            ("k", &[1, 1, 3, 4], &k),
            ("v", &[1, 1, 3, 4], &v),
        ],
    );
    let mut outs = Vec::new();
    for kernel in ["rows", "unfused"] {
        let output = dir.path().join(format!("{kernel}.st"));
        let run = ceiling(&[
            "kernel",
            "attention",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--causal",
            "--kernel",
            kernel,
        ]);
        assert!(run.ok, "--kernel {kernel}: {}", run.stderr);
        let bytes = std::fs::read(&output).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let out: Vec<f32> = st
            .tensor("out")
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // Queries 0 and 1 see no key: zeros.
        assert!(out[..8].iter().all(|&x| x == 0.0), "{kernel}: {out:?}");
        outs.push(out);
    }
    for (a, b) in outs[0].iter().zip(&outs[1]) {
        assert!(
            (a - b).abs() < 1e-5,
            "fused {:?} vs unfused {:?}",
            outs[0],
            outs[1]
        );
    }
}

// Item 10: corrupt results name the file and the remedy.

fn sweep_clt(out: &Path) -> Run {
    ceiling(&[
        "sweep",
        "--preset",
        "clt",
        "--lengths",
        "16,32",
        "--samples",
        "8",
        "--out",
        s(out),
    ])
}

#[test]
fn sweep_with_a_corrupt_point_file_says_to_delete_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(sweep_clt(&out).ok);
    let point = out.join("clt/points/n-000032.json");
    let text = std::fs::read_to_string(&point).unwrap();
    std::fs::write(&point, &text[..text.len() / 2]).unwrap();
    let run = sweep_clt(&out);
    refused(&run, &["n-000032.json", "delete", "recompute"]);
    // The remedy works: the point is measured again, the other one resumed.
    std::fs::remove_file(&point).unwrap();
    let again = sweep_clt(&out);
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.stderr.matches("(resumed from disk)").count(), 1);
}

#[test]
fn sweep_with_a_truncated_run_json_says_what_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(sweep_clt(&out).ok);
    let header = out.join("clt/run.json");
    std::fs::write(&header, "{\"tool\": \"ceil").unwrap();
    let run = sweep_clt(&out);
    refused(&run, &["run.json", "delete"]);
    std::fs::remove_file(&header).unwrap();
    let again = sweep_clt(&out);
    assert!(again.ok, "{}", again.stderr);
    assert_eq!(again.stderr.matches("(resumed from disk)").count(), 2);
}

/// Attention over batch x heads beyond the 65535 workgroups one dispatch dimension holds is
/// split over several dispatches (as softmax splits its rows), not refused. One key per
/// query: every output row is its value row.
#[test]
fn attention_batch_70000_is_split_not_refused() {
    use ceiling_core::kernel::AttentionShape;
    use ceiling_host::kernels::{self, AttentionKernel, STATS_PER_ROW};
    use ceiling_shaders::Precision;
    let gpu = ceiling_host::Gpu::new(&ceiling_host::AdapterRequest::default())
        .expect("this test needs a GPU adapter (lavapipe: WGPU_BACKEND=vulkan)");
    let mut shape = AttentionShape::new(70_000, 1, 1, 4);
    shape.n_kv = 1;
    let values: Vec<f32> = (0..shape.kv_len())
        .map(|i| (i % 1000) as f32 * 1e-3)
        .collect();
    let ones = vec![0.5f32; shape.q_len()];
    let up = |name, x: &[f32]| gpu.upload(name, x, Precision::F32).unwrap();
    let (q, k, v) = (up("q", &ones), up("k", &ones), up("v", &values));
    let out = gpu
        .nan_tensor("out", shape.q_len(), Precision::F32)
        .unwrap();
    let stats = gpu
        .nan_tensor("stats", shape.rows() * STATS_PER_ROW, Precision::F32)
        .unwrap();
    kernels::attention(
        &gpu,
        &shape,
        &q,
        &k,
        &v,
        None,
        &out,
        Some(&stats),
        AttentionKernel::Auto,
    )
    .expect("attention over 70000 batches");
    assert_eq!(gpu.download(&out).unwrap(), values);
    let stats = gpu.download(&stats).unwrap();
    assert!(
        stats.chunks(STATS_PER_ROW).all(|s| s[1] == 1.0),
        "n_eff of one key is 1"
    );
}
