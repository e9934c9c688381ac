//! The sweep's controls give their known answers, the GPU reductions match their f64
//! reference, and an interrupted sweep resumes to the same result.
//!
//! The control checks use a fixed seed: they test a statistical claim with a 95% interval,
//! and a fresh seed would make them fail by chance one run in twenty.

mod common;

use std::path::Path;

use ceiling_core::curve::Choice;
use ceiling_core::sweep::{
    results, summary, LengthResult, ModelSpec, Preset, Summary, SweepConfig,
};
use ceiling_host::sweep::{self, Shard};
use common::*;

struct Quiet;
impl sweep::Progress for Quiet {
    fn start_lengths(&mut self, _: &[usize], _: usize) {}
    fn samples_done(&mut self, _: usize) {}
    fn finish_length(&mut self, _: &LengthResult, _: bool) {}
}

fn config(preset: Preset) -> SweepConfig {
    let mut cfg = SweepConfig::for_preset(preset);
    cfg.lengths = (4..=10).map(|e| 1 << e).collect();
    cfg.samples = 256;
    cfg
}

fn run(cfg: &SweepConfig, dir: &Path) -> Summary {
    run_on(gpu(), cfg, dir)
}

fn run_on(gpu: &ceiling_host::Gpu, cfg: &SweepConfig, dir: &Path) -> Summary {
    sweep::run_sweep(gpu, cfg, dir, Shard::ALL, &mut Quiet).unwrap()
}

fn slope(s: &Summary) -> summary::Slope {
    s.fits[0].slope_n.clone().expect("a slope")
}

#[test]
fn clt_control_gives_slope_minus_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = run(&config(Preset::Clt), dir.path());
    let sl = slope(&s);
    eprintln!("clt: slope {:.3} {}", sl.slope, sl.ci);
    assert!((sl.slope + 1.0).abs() < 0.1, "clt slope {}", sl.slope);
    assert!(sl.ci.covers(-1.0), "clt interval {} misses -1", sl.ci);
    // n_eff grows with n, and against the harmonic mean of n_eff (V = tr Cov(v) E[1/n_eff]
    // exactly) the slope is -1 within its interval.
    let eff = s.fits[0].slope_n_eff.clone().unwrap();
    assert!(
        eff.ci.covers(-1.0),
        "slope against n_eff {} {}",
        eff.slope,
        eff.ci
    );
    assert!(s.points.iter().all(|p| p.n_eff_harmonic <= p.n_eff_mean));
    assert!(
        (eff.slope + 1.0).abs() < 0.1,
        "slope against n_eff {}",
        eff.slope
    );
    assert!(s
        .points
        .windows(2)
        .all(|w| w[1].n_eff_mean > w[0].n_eff_mean));

    // Without a floor the AICc does not pick the pedestal, and alpha stays near 1.
    let curves = s.fits[0].curves.clone().expect("both fits of V(n)");
    eprintln!("clt:\n{}", curves.report("n"));
    assert_ne!(curves.choice, Choice::WithPedestal, "{}", curves.reason);
    assert!(
        (curves.power_law.alpha - 1.0).abs() < 0.1,
        "{}",
        curves.power_law.alpha
    );
    let text = std::fs::read_to_string(dir.path().join("fits.txt")).unwrap();
    assert!(
        text.contains("E + A n^-alpha") && text.contains("AICc choice"),
        "{text}"
    );
}

