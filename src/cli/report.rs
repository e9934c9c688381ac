//! `ceiling report DIR...`: merges sweep result directories (shards of one grid, runs on
//! other machines and GPUs) into one table and one set of plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_host::sweep::{self, results, LengthResult};

#[derive(clap::Args)]
pub struct Args {
    /// Result directories: a sweep's --out directory, or one preset's folder in it; and
    /// bench JSON files (`cargo xtask bench`) or folders of them, compared side by side.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the merged summaries and plots go.
    #[arg(long, default_value = "results/report")]
    out: PathBuf,
}

/// Folders holding a run.json: `dir` itself or its direct subfolders.
fn run_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        bail!("{}: no such result directory", dir.display());
    }
    if dir.join("run.json").is_file() {
        return Ok(vec![dir.to_path_buf()]);
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.join("run.json").is_file() {
            found.push(path);
        }
    }
    if found.is_empty() {
        bail!(
            "{}: holds no sweep results (no run.json in it or its folders)",
            dir.display()
        );
    }
    found.sort();
    Ok(found)
}

pub fn run(args: Args) -> Result<()> {
    let (bench, dirs) = super::bench_report::split_inputs(&args.dirs)?;
    if !bench.is_empty() {
        super::bench_report::run(&bench, &args.out)?;
    }
    if dirs.is_empty() {
        return Ok(());
    }
    // Runs with the same adapter and configuration are parts of one sweep: merge them.
    let mut groups: BTreeMap<String, (results::RunHeader, Vec<LengthResult>)> = BTreeMap::new();
    for dir in &dirs {
        for run in run_dirs(dir)? {
            let header: results::RunHeader = results::read_json(&run.join("run.json"))?;
            let points = results::load_points(&run)?;
            let key = format!(
                "{}|{}",
                header.adapter.name,
                serde_json::to_string(&header.config)?
            );
            let entry = groups.entry(key).or_insert_with(|| (header, Vec::new()));
            entry.1.extend(points);
        }
    }
    let mut summaries = Vec::new();
    for (header, points) in groups.into_values() {
        let s = sweep::build_summary(header, points);
        let slug: String = format!("{}-{}", s.config.preset.name(), s.adapter.name)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let dir = args.out.join(slug);
        results::write_json(&dir.join("summary.json"), &s)?;
        results::write_csv(&dir.join("points.csv"), &s)?;
        crate::plot::after_results(s.config.preset.name(), || {
            crate::plot::variance_plot(&dir, &s)
        });
        summaries.push(s);
    }
    for s in &summaries {
        println!(
            "{} on {} ({}): {} of {} lengths",
            s.config.preset.name(),
            s.adapter.name,
            s.adapter.backend,
            s.points.len(),
            s.config.lengths.len()
        );
    }
    super::sweep::print_table(&summaries);
    crate::plot::after_results("controls", || {
        crate::plot::controls_plot(&args.out.join("controls"), &summaries)
    });
    eprintln!("merged results: {}", args.out.display());
    Ok(())
}
