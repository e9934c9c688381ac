//! A sweep folder grows with its grid (more lengths add points, nothing measured is redone
//! or changed), and `ceiling report` keeps every run apart that it cannot merge, and says
//! when it merges runs of different tool versions.

mod common;

use std::path::{Path, PathBuf};

use ceiling_core::sweep::{results, LengthResult, Preset, Summary, SweepConfig};
use ceiling_host::sweep::{self, Shard};
use common::*;

struct Quiet(Vec<(usize, bool)>);
impl sweep::Progress for Quiet {
    fn start_lengths(&mut self, _: &[usize], _: usize) {}
    fn samples_done(&mut self, _: usize) {}
    fn finish_length(&mut self, r: &LengthResult, resumed: bool) {
        self.0.push((r.n, resumed));
    }
}

fn tiny(lengths: &[usize]) -> SweepConfig {
    let mut cfg = SweepConfig::for_preset(Preset::Clt);
    cfg.lengths = lengths.to_vec();
    cfg.samples = 16;
    cfg.bootstrap = 20;
    cfg
}

fn sweep_in(cfg: &SweepConfig, dir: &Path) -> (Summary, Vec<(usize, bool)>) {
    let mut seen = Quiet(Vec::new());
    let s = sweep::run_sweep(gpu(), cfg, dir, Shard::ALL, &mut seen).unwrap();
    (s, seen.0)
}

fn lengths_of(dir: &Path) -> Vec<usize> {
    let h: results::RunHeader = results::read_json(&dir.join("run.json")).unwrap();
    h.config.lengths
}

/// Lengths 16,32 and then 16,32,64 in one folder: the second run measures only 64, the
/// first two point files are left byte for byte as they were, and the summary and run.json
/// cover all three. A rerun of the first command afterwards keeps the third point.
#[test]
fn sweep_rerun_with_more_lengths_extends_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = sweep_in(&tiny(&[16, 32]), dir.path());
    assert_eq!(first.points.len(), 2);
    let before: Vec<Vec<u8>> = [16, 32]
        .map(|n| std::fs::read(results::point_path(dir.path(), n)).unwrap())
        .to_vec();

    let (more, seen) = sweep_in(&tiny(&[16, 32, 64]), dir.path());
    assert_eq!(seen, vec![(16, true), (32, true), (64, false)]);
    for (n, bytes) in [16, 32].into_iter().zip(&before) {
        let now = std::fs::read(results::point_path(dir.path(), n)).unwrap();
        assert!(&now == bytes, "point n = {n} changed on extension");
    }
    assert_eq!(
        more.points.iter().map(|p| p.n).collect::<Vec<_>>(),
        vec![16, 32, 64]
    );
    assert_eq!(more.config.lengths, vec![16, 32, 64]);
    assert_eq!(lengths_of(dir.path()), vec![16, 32, 64]);
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["points"].as_array().unwrap().len(), 3);

    // The first command again: nothing to measure, and the summary still has all three.
    let (again, seen) = sweep_in(&tiny(&[16, 32]), dir.path());
    assert_eq!(seen, vec![(16, true), (32, true)]);
    assert_eq!(again.points.len(), 3);
    assert_eq!(lengths_of(dir.path()), vec![16, 32, 64]);

    // The added point is the one a run of 64 alone measures: points do not depend on the
    // other lengths of the grid.
    let alone = tempfile::tempdir().unwrap();
    let (single, _) = sweep_in(&tiny(&[64]), alone.path());
    assert_eq!(single.points[0].sites, more.points[2].sites);
}