#[test]
fn sharp_control_is_flat_and_sink_shows_a_floor() {
    let dir = tempfile::tempdir().unwrap();
    let sharp = slope(&run(&config(Preset::Sharp), &dir.path().join("sharp")));
    let clt = slope(&run(&config(Preset::Clt), &dir.path().join("clt")));
    eprintln!("sharp: slope {:.3} {}", sharp.slope, sharp.ci);
    assert!(
        sharp.slope > clt.slope + 0.7,
        "sharp {} vs clt {}",
        sharp.slope,
        clt.slope
    );
    assert!(sharp.slope.abs() < 0.15, "sharp slope {}", sharp.slope);

    let sink = run(&config(Preset::Sink), &dir.path().join("sink"));
    let curves = sink.fits[0].curves.clone().expect("both fits of V(n)");
    eprintln!("sink:\n{}", curves.report("n"));
    assert_eq!(
        curves.choice,
        Choice::WithPedestal,
        "the pedestal should win: {}",
        curves.reason
    );
    assert!(sink.fits[0].verdict.contains("pedestal preferred"));
    // The sink holds a quarter of the attention: the pedestal is about 1/16 of tr Cov(v),
    // nearly all of V at the longest length (within noise), and its interval excludes 0.
    let v_long = sink.points.last().unwrap().sites[0].variance;
    let e = curves.pedestal.e;
    assert!(
        e > 0.3 * v_long && e < 1.2 * v_long,
        "pedestal {e} vs V(n_max) {v_long}"
    );
    let e_ci = curves.pedestal.intervals.as_ref().expect("intervals").e;
    assert!(e_ci.lo > 0.1 * v_long && e_ci.contains(e), "{e_ci:?}");
    // Fitted without the pedestal the exponent reads small; the pedestal raises it.
    assert!(
        curves.alpha_shift > 0.3,
        "alpha shift {}",
        curves.alpha_shift
    );
}

#[test]
fn long_range_dependent_inputs_give_slope_2h_minus_2() {
    let dir = tempfile::tempdir().unwrap();
    let sl = slope(&run(&config(Preset::Lrd), dir.path()));
    eprintln!("lrd: slope {:.3} {}", sl.slope, sl.ci);
    assert!((sl.slope + 0.6).abs() < 0.1, "lrd slope {}", sl.slope);
}

#[test]
fn an_interrupted_sweep_resumes_to_the_same_result() {
    let mut cfg = config(Preset::Ar1);
    cfg.lengths = vec![16, 32, 64, 128];
    cfg.samples = 64;
    let whole = tempfile::tempdir().unwrap();
    let reference = run(&cfg, whole.path());

    let broken = tempfile::tempdir().unwrap();
    run(&cfg, broken.path());
    // As if killed while measuring n = 64: its point never landed, a temporary file did,
    // and the summary was never written.
    let point = results::point_path(broken.path(), 64);
    std::fs::rename(&point, point.with_extension("tmp")).unwrap();
    std::fs::remove_file(broken.path().join("summary.json")).unwrap();

    struct Count(Vec<(usize, bool)>);
    impl sweep::Progress for Count {
        fn start_lengths(&mut self, _: &[usize], _: usize) {}
        fn samples_done(&mut self, _: usize) {}
        fn finish_length(&mut self, r: &LengthResult, resumed: bool) {
            self.0.push((r.n, resumed));
        }
    }
    let mut count = Count(Vec::new());
    let resumed = sweep::run_sweep(gpu(), &cfg, broken.path(), Shard::ALL, &mut count).unwrap();
    assert_eq!(
        count.0,
        vec![(16, true), (32, true), (64, false), (128, true)],
        "only the lost length is measured again"
    );
    for (a, b) in resumed.points.iter().zip(&reference.points) {
        assert_eq!(a.sites, b.sites, "n = {}", a.n);
    }
    assert_eq!(resumed.fits, reference.fits);

    // A different configuration in the same directory is refused, and loses nothing.
    let mut other = cfg.clone();
    other.samples = 65;
    let err = sweep::run_sweep(gpu(), &other, broken.path(), Shard::ALL, &mut Quiet).unwrap_err();
    assert!(err.to_string().contains("another configuration"), "{err}");
    assert!(results::point_path(broken.path(), 64).exists());
}

