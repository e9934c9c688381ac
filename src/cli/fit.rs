//! `ceiling fit`: the two-variable loss decomposition L = E + A/N^alpha + B/D^beta, and the
//! same with E = 0, fitted to a CSV of training runs (columns `N`, `D`, `loss`; any other
//! column ignored) by `ceiling_core::curve::fit_table`. Writes DIR/fit.json and prints both
//! forms side by side. The whole table is checked before any fitting.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_core::curve::{self, Bounds, TableComparison, TableFit};

#[derive(clap::Args)]
pub struct Args {
    /// CSV with a header row naming columns `N` (parameters), `D` (training tokens) and
    /// `loss`; other columns are ignored. From your own training runs or a paper.
    #[arg(long)]
    table: PathBuf,
    /// Results directory: fit.json is written there.
    #[arg(long)]
    out: PathBuf,
    /// Bootstrap resamples of the rows for the 95% intervals (0: no intervals).
    #[arg(long, default_value_t = 200, value_parser = super::count::<usize>)]
    bootstrap: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 0, value_parser = super::count::<u64>)]
    seed: u64,
}

/// More resamples than this add nothing to a 95% interval and only take time and memory.
const MAX_BOOTSTRAP: usize = 100_000;
const COLUMNS: [&str; 3] = ["N", "D", "loss"];

pub fn run(args: Args) -> Result<()> {
    if args.bootstrap > MAX_BOOTSTRAP {
        bail!(
            "--bootstrap {} is more than {MAX_BOOTSTRAP}; a 95% interval needs a few hundred to a few thousand",
            args.bootstrap
        );
    }
    let json = args.out.join("fit.json");
    check_out(&args.out, &json, &args.table)?;
    let rows = read_table(&args.table)?;
    let fit = curve::fit_table(&rows, args.bootstrap, args.seed)
        .with_context(|| format!("fitting {}", args.table.display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    write_atomic(&json, &(serde_json::to_string_pretty(&fit)? + "\n"))?;
    print!("{}", report(&fit));
    for f in [&fit.with_pedestal, &fit.without_pedestal] {
        if !f.converged {
            eprintln!(
                "warning: the fit {} did not converge from any starting point; its values are the best reached",
                form_name(f)
            );
        }
    }
    println!("wrote {}", json.display());
    Ok(())
}

/// --out must be a directory (or not exist yet), and fit.json there must not be the table.
fn check_out(out: &Path, json: &Path, table: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        bail!(
            "--out {} is a file; name a directory (fit.json is written inside it)",
            out.display()
        );
    }
    if let (Ok(a), Ok(b)) = (json.canonicalize(), table.canonicalize()) {
        if a == b {
            bail!(
                "--out {} would overwrite the table {} with fit.json; choose another directory",
                out.display(),
                table.display()
            );
        }
    }
    Ok(())
}

/// Reads (N, D, loss) by header name. Every problem names the file, the line and the column.
pub fn read_table(path: &Path) -> Result<Vec<(f64, f64, f64)>> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .with_context(|| format!("opening {file}"))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{file}: reading the header row"))?
        .clone();
    let mut index = [0usize; 3];
    for (slot, name) in index.iter_mut().zip(COLUMNS) {
        let found: Vec<usize> = headers
            .iter()
            .enumerate()
            .filter(|(_, h)| *h == name)
            .map(|(i, _)| i)
            .collect();
        match found.as_slice() {
            [i] => *slot = *i,
            [] => bail!(
                "{file}: no column `{name}` in the header row ({}); the table needs columns N, D and loss (names are case-sensitive)",
                headers.iter().collect::<Vec<_>>().join(", ")
            ),
            _ => bail!("{file}: the header row names column `{name}` more than once; keep one"),
        }
    }
    let mut rows = Vec::new();
    for (r, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{file}: reading data row {}", r + 1))?;
        let line = record.position().map_or(r as u64 + 2, |p| p.line());
        let mut v = [0.0f64; 3];
        for ((slot, &i), name) in v.iter_mut().zip(&index).zip(COLUMNS) {
            let text = record.get(i).unwrap_or("");
            let value: f64 = text.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{file} line {line} (data row {}), column `{name}`: '{text}' is not a number",
                    r + 1
                )
            })?;
            if !(value.is_finite() && value > 0.0) {
                bail!(
                    "{file} line {line} (data row {}), column `{name}`: {text} is not a finite number > 0 (the fit takes logs)",
                    r + 1
                );
            }
            *slot = value;
        }
        rows.push((v[0], v[1], v[2]));
    }
    let need = curve::TABLE_PARAMS + 1;
    if rows.len() < need {
        bail!(
            "{file} has {} data rows; E + A/N^alpha + B/D^beta has {} parameters, so it needs at least {need} rows",
            rows.len(),
            curve::TABLE_PARAMS
        );
    }
    Ok(rows)
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    ceiling_core::files::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {} (nothing was written)", path.display()))
}

fn form_name(f: &TableFit) -> &'static str {
    if f.pedestal {
        "with pedestal"
    } else {
        "without pedestal"
    }
}

/// A number in about four significant digits.
fn num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v == 0.0 {
        "0".into()
    } else if (1e-3..1e5).contains(&v.abs()) {
        let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

fn cell(v: f64, b: Option<Bounds>) -> String {
    match b {
        Some(b) => format!("{} [{}, {}]", num(v), num(b.lo), num(b.hi)),
        None => num(v),
    }
}

/// Both forms side by side, then the shifts the pedestal makes and the choice.
pub fn report(fit: &TableComparison) -> String {
    let mut rows = vec![[
        "form".to_string(),
        "E".into(),
        "A".into(),
        "B".into(),
        "alpha".into(),
        "beta".into(),
        "AICc".into(),
    ]];
    for f in [&fit.with_pedestal, &fit.without_pedestal] {
        let i = f.intervals.as_ref();
        rows.push([
            format!("{}{}", form_name(f), if f.converged { "" } else { " (!)" }),
            cell(f.e, i.map(|i| i.e)),
            cell(f.a, i.map(|i| i.a)),
            cell(f.b, i.map(|i| i.b)),
            cell(f.alpha, i.map(|i| i.alpha)),
            cell(f.beta, i.map(|i| i.beta)),
            f.aicc.map_or("n/a".into(), num),
        ]);
    }
    let mut out = ceiling_core::curve::aligned_table(&rows);
    if fit.bootstrap > 0 {
        out += &format!(
            "[95% bootstrap intervals over {} resamples of the rows]\n",
            fit.bootstrap
        );
    }
    if !(fit.with_pedestal.converged && fit.without_pedestal.converged) {
        out += "(!) did not converge: values are the best reached\n";
    }
    out += &format!(
        "the pedestal shifts alpha by {:+.4} and beta by {:+.4} (with - without)\n",
        fit.alpha_shift, fit.beta_shift
    );
    let choice = match fit.choice {
        curve::Choice::WithPedestal => "with pedestal",
        curve::Choice::WithoutPedestal => "without pedestal",
        curve::Choice::Undecided => "undecided",
    };
    out += &format!("AICc choice: {choice} ({})\n", fit.reason);
    out
}
