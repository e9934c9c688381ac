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
    assert_eq!(run.code, Some(1), "not a clean exit: {}", run.stderr);
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