#[test]
fn shards_merge_to_the_whole_grid() {
    let mut cfg = config(Preset::Clt);
    cfg.lengths = vec![16, 32, 64];
    cfg.samples = 32;
    let dir = tempfile::tempdir().unwrap();
    let first = sweep::run_sweep(
        gpu(),
        &cfg,
        dir.path(),
        Shard { index: 0, count: 2 },
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(
        first.points.iter().map(|p| p.n).collect::<Vec<_>>(),
        vec![16, 64]
    );
    let both = sweep::run_sweep(
        gpu(),
        &cfg,
        dir.path(),
        Shard { index: 1, count: 2 },
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(
        both.points.iter().map(|p| p.n).collect::<Vec<_>>(),
        vec![16, 32, 64]
    );
}

#[test]
fn bad_sweep_input_is_refused_before_gpu_work() {
    type Change = Box<dyn Fn(&mut SweepConfig)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|c| c.samples = 1), "at least 8"),
        (Box::new(|c| c.lengths = vec![16, 0]), "n = 0"),
        (
            Box::new(|c| c.process = ceiling_core::process::Process::StudentT { df: 0.0 }),
            "df",
        ),
        (Box::new(|c| c.d_model = 1), "d_model"),
        (Box::new(|c| c.sink_mass = 1.0), "sink mass"),
    ];
    for (change, needle) in cases {
        let mut cfg = config(Preset::Clt);
        change(&mut cfg);
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains(needle), "'{err}' should mention '{needle}'");
    }
}