/// A rerun whose --samples differs would measure the finished points differently: refused,
/// naming the field, its flag and both values, and nothing in the folder changes.
#[test]
fn sweep_rerun_with_changed_samples_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    sweep_in(&tiny(&[16, 32]), dir.path());
    let run_json = std::fs::read(dir.path().join("run.json")).unwrap();
    let point = std::fs::read(results::point_path(dir.path(), 16)).unwrap();

    let mut other = tiny(&[16, 32, 64]);
    other.samples = 24;
    other.seed = 3;
    let err = sweep::run_sweep(gpu(), &other, dir.path(), Shard::ALL, &mut Quiet(vec![]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("another configuration"), "{err}");
    assert!(err.contains("samples 16 -> 24 (--samples)"), "{err}");
    assert!(err.contains("seed 0 -> 3 (--seed)"), "{err}");
    assert!(!err.contains("\n  lengths"), "lengths may change: {err}");
    assert_eq!(
        std::fs::read(dir.path().join("run.json")).unwrap(),
        run_json
    );
    assert_eq!(
        std::fs::read(results::point_path(dir.path(), 16)).unwrap(),
        point
    );
    assert!(!results::point_path(dir.path(), 64).exists());

    // A changed bootstrap count changes what every point stores: refused too.
    let mut boot = tiny(&[16, 32]);
    boot.bootstrap = 40;
    let err = sweep::run_sweep(gpu(), &boot, dir.path(), Shard::ALL, &mut Quiet(vec![]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("bootstrap 20 -> 40 (--bootstrap)"), "{err}");
}

fn ceiling(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ceiling"))
        .args(args)
        .env("CEILING_AUTOTUNE", "off")
        .output()
        .unwrap()
}

fn cli_sweep(out: &Path, extra: &[&str]) {
    let out = out.to_str().unwrap();
    let mut args = vec![
        "sweep",
        "--preset",
        "clt",
        "--bootstrap",
        "20",
        "--out",
        out,
    ];
    args.extend(extra);
    if !extra.contains(&"--samples") {
        args.extend(["--samples", "16"]);
    }
    let o = ceiling(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Two sweeps, `extra_a` into `dir/a` and `extra_b` into `dir/b`; returns the two folders.
fn two_sweeps(dir: &Path, extra_a: &[&str], extra_b: &[&str]) -> (PathBuf, PathBuf) {
    let (a, b) = (dir.join("a"), dir.join("b"));
    cli_sweep(&a, extra_a);
    cli_sweep(&b, extra_b);
    (a, b)
}

/// `ceiling report RUNS... --out OUT`.
fn report(runs: &[&Path], out: &Path) -> std::process::Output {
    let mut args = vec!["report"];
    args.extend(runs.iter().map(|r| r.to_str().unwrap()));
    args.extend(["--out", out.to_str().unwrap()]);
    ceiling(&args)
}

/// The CLI form of the extension: a larger --max-n in the same --out adds its lengths.
#[test]
fn cli_sweep_with_larger_max_n_adds_lengths() {
    let dir = tempfile::tempdir().unwrap();
    cli_sweep(dir.path(), &["--min-n", "16", "--max-n", "32"]);
    cli_sweep(dir.path(), &["--min-n", "16", "--max-n", "64"]);
    let run = dir.path().join("clt");
    assert_eq!(lengths_of(&run), vec![16, 32, 64]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["points"].as_array().unwrap().len(), 3);
}

fn summaries_under(dir: &Path) -> Vec<(String, serde_json::Value)> {
    let mut found: Vec<(String, serde_json::Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("summary.json").exists())
        .map(|p| {
            let text = std::fs::read_to_string(p.join("summary.json")).unwrap();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

/// Two configurations of one preset on one adapter (--samples 16 and 24): each keeps its
/// own folder and summary; they used to land in one folder, the second overwriting the
/// first.
#[test]
fn report_keeps_two_configs_of_one_preset() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_sweeps(
        dir.path(),
        &["--lengths", "16,32"],
        &["--lengths", "16,32,64", "--samples", "24"],
    );
    let merged = dir.path().join("merged");
    let o = report(&[&a, &b], &merged);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let found = summaries_under(&merged);
    assert_eq!(found.len(), 2, "one folder per configuration: {found:?}");
    assert_ne!(found[0].0, found[1].0);
    let mut samples: Vec<u64> = found
        .iter()
        .map(|(_, s)| s["config"]["samples"].as_u64().unwrap())
        .collect();
    samples.sort();
    assert_eq!(samples, vec![16, 24]);
    for (label, s) in &found {
        assert!(label.starts_with("clt-"), "{label}");
        assert_eq!(s["label"], label.as_str());
        let points = s["points"].as_array().unwrap().len();
        let want = if s["config"]["samples"] == 16 { 2 } else { 3 };
        assert_eq!(points, want, "{label}");
        // The table and the listing name each run by its folder.
        assert!(stdout.contains(&format!("{label}: clt on")), "{stdout}");
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{label} "))),
            "{stdout}"
        );
    }
}

/// Two shards of one grid whose run.json say different tool versions: merged (they measure
/// the same points), with a warning naming both versions and their folders, and the version
/// of every run in the merged summary.
#[test]
fn report_warns_on_mixed_tool_versions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_sweeps(
        dir.path(),
        &["--lengths", "16,32,64", "--shard", "0/2"],
        &["--lengths", "16,32,64", "--shard", "1/2"],
    );
    let old_run = a.join("clt").join("run.json");
    let mut header: results::RunHeader = results::read_json(&old_run).unwrap();
    let current = header.version.clone();
    header.version = "0.0.1".into();
    results::write_json(&old_run, &header).unwrap();

    let merged = dir.path().join("merged");
    let o = report(&[&a, &b], &merged);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("ceiling 0.0.1"), "{stderr}");
    assert!(stderr.contains(&format!("ceiling {current}")), "{stderr}");
    assert!(stderr.contains(a.join("clt").to_str().unwrap()), "{stderr}");
    let found = summaries_under(&merged);
    assert_eq!(found.len(), 1, "{found:?}");
    let s = &found[0].1;
    assert_eq!(s["points"].as_array().unwrap().len(), 3);
    let mut versions: Vec<&str> = s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["version"].as_str().unwrap())
        .collect();
    versions.sort();
    let mut want = vec!["0.0.1", current.as_str()];
    want.sort();
    assert_eq!(versions, want);
    assert!(s["version"].as_str().unwrap().contains("0.0.1"));

    // One version only: no warning.
    let o = report(&[&b], &dir.path().join("single"));
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("versions"));
}

/// An --out that is a sweep folder itself is refused before anything is written: the merged
/// summary would replace the run's own.
#[test]
fn report_into_a_sweep_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    cli_sweep(&a, &["--lengths", "16,32"]);
    let before = std::fs::read(a.join("clt").join("summary.json")).unwrap();
    // The merged folder of this run would be <out>/clt-<adapter>: make it a sweep folder.
    let probe = dir.path().join("probe");
    let o = report(&[&a], &probe);
    assert!(o.status.success());
    let label = summaries_under(&probe).remove(0).0;
    let target = dir.path().join("target");
    std::fs::create_dir_all(target.join(&label)).unwrap();
    std::fs::copy(
        a.join("clt").join("run.json"),
        target.join(&label).join("run.json"),
    )
    .unwrap();
    std::fs::write(target.join(&label).join("summary.json"), b"theirs").unwrap();
    let o = report(&[&a], &target);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(stderr.contains("run.json"), "{stderr}");
    assert_eq!(
        std::fs::read(target.join(&label).join("summary.json")).unwrap(),
        b"theirs"
    );
    assert_eq!(
        std::fs::read(a.join("clt").join("summary.json")).unwrap(),
        before
    );
}
