//! `ceiling check`: every registered kernel case against its f64 reference on one adapter,
//! for a team's GPU CI. One line per case, JUnit XML and the JSON `ceiling report` reads;
//! exit status 1 on any failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ceiling_host::cases::{self, CheckReport, CHECK_SCHEMA};
use ceiling_host::{AdapterRequest, Gpu};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

#[derive(clap::Args)]
pub struct Args {
    /// Only the cases whose name (`kernel/shape`, as printed) matches: `*` matches anything,
    /// and a pattern without `*` matches names that contain it (`attention`, `*norm/*x384`).
    #[arg(long)]
    kernels: Option<String>,
    /// Write a JUnit XML report here (one test suite per kernel).
    #[arg(long)]
    junit: Option<PathBuf>,
    /// Write the results as JSON here; `ceiling report` tabulates such files side by side.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw the inputs from this seed (default: a fresh one, printed) to reproduce a run.
    #[arg(long, value_parser = super::count::<u64>)]
    seed: Option<u64>,
    /// List the cases that would run, without running them.
    #[arg(long)]
    list: bool,
}

pub fn run(args: Args, adapter: &AdapterRequest) -> Result<()> {
    for (path, flag) in [(&args.junit, "--junit"), (&args.json, "--json")] {
        if let Some(p) = path {
            super::kernel::check_output_path(p, flag)?;
        }
    }
    let selected = cases::select(cases::checks(), args.kernels.as_deref());
    if selected.is_empty() {
        let kernels: std::collections::BTreeSet<&str> =
            cases::checks().iter().map(|c| c.kernel()).collect();
        bail!(
            "no case matches --kernels {:?}; the kernels are: {}",
            args.kernels.unwrap_or_default(),
            kernels.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    if args.list {
        for c in &selected {
            let shapes: Vec<String> = c
                .inputs()
                .iter()
                .map(|t| format!("{} {:?}", t.name, t.shape))
                .collect();
            println!("{}  ({})", c.name(), shapes.join(", "));
        }
        return Ok(());
    }
    let gpu = Gpu::new(adapter)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!(
        "checking {} cases on {} ({}), seed {seed}",
        selected.len(),
        gpu.name(),
        gpu.summary.backend
    );
    let mut results = vec![];
    for case in &selected {
        let checks = cases::check_every_variant(&gpu, case.as_ref(), seed, |r| println!("{r}"))
            .with_context(|| format!("checking {}", case.name()))?;
        results.extend(checks);
    }
    let report = CheckReport::new(gpu.summary.clone(), seed, results);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        ceiling_core::files::write_atomic(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.junit {
        write_junit(path, &report)?;
    }
    let failed = report.failures();
    let total = report.results.len();
    if failed > 0 {
        bail!(
            "{failed} of {total} checks failed on {} (reproduce with --seed {seed})",
            report.adapter.name
        );
    }
    eprintln!("all {total} checks passed on {}", report.adapter.name);
    Ok(())
}

fn write_junit(path: &Path, report: &CheckReport) -> Result<()> {
    let mut junit = Report::new(format!("ceiling check on {}", report.adapter.name));
    let mut suites: Vec<TestSuite> = vec![];
    for r in &report.results {
        let name = r.id();
        let status = if r.passed() {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(r.to_string());
            s
        };
        let mut case = TestCase::new(name, status);
        case.set_classname(format!("ceiling.{}", r.kernel));
        case.set_time(Duration::from_secs_f64(r.seconds));
        case.set_system_out(r.to_string());
        if !suites.iter().any(|s| s.name.as_str() == r.kernel) {
            suites.push(TestSuite::new(r.kernel.clone()));
        }
        let suite = suites.iter_mut().find(|s| s.name.as_str() == r.kernel);
        suite.expect("pushed above").add_test_case(case);
    }
    junit.add_test_suites(suites);
    let xml = junit.to_string().context("serialising the JUnit report")?;
    ceiling_core::files::write_atomic(path, xml.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Whether `path` is a check result file (JSON with the check schema tag).
pub fn is_check_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| e == "json")
        && std::fs::read_to_string(path).is_ok_and(|t| {
            serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v.get("schema")?.as_str().map(|s| s == CHECK_SCHEMA))
                .unwrap_or(false)
        })
}

/// The check part of `ceiling report`: one row per check, one column per file (adapter),
/// each cell the worst output's error against its tolerance; `checks.md` and `checks.csv`.
pub fn report(files: &[PathBuf], out: &Path) -> Result<()> {
    let mut reports = vec![];
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let r: CheckReport = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a check result file", f.display()))?;
        reports.push(r);
    }
    let mut rows: Vec<String> = vec![];
    for r in &reports {
        for c in &r.results {
            let key = c.id();
            if !rows.contains(&key) {
                rows.push(key);
            }
        }
    }
    let cell = |r: &CheckReport, key: &str| -> String {
        match r.results.iter().find(|c| c.id() == key) {
            None => "-".into(),
            Some(c) if c.error.is_some() => "refused".into(),
            Some(c) => {
                let verdict = if c.passed() { "ok" } else { "FAIL" };
                c.worst().map_or(verdict.into(), |w| {
                    format!("{verdict} {:.1e}/{:.0e}", w.error, w.tolerance)
                })
            }
        }
    };
    let names: Vec<String> = reports
        .iter()
        .map(|r| format!("{} ({})", r.adapter.name, r.adapter.backend))
        .collect();
    let mut md = format!(
        "| check | {} |\n|---|{}\n",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let mut csv = csv::Writer::from_writer(vec![]);
    let mut header = vec!["check".to_string()];
    header.extend(names.iter().cloned());
    csv.write_record(&header)?;
    for key in &rows {
        let cells: Vec<String> = reports.iter().map(|r| cell(r, key)).collect();
        md += &format!("| {key} | {} |\n", cells.join(" | "));
        let mut rec = vec![key.clone()];
        rec.extend(cells);
        csv.write_record(&rec)?;
    }
    for (name, r) in names.iter().zip(&reports) {
        md += &format!(
            "\n{name}: {} of {} checks failed (seed {})",
            r.failures(),
            r.results.len(),
            r.seed
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let csv = csv.into_inner().context("writing the check table")?;
    for (file, bytes) in [("checks.md", md.into_bytes()), ("checks.csv", csv)] {
        let path = out.join(file);
        ceiling_core::files::write_atomic(&path, &bytes)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