fn ceiling(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ceiling"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn cli_shards_in_two_directories_merge_with_report() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &str| dir.path().join(p).to_str().unwrap().to_string();
    for (shard, out) in [("0/2", "a"), ("1/2", "b")] {
        let o = ceiling(&[
            "sweep",
            "--preset",
            "clt",
            "--lengths",
            "16,32,64,128",
            "--samples",
            "32",
            "--shard",
            shard,
            "--out",
            &path(out),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = ceiling(&["report", &path("a"), &path("b"), "--out", &path("merged")]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("4 of 4 lengths"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("clt ")), "{stdout}");
    let merged = std::fs::read_dir(path("merged"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("summary.json").exists())
        .expect("a merged summary");
    let s: Summary =
        serde_json::from_str(&std::fs::read_to_string(merged.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(
        s.points.iter().map(|p| p.n).collect::<Vec<_>>(),
        vec![16, 32, 64, 128]
    );
    assert!(merged.join("variance.svg").exists() && merged.join("variance.png").exists());
}

/// A sweep whose plots have little or nothing to draw (one length: a single x; clt's SNR
/// hovers around 0, so often no positive value) still finishes with exit 0, writes every
/// preset's results, and runs the presets after it. It used to exit 1 with "nothing to
/// plot" after measuring every point, and every rerun failed the same way.
#[test]
fn cli_sweep_with_little_to_plot_finishes_every_preset() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    for lengths in ["64", "32,64,128"] {
        for _ in 0..2 {
            // The second run resumes from disk and must finish the same way.
            let o = ceiling(&[
                "sweep",
                "--preset",
                "clt,ar1",
                "--lengths",
                lengths,
                "--samples",
                "16",
                "--bootstrap",
                "20",
                "--out",
                out,
            ]);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "--lengths {lengths}: {stderr}");
            assert!(!stderr.contains("nothing to plot"), "{stderr}");
            for preset in ["clt", "ar1"] {
                let summary = dir.path().join(preset).join("summary.json");
                assert!(summary.exists(), "{preset}: no summary.json\n{stderr}");
                assert!(dir.path().join(preset).join("variance.svg").exists());
            }
        }
        std::fs::remove_dir_all(dir.path().join("clt")).unwrap();
        std::fs::remove_dir_all(dir.path().join("ar1")).unwrap();
    }
    // No temporary plot files are left behind.
    let tmp = walk(dir.path())
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp"));
    assert!(tmp.is_none(), "{tmp:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn cli_refuses_contradictory_or_bad_flags_before_gpu_work() {
    for (args, needle) in [
        (
            vec!["sweep", "--preset", "clt,ar1", "--process", "gaussian"],
            "single --preset",
        ),
        (vec!["sweep", "--samples", "1"], "at least 8"),
        (
            vec!["sweep", "--preset", "clt", "--process", "student-t:-1"],
            "df",
        ),
        (vec!["sweep", "--preset", "nope"], "unknown preset"),
        (vec!["sweep", "--shard", "3/2"], "--shard"),
        (
            vec!["sweep", "--lengths", "16", "--max-n", "64"],
            "cannot be used with",
        ),
        (
            vec!["report", "/nonexistent/ceiling-results"],
            "no such result directory",
        ),
    ] {
        let o = ceiling(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains(needle),
            "{args:?}: '{stderr}' should mention '{needle}'"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn planted_signal_becomes_readable_as_n_grows() {
    let mut cfg = config(Preset::Clt);
    cfg.process = ceiling_core::process::Process::Planted { strength: 0.3 };
    cfg.lengths = vec![16, 64, 256];
    cfg.samples = 512;
    let dir = tempfile::tempdir().unwrap();
    let s = run(&cfg, dir.path());
    let fisher: Vec<f64> = s
        .points
        .iter()
        .map(|p| p.sites[0].fisher_snr.unwrap())
        .collect();
    let acc: Vec<f64> = s
        .points
        .iter()
        .map(|p| p.sites[0].readout_accuracy.unwrap())
        .collect();
    eprintln!("planted: fisher {fisher:?}, accuracy {acc:?}");
    // Noise falls like 1/n while the planted mean stays: the Fisher ratio grows ~ n.
    assert!(fisher[2] > 6.0 * fisher[0], "{fisher:?}");
    assert!(acc[2] > acc[0] + 0.1 && acc[2] > 0.75, "{acc:?}");
}

#[test]
fn model_preset_probes_every_layer_and_checks_its_limits() {
    let mut mc = ceiling_core::model::ModelConfig::gpt2_like(2, 16, 2, 0);
    mc.position = ceiling_core::model::Position::Learned { max_positions: 64 };
    let mut cfg = SweepConfig::for_preset(Preset::Model);
    cfg.model = Some(ModelSpec::Random { config: mc });
    cfg.d_model = 16;
    cfg.lengths = vec![8, 16, 32];
    cfg.samples = 32;
    let dir = tempfile::tempdir().unwrap();
    let s = run(&cfg, dir.path());
    let sites: Vec<&str> = s.fits.iter().map(|f| f.site.as_str()).collect();
    assert_eq!(sites, ["L0.attn", "L0.hidden", "L1.attn", "L1.hidden"]);
    assert!(s.points.iter().all(|p| p.n_eff_layers.len() == 2));
    for p in &s.points {
        // Two heads per layer, each between 1 and n; the layer figure is their mean.
        assert!(p.n_eff_heads.iter().all(|h| h.len() == 2));
        for (layer, h) in p.n_eff_heads.iter().enumerate() {
            assert!(
                h.iter().all(|&x| (1.0..=p.n as f64 + 1e-3).contains(&x)),
                "{h:?}"
            );
            assert!((h.iter().sum::<f64>() / 2.0 - p.n_eff_layers[layer]).abs() < 1e-6);
        }
        assert!(p.entropy_heads.iter().flatten().all(|&e| e >= 0.0));
    }
    assert!(s.points[2].n_eff_mean > s.points[0].n_eff_mean);

    let mut long = cfg.clone();
    long.lengths = vec![16, 128];
    let err = sweep::load_model(&long).unwrap_err().to_string();
    assert!(err.contains("exceeds the model's 64 positions"), "{err}");
    let mut deep = cfg.clone();
    deep.layers = vec![2];
    let err = sweep::load_model(&deep).unwrap_err().to_string();
    assert!(err.contains("layer 2 is beyond"), "{err}");
}

#[test]
fn token_models_draw_ids_from_a_unigram_distribution() {
    let mut mc = ceiling_core::model::ModelConfig::gpt2_like(1, 16, 2, 10);
    mc.position = ceiling_core::model::Position::Learned { max_positions: 32 };
    let mut cfg = SweepConfig::for_preset(Preset::Model);
    cfg.model = Some(ModelSpec::Random { config: mc });
    cfg.lengths = vec![8, 16, 32];
    cfg.samples = 32;
    let dir = tempfile::tempdir().unwrap();
    let uniform = run(&cfg, &dir.path().join("uniform"));
    // Two tokens only: less diversity in the inputs, less noise in the states.
    cfg.unigram = Some([vec![1.0, 1.0], vec![0.0; 8]].concat());
    let skewed = run(&cfg, &dir.path().join("skewed"));
    let v = |s: &Summary| s.points[0].sites[1].variance;
    assert!(
        v(&skewed) < v(&uniform),
        "{} vs {}",
        v(&skewed),
        v(&uniform)
    );

    cfg.unigram = Some(vec![1.0; 9]);
    let err = sweep::load_model(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("has 9 weights but the model's vocabulary has 10"),
        "{err}"
    );
}

/// A sweep process killed mid-run and started again ends with the same numbers as one
/// that ran straight through.
#[test]
fn cli_sweep_killed_and_restarted_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let args = |out: &Path| -> Vec<String> {
        [
            "sweep",
            "--preset",
            "ar1",
            "--lengths",
            "16,32,64,128,256,512",
            "--samples",
            "64",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.to_str().unwrap().to_string()])
        .collect()
    };
    let whole = dir.path().join("whole");
    assert!(
        ceiling(&args(&whole).iter().map(String::as_str).collect::<Vec<_>>())
            .status
            .success()
    );

    let killed = dir.path().join("killed");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ceiling"))
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let first = results::point_path(&killed.join("ar1"), 16);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !first.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(first.exists(), "the first length never finished");
    let finished = results::load_points(&killed.join("ar1")).unwrap().len();
    eprintln!("killed after {finished} of 6 lengths");

    let o = ceiling(&args(&killed).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let read = |d: &Path| -> Summary {
        serde_json::from_str(&std::fs::read_to_string(d.join("ar1/summary.json")).unwrap()).unwrap()
    };
    let (a, b) = (read(&whole), read(&killed));
    assert_eq!(a.points.len(), 6);
    for (x, y) in a.points.iter().zip(&b.points) {
        assert_eq!(x.sites, y.sites, "n = {}", x.n);
    }
    assert_eq!(a.fits, b.fits);
}

/// Over 100 seeds of a small clt sweep the 95% slope interval covers the control's expected
/// slope (its finite-n value for that seed's weights) in close to 95% of runs: 94 of 100 when
/// written. Seeds are fixed, so the count is deterministic; 90..=99 is accepted (a binomial
/// count at p = 0.95 lies there 96% of the time), and intervals as narrow as the old ones (89
/// of 100) or never missing fail. `CEILING_COVERAGE_RUNS=N` runs more seeds.
#[test]
fn clt_slope_interval_covers_its_expectation_at_the_nominal_rate() {
    let runs: u64 = std::env::var("CEILING_COVERAGE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    // The seeds on a device per core.
    let seeds: Vec<u64> = (1000..1000 + runs).collect();
    let mut misses = on_own_devices(&seeds, |gpu, &seed| {
        let mut cfg = config(Preset::Clt);
        cfg.lengths = vec![16, 32, 64, 128, 256];
        cfg.samples = 128;
        cfg.seed = seed;
        let dir = tempfile::tempdir().unwrap();
        let s = run_on(gpu, &cfg, dir.path());
        let e = s.fits[0].expected_slope.expect("an expectation");
        let sl = slope(&s);
        if sl.ci.covers(e) {
            vec![]
        } else {
            vec![format!("seed {seed}: {:.3} {} vs {e:.3}", sl.slope, sl.ci)]
        }
    });
    misses.sort();
    let covered = runs - misses.len() as u64;
    eprintln!("covered {covered} of {runs}; missed: {misses:#?}");
    let rate = covered as f64 / runs as f64;
    assert!(
        (0.9..=0.99).contains(&rate),
        "coverage {covered} of {runs}: {misses:#?}"
    );
}
