//! `cargo xtask fuzz --minutes N [--target NAME]... [--jobs J]`: AFL++ through cargo-afl on
//! the fuzz targets of `fuzz/` (every reader of untrusted files), N minutes each.
//!
//! Builds `ceiling-fuzz-afl` instrumented (`cargo afl build --release`, in `target/afl`, or
//! `$CARGO_TARGET_DIR/afl`, so the ordinary build is left alone), writes each target's seeds
//! and its regression inputs as the starting corpus (with the queue an earlier run grew),
//! runs `afl-fuzz -V`, then prints the executions, crashes and hangs of each target from
//! AFL's `fuzzer_stats`. Crashes are copied into `fuzz/regressions/<target>/`, named by the
//! hash of their bytes, where `cargo test` replays them (`fuzz/tests/replay.rs`); the job
//! then fails, naming them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The fuzz crate's source, where the targets are listed (`ceiling_fuzz::TARGETS`): xtask
/// does not depend on that crate (it would build wgpu), so it reads the list from there.
const FUZZ_LIB: &str = include_str!("../../fuzz/src/lib.rs");

/// The names in `pub const TARGETS: [&str; N] = [...]` of [`FUZZ_LIB`]. Panics when that
/// line is not found or does not hold N names (a test checks it).
fn targets() -> Vec<&'static str> {
    let decl = "\npub const TARGETS: [&str; ";
    let at = FUZZ_LIB
        .find(decl)
        .expect("fuzz/src/lib.rs declares `pub const TARGETS: [&str; N]`")
        + decl.len();
    let rest = &FUZZ_LIB[at..];
    let (count, rest) = rest
        .split_once("] = [")
        .expect("TARGETS is an array literal");
    let count: usize = count.trim().parse().expect("TARGETS' length");
    let (list, _) = rest.split_once(']').expect("the end of TARGETS");
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .expect("TARGETS holds string literals")
        })
        .collect();
    assert_eq!(names.len(), count, "TARGETS of fuzz/src/lib.rs: {names:?}");
    names
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// cargo-afl, installed from crates.io when missing, with its AFL++ runtime built.
fn ensure_cargo_afl() -> Result<()> {
    let present = cargo()
        .args(["afl", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        eprintln!("xtask: installing cargo-afl (cargo install cargo-afl --locked)");
        let status = cargo()
            .args(["install", "cargo-afl", "--locked"])
            .status()
            .context("starting cargo install")?;
        if !status.success() {
            bail!("`cargo install cargo-afl --locked` failed");
        }
    }
    // Builds AFL++ and its runtime for this rustc; says so when they are there already.
    let out = cargo()
        .args(["afl", "config", "--build"])
        .output()
        .context("starting cargo afl config")?;
    let text = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && !text.contains("already built") {
        bail!("`cargo afl config --build` failed:\n{text}");
    }
    Ok(())
}

struct Options {
    minutes: f64,
    targets: Vec<String>,
    jobs: usize,
}

fn options(rest: &[String]) -> Result<Options> {
    let mut o = Options {
        minutes: 0.0,
        targets: Vec::new(),
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut minutes = None;
    let mut args = rest.iter();
    while let Some(a) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .with_context(|| format!("{flag} needs a value"))
        };
        match a.as_str() {
            "--minutes" => {
                let v = value("--minutes")?;
                minutes = Some(
                    v.parse::<f64>()
                        .ok()
                        .filter(|m| m.is_finite() && *m > 0.0)
                        .with_context(|| format!("--minutes {v}: give a positive number"))?,
                );
            }
            "--target" => {
                for t in value("--target")?.split(',') {
                    if !targets().contains(&t) {
                        bail!("--target {t}: choose from {}", targets().join(", "));
                    }
                    o.targets.push(t.to_string());
                }
            }
            "--jobs" => {
                let v = value("--jobs")?;
                o.jobs = v
                    .parse()
                    .ok()
                    .filter(|&j| j > 0)
                    .with_context(|| format!("--jobs {v}: give a count of at least 1"))?;
            }
            other => bail!(
                "fuzz: unknown argument '{other}': cargo xtask fuzz --minutes N [--target \
                 NAME]... [--jobs J]"
            ),
        }
    }
    o.minutes = minutes.context("give --minutes N (how long each target runs)")?;
    if o.targets.is_empty() {
        o.targets = targets().iter().map(|t| t.to_string()).collect();
    }
    Ok(o)
}

/// What AFL's `fuzzer_stats` says about one run.
#[derive(Default)]
struct Stats {
    execs: u64,
    per_second: f64,
    crashes: u64,
    hangs: u64,
    corpus: u64,
    coverage: String,
}

fn stats(out: &Path) -> Result<Stats> {
    let path = out.join("default").join("fuzzer_stats");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("AFL left no statistics ({})", path.display()))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    Ok(Stats {
        execs: field("execs_done").parse().unwrap_or(0),
        per_second: field("execs_per_sec").parse().unwrap_or(0.0),
        crashes: field("saved_crashes").parse().unwrap_or(0),
        hangs: field("saved_hangs").parse().unwrap_or(0),
        corpus: field("corpus_count").parse().unwrap_or(0),
        coverage: field("bitmap_cvg"),
    })
}

