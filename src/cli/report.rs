//! `ceiling report DIR...`: merges sweep result directories (shards of one grid, runs on
//! other machines and GPUs) into one table and one set of plots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_core::sweep::{self, results, summary, LengthResult};

#[derive(clap::Args)]
pub struct Args {
    /// Result directories: a sweep's --out directory, or one preset's folder in it; and
    /// bench JSON files (`cargo xtask bench`) or folders of them, compared side by side;
    /// and `ceiling check --json` files, tabulated side by side.
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

/// One result folder as read: its header and finished points.
struct Run {
    dir: PathBuf,
    header: results::RunHeader,
    points: Vec<LengthResult>,
}

/// Runs that measure the same points on the same adapter (shards of one grid, or a run and
/// its extension in another folder): merged into one summary.
struct Group {
    key: String,
    runs: Vec<Run>,
}

/// A folder name of letters, digits and dashes.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// The first 8 hex digits of the SHA-256 of `s`.
fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(s.as_bytes()))[..8].to_string()
}

/// One distinct folder name per group: `<preset>-<adapter>`, and where several groups share
/// it (two configurations of one preset on one adapter), each gets the short hash of its
/// configuration too; a counter settles what is still equal.
fn labels(groups: &[Group]) -> Vec<String> {
    let plain: Vec<String> = groups
        .iter()
        .map(|g| {
            let h = &g.runs[0].header;
            slug(&format!("{}-{}", h.config.preset.name(), h.adapter.name))
        })
        .collect();
    let mut taken = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (g, p) in groups.iter().zip(&plain) {
        let mut label = if plain.iter().filter(|q| *q == p).count() > 1 {
            format!("{p}-{}", short_hash(&g.key))
        } else {
            p.clone()
        };
        let base = label.clone();
        let mut k = 2;
        while !taken.insert(label.clone()) {
            label = format!("{base}-{k}");
            k += 1;
        }
        out.push(label);
    }
    out
}

/// The tool versions of `runs`, each with the folders made by it.
fn versions(runs: &[&Run]) -> BTreeMap<String, Vec<String>> {
    let mut v: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in runs {
        v.entry(format!("{} {}", r.header.tool, r.header.version))
            .or_default()
            .push(r.dir.display().to_string());
    }
    v
}