/// Copies AFL's crashes of `target` into `fuzz/regressions/<target>/`; returns the new files.
fn keep_crashes(root: &Path, target: &str, out: &Path) -> Result<Vec<PathBuf>> {
    let dir = out.join("default").join("crashes");
    let mut kept = Vec::new();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(kept);
    };
    let dest = root.join("fuzz").join("regressions").join(target);
    for e in entries {
        let path = e?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if !name.is_some_and(|n| n.starts_with("id:")) {
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let hash = format!("{:x}", Sha256::digest(&bytes));
        std::fs::create_dir_all(&dest)?;
        let file = dest.join(format!("crash-{}", &hash[..16]));
        if !file.exists() {
            std::fs::write(&file, &bytes)?;
            kept.push(file);
        }
    }
    Ok(kept)
}

pub fn run(root: &Path, rest: &[String]) -> Result<()> {
    let o = options(rest)?;
    ensure_cargo_afl()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("afl");
    eprintln!(
        "xtask: building the AFL harness (cargo afl build --release, in {})",
        target_dir.display()
    );
    let status = cargo()
        .current_dir(root)
        .args([
            "afl",
            "build",
            "--release",
            "-p",
            "ceiling-fuzz",
            "--features",
            "afl",
            "--bin",
            "ceiling-fuzz-afl",
        ])
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .context("starting cargo afl build")?;
    if !status.success() {
        bail!("`cargo afl build` of the fuzz harness failed");
    }
    let bin = target_dir.join("release").join("ceiling-fuzz-afl");
    let seconds = (o.minutes * 60.0).round().max(1.0) as u64;
    let work = target_dir.join("fuzz");
    let mut results = Vec::new();
    for batch in o.targets.chunks(o.jobs) {
        let mut running: Vec<(String, PathBuf, Child)> = Vec::new();
        for target in batch {
            let dir = work.join(target);
            let (input, out) = (dir.join("in"), dir.join("out"));
            // The corpus an earlier run grew starts this one, beside the seeds.
            let earlier: Vec<Vec<u8>> = std::fs::read_dir(out.join("default").join("queue"))
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .filter_map(|p| std::fs::read(p).ok())
                        .collect()
                })
                .unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            let status = Command::new(&bin)
                .args(["--seeds", target])
                .arg(&input)
                .status()
                .context("writing the seeds")?;
            if !status.success() {
                bail!("writing the seeds of {target} failed");
            }
            for (i, bytes) in earlier.iter().enumerate() {
                std::fs::write(input.join(format!("queue-{i:06}")), bytes)?;
            }
            // Crashes found before start the corpus too: the fuzzer checks they stay fixed.
            let regressions = root.join("fuzz").join("regressions").join(target);
            if let Ok(entries) = std::fs::read_dir(&regressions) {
                for e in entries {
                    let p = e?.path();
                    if p.is_file() {
                        std::fs::copy(&p, input.join(p.file_name().unwrap()))?;
                    }
                }
            }
            eprintln!(
                "xtask: fuzzing {target} for {seconds} s (log: {}/afl.log)",
                dir.display()
            );
            let log = std::fs::File::create(dir.join("afl.log"))?;
            let child = cargo()
                .args(["afl", "fuzz", "-i"])
                .arg(&input)
                .arg("-o")
                .arg(&out)
                .args(["-V", &seconds.to_string(), "-m", "4096", "-t", "5000", "--"])
                .arg(&bin)
                .arg(target)
                .env("AFL_NO_UI", "1")
                .env("AFL_SKIP_CPUFREQ", "1")
                .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
                .env("AFL_SKIP_CRASHES", "1")
                // Other work may hold the cores; AFL would refuse to start without a free one.
                .env("AFL_NO_AFFINITY", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("starting cargo afl fuzz")?;
            running.push((target.clone(), out, child));
        }
        for (target, out, mut child) in running {
            let status = child.wait()?;
            let s = stats(&out).with_context(|| {
                format!(
                    "afl-fuzz on {target} exited with {status}; see {}",
                    out.parent().unwrap().join("afl.log").display()
                )
            })?;
            let kept = keep_crashes(root, &target, &out)?;
            results.push((target, s, kept, out));
        }
    }
    println!(
        "{:<13} {:>12} {:>9} {:>8} {:>6} {:>7} {:>9}",
        "target", "executions", "execs/s", "crashes", "hangs", "corpus", "coverage"
    );
    let mut new = Vec::new();
    for (target, s, kept, _) in &results {
        println!(
            "{:<13} {:>12} {:>9.0} {:>8} {:>6} {:>7} {:>9}",
            target, s.execs, s.per_second, s.crashes, s.hangs, s.corpus, s.coverage
        );
        new.extend(kept.iter().cloned());
    }
    for (target, s, _, out) in &results {
        if s.hangs > 0 {
            println!(
                "{target}: {} inputs ran over 5 s: {}",
                s.hangs,
                out.join("default").join("hangs").display()
            );
        }
    }
    if results.iter().any(|(_, s, _, _)| s.crashes > 0) {
        for f in &new {
            println!("new crash: {}", f.display());
        }
        bail!(
            "the fuzzers found crashes; they are in fuzz/regressions/ (replayed by `cargo test \
             -p ceiling-fuzz`): fix the reader, then commit them"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The list parses out of fuzz/src/lib.rs, with as many names as its type says.
    #[test]
    fn targets_are_read_from_the_fuzz_crate() {
        let names = super::targets();
        assert!(names.contains(&"gguf"), "{names:?}");
        for t in names {
            assert!(
                !t.is_empty() && t.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{t:?}"
            );
        }
    }
}