pub fn run(args: Args) -> Result<()> {
    let (checks, rest): (Vec<PathBuf>, Vec<PathBuf>) = args
        .dirs
        .iter()
        .cloned()
        .partition(|p| super::check::is_check_file(p));
    if !checks.is_empty() {
        super::check::report(&checks, &args.out)?;
        if rest.is_empty() {
            return Ok(());
        }
    }
    let (bench, dirs) = super::bench_report::split_inputs(&rest)?;
    if !bench.is_empty() {
        super::bench_report::run(&bench, &args.out)?;
    }
    if dirs.is_empty() {
        return Ok(());
    }
    // Runs on the same adapter whose configurations differ at most in their lengths are
    // parts of one sweep: merge them. The key leaves the lengths out, not the threshold.
    let mut groups: Vec<Group> = Vec::new();
    for dir in &dirs {
        for run in run_dirs(dir)? {
            let header: results::RunHeader = results::read_json(&run.join("run.json"))?;
            let points = results::load_points(&run)?;
            results::check_run_points(&run, &header.config, &points)?;
            let mut config = serde_json::to_value(&header.config)?;
            if let Some(o) = config.as_object_mut() {
                o.remove("lengths");
            }
            let key = format!("{}|{config}", header.adapter.name);
            let run = Run {
                dir: run,
                header,
                points,
            };
            match groups.iter_mut().find(|g| g.key == key) {
                Some(g) => g.runs.push(run),
                None => groups.push(Group {
                    key,
                    runs: vec![run],
                }),
            }
        }
    }
    groups.sort_by(|a, b| {
        let name = |g: &Group| {
            let h = &g.runs[0].header;
            (h.config.preset, h.adapter.name.clone())
        };
        name(a).cmp(&name(b)).then_with(|| a.key.cmp(&b.key))
    });
    let labels = labels(&groups);
    // Nothing is written over a sweep's own folder (an --out inside the inputs).
    for label in &labels {
        let dir = args.out.join(label);
        if dir.join("run.json").exists() {
            bail!(
                "{} holds a sweep's run.json: the merged summary would overwrite that run's \
                 summary; give another --out",
                dir.display()
            );
        }
    }
    let all: Vec<&Run> = groups.iter().flat_map(|g| &g.runs).collect();
    let by_version = versions(&all);
    if by_version.len() > 1 {
        eprintln!(
            "warning: these results were made by {} versions of the tool, and are merged as \
             they are (each summary.json lists the version of every run in \"runs\"):",
            by_version.len()
        );
        for (version, runs) in &by_version {
            eprintln!("  {version}: {}", runs.join(", "));
        }
    }
    let mut summaries = Vec::new();
    for (group, label) in groups.into_iter().zip(&labels) {
        let runs: Vec<&Run> = group.runs.iter().collect();
        let group_versions = versions(&runs);
        let mut header = group.runs[0].header.clone();
        let mut merged: BTreeMap<usize, (LengthResult, &Path)> = BTreeMap::new();
        for run in &group.runs {
            header.config.lengths = header.config.union_lengths(&run.header.config.lengths);
            for p in &run.points {
                match merged.get(&p.n) {
                    None => {
                        merged.insert(p.n, (p.clone(), &run.dir));
                    }
                    Some((kept, from)) => {
                        let same =
                            serde_json::to_string(&kept.sites)? == serde_json::to_string(&p.sites)?;
                        if !same {
                            eprintln!(
                                "note: {label}: n = {} is in {} and in {} with different \
                                 values; the first is kept",
                                p.n,
                                from.display(),
                                run.dir.display()
                            );
                        }
                    }
                }
            }
        }
        if group_versions.len() > 1 {
            eprintln!(
                "warning: {label} merges points of {}",
                group_versions
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" and ")
            );
            header.version = group
                .runs
                .iter()
                .map(|r| r.header.version.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ");
        }
        let s = sweep::build_summary(header, merged.into_values().map(|(p, _)| p).collect());
        let dir = args.out.join(label);
        // The summary, with the label and every merged run: folder, tool version, lengths.
        let mut json = serde_json::to_value(&s)?;
        if let Some(o) = json.as_object_mut() {
            o.insert("label".into(), label.clone().into());
            let runs: Vec<serde_json::Value> = group
                .runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "dir": r.dir.display().to_string(),
                        "tool": r.header.tool,
                        "version": r.header.version,
                        "adapter": r.header.adapter.name,
                        "driver": r.header.adapter.driver,
                        "lengths": r.points.iter().map(|p| p.n).collect::<Vec<_>>(),
                    })
                })
                .collect();
            o.insert("runs".into(), runs.into());
        }
        results::write_json(&dir.join("summary.json"), &json)?;
        summary::write_tables(&dir, &s)?;
        crate::plot::after_results(label, || crate::plot::variance_plot(&dir, &s));
        summaries.push(s);
    }
    // Where one preset has several runs, the rows are named by their folders.
    let row_labels: Vec<String> = summaries
        .iter()
        .zip(&labels)
        .map(|(s, label)| {
            let preset = s.config.preset;
            if summaries
                .iter()
                .filter(|t| t.config.preset == preset)
                .count()
                > 1
            {
                label.clone()
            } else {
                preset.name().to_string()
            }
        })
        .collect();
    for (s, label) in summaries.iter().zip(&labels) {
        println!(
            "{label}: {} on {} ({}): {} of {} lengths",
            s.config.preset.name(),
            s.adapter.name,
            s.adapter.backend,
            s.points.len(),
            s.config.lengths.len()
        );
    }
    let rows: Vec<(String, &sweep::Summary)> = row_labels.into_iter().zip(&summaries).collect();
    super::sweep::print_table_labelled(&rows);
    crate::plot::after_results("controls", || {
        crate::plot::controls_plot(&args.out.join("controls"), &summaries)
    });
    eprintln!("merged results: {}", args.out.display());
    Ok(())
}
