//! The bench part of `ceiling report`: bench JSON files (`cargo xtask bench`) from several
//! GPUs side by side, a roofline table per adapter, and a roofline plot.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ceiling_core::bench::{roof, BenchReport, BENCH_SCHEMA};
use plotters::prelude::*;

use crate::plot::{register_font, COLORS};

/// Whether `path` is a bench result file (JSON with the bench schema tag).
fn is_bench_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| e == "json")
        && std::fs::read_to_string(path).is_ok_and(|t| {
            serde_json::from_str::<serde_json::Value>(&t)
                .ok()
                .and_then(|v| v.get("schema")?.as_str().map(|s| s == BENCH_SCHEMA))
                .unwrap_or(false)
        })
}

/// Splits the report's inputs into bench files (given directly, or the bench JSON files
/// directly inside a directory) and everything else (sweep result directories).
pub fn split_inputs(paths: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut bench, mut other) = (Vec::new(), Vec::new());
    for p in paths {
        if p.is_file() {
            if !is_bench_file(p) {
                bail!(
                    "{}: not a bench result file (no \"schema\": \"{BENCH_SCHEMA}\"); pass \
                     bench JSON from `cargo xtask bench` or sweep result directories",
                    p.display()
                );
            }
            bench.push(p.clone());
        } else if p.is_dir() && !p.join("run.json").is_file() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| is_bench_file(f))
                .collect();
            if found.is_empty() {
                other.push(p.clone());
            } else {
                found.sort();
                bench.extend(found);
            }
        } else {
            other.push(p.clone());
        }
    }
    Ok((bench, other))
}

/// The column of one report: its adapter, and its size and file where those are needed to
/// tell two reports apart.
fn column_label(i: usize, reports: &[BenchReport], files: &[PathBuf]) -> String {
    let r = &reports[i];
    let mut label = format!("{} ({})", r.adapter.name, r.adapter.backend);
    if reports.iter().any(|o| o.size != r.size) {
        label.push_str(&format!(" [{}]", r.size));
    }
    let same = |o: &BenchReport| o.adapter == r.adapter && o.size == r.size;
    if reports.iter().filter(|o| same(o)).count() > 1 {
        let stem = files[i].file_stem().unwrap_or_default().to_string_lossy();
        label.push_str(&format!(" {{{stem}}}"));
    }
    label
}

fn g(x: f64) -> String {
    format!("{:.3}", x * 1e-9)
}

/// Writes `<out>/bench/{comparison.md, results.csv, roofline.svg, roofline.png}` and
/// prints the tables.
pub fn run(files: &[PathBuf], out: &Path) -> Result<()> {
    let reports = files
        .iter()
        .map(|f| Ok(BenchReport::read(f)?))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = (0..reports.len())
        .map(|i| column_label(i, &reports, files))
        .collect();
    let mut md = String::new();

    writeln!(md, "# Bench results\n\n## Adapters and measured peaks\n")?;
    writeln!(
        md,
        "| adapter | driver | timing | size | copy bandwidth GB/s | best matmul GFLOP/s | \
         best matmul case |\n|---|---|---|---|---:|---:|---|"
    )?;
    for (r, label) in reports.iter().zip(&labels) {
        writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            r.adapter.driver,
            r.timing_method,
            r.size,
            g(r.peak.bandwidth_bytes_per_s),
            g(r.peak.flops_per_s),
            r.peak.flops_case
        )?;
    }

    // Side by side: one row per case name, one column group per adapter.
    let mut names: Vec<&str> = Vec::new();
    for r in &reports {
        for res in &r.results {
            if !names.contains(&res.name.as_str()) {
                names.push(&res.name);
            }
        }
    }
    writeln!(
        md,
        "\n## Side by side\n\nPer adapter: median time (ms), GFLOP/s (GB/s for copies), \
         and the fraction of the roofline attained.\n"
    )?;
    write!(md, "| case |")?;
    for l in &labels {
        write!(md, " {l} ms | GFLOP/s | % roof |")?;
    }
    write!(md, "\n|---|")?;
    for _ in &labels {
        write!(md, "---:|---:|---:|")?;
    }
    writeln!(md)?;
    for name in &names {
        write!(md, "| {name} |")?;
        for r in &reports {
            match r.results.iter().find(|x| x.name == *name) {
                Some(x) => {
                    let rate = if x.flops > 0.0 {
                        x.flops_per_s
                    } else {
                        x.bytes_per_s
                    };
                    write!(
                        md,
                        " {:.3} | {} | {:.1} |",
                        x.time.stats.median_s * 1e3,
                        g(rate),
                        x.frac_roofline * 100.0
                    )?
                }
                None => write!(md, " - | - | - |")?,
            }
        }
        writeln!(md)?;
    }

    // Roofline table per adapter.
    for (r, label) in reports.iter().zip(&labels) {
        writeln!(
            md,
            "\n## Roofline: {label}\n\nPeaks: {} GB/s (copy), {} GFLOP/s (best matmul); ridge \
             at {:.2} FLOP/byte.\n",
            g(r.peak.bandwidth_bytes_per_s),
            g(r.peak.flops_per_s),
            r.peak.flops_per_s / r.peak.bandwidth_bytes_per_s.max(f64::MIN_POSITIVE)
        )?;
        writeln!(
            md,
            "| case | median ms | IQR % | FLOP/byte | GFLOP/s | GB/s | attainable GFLOP/s | \
             bound | % roof |\n|---|---:|---:|---:|---:|---:|---:|---|---:|"
        )?;
        for x in &r.results {
            let (attainable, _) = roof(
                x.intensity,
                r.peak.flops_per_s,
                r.peak.bandwidth_bytes_per_s,
            );
            writeln!(
                md,
                "| {} | {:.3} | {:.0} | {:.2} | {} | {} | {} | {} | {:.1} |",
                x.name,
                x.time.stats.median_s * 1e3,
                x.time.stats.rel_iqr * 100.0,
                x.intensity,
                g(x.flops_per_s),
                g(x.bytes_per_s),
                if x.flops > 0.0 {
                    g(attainable)
                } else {
                    "-".into()
                },
                x.bound,
                x.frac_roofline * 100.0
            )?;
        }
    }

    let dir = out.join("bench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    write_atomic(&dir.join("comparison.md"), &md)?;
    write_atomic(&dir.join("results.csv"), &csv(&reports, &labels))?;
    roofline_plot(&dir.join("roofline"), &reports, &labels)?;
    println!("{md}");
    eprintln!(
        "bench report of {} file(s): {}",
        reports.len(),
        dir.display()
    );
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    ceiling_core::files::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {} (nothing was written)", path.display()))
}

fn csv(reports: &[BenchReport], labels: &[String]) -> String {
    let mut s = String::from(
        "adapter,backend,driver,size,name,kernel,precision,method,median_s,p25_s,p75_s,\
         flops,bytes,flops_per_s,bytes_per_s,intensity,bound,frac_roofline,\
         peak_flops_per_s,peak_bytes_per_s\n",
    );
    let q = |t: &str| format!("\"{}\"", t.replace('"', "'"));
    for (r, _label) in reports.iter().zip(labels) {
        for x in &r.results {
            let st = &x.time.stats;
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{:e},{},{:e},{:e},{:e}\n",
                q(&r.adapter.name),
                r.adapter.backend,
                q(&r.adapter.driver),
                r.size,
                q(&x.name),
                x.kernel,
                x.precision,
                x.time.method,
                st.median_s,
                st.p25_s,
                st.p75_s,
                x.flops,
                x.bytes,
                x.flops_per_s,
                x.bytes_per_s,
                x.intensity,
                x.bound,
                x.frac_roofline,
                r.peak.flops_per_s,
                r.peak.bandwidth_bytes_per_s
            ));
        }
    }
    s
}

/// Writes `<stem>.svg` and `<stem>.png`: FLOP/s against FLOP/byte, log-log, each adapter's
/// roofs (bandwidth slope and arithmetic ceiling) and its kernels (circle: matmul,
/// triangle: attention, cross: other).
fn roofline_plot(stem: &Path, reports: &[BenchReport], labels: &[String]) -> Result<()> {
    register_font();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    let size = (1000, 680);
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        reports,
        labels,
    )
    .with_context(|| format!("drawing {}", svg.display()))?;
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        reports,
        labels,
    )
    .with_context(|| format!("drawing {}", png.display()))
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    reports: &[BenchReport],
    labels: &[String],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e:?}");
    area.fill(&WHITE).map_err(e)?;
    let points = reports
        .iter()
        .flat_map(|r| r.results.iter())
        .filter(|x| x.flops > 0.0 && x.intensity > 0.0 && x.flops_per_s > 0.0);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for x in points {
        x0 = x0.min(x.intensity);
        x1 = x1.max(x.intensity);
        y0 = y0.min(x.flops_per_s);
        y1 = y1.max(x.flops_per_s);
    }
    for r in reports {
        if r.peak.flops_per_s > 0.0 {
            y1 = y1.max(r.peak.flops_per_s);
            if r.peak.bandwidth_bytes_per_s > 0.0 {
                // Show the ridge point, where the bandwidth slope meets the ceiling.
                let ridge = r.peak.flops_per_s / r.peak.bandwidth_bytes_per_s;
                x0 = x0.min(ridge / 2.0);
                x1 = x1.max(2.0 * ridge);
                y0 = y0.min(r.peak.flops_per_s / 4.0);
            }
        }
    }
    if !(x0 <= x1 && y0 <= y1) {
        bail!("no results with FLOP to plot");
    }
    let (x0, x1, y0, y1) = (x0 / 2.0, x1 * 2.0, y0 / 3.0, y1 * 2.0);
    let mut chart = ChartBuilder::on(&area)
        .caption(
            "roofline: achieved FLOP/s against arithmetic intensity",
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(90)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("arithmetic intensity (FLOP / byte of compulsory traffic)")
        .y_desc("FLOP/s")
        .y_label_formatter(&|v| format!("{:.2e}", v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(e)?;
    for (i, (r, label)) in reports.iter().zip(labels).enumerate() {
        let color = COLORS[i % COLORS.len()];
        let (pf, pb) = (r.peak.flops_per_s, r.peak.bandwidth_bytes_per_s);
        if pf > 0.0 && pb > 0.0 {
            let steps = 64;
            let roofline = (0..=steps).map(|s| {
                let x = x0 * (x1 / x0).powf(s as f64 / steps as f64);
                (x, roof(x, pf, pb).0.max(y0))
            });
            chart
                .draw_series(LineSeries::new(roofline, color.stroke_width(2)))
                .map_err(e)?
                .label(format!(
                    "{label}: {:.2} GB/s, {:.2} GFLOP/s",
                    pb * 1e-9,
                    pf * 1e-9
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        let pts: Vec<_> = r
            .results
            .iter()
            .filter(|x| x.flops > 0.0 && x.intensity > 0.0 && x.flops_per_s > 0.0)
            .collect();
        chart
            .draw_series(
                pts.iter()
                    .filter(|x| x.kernel == "matmul")
                    .map(|x| Circle::new((x.intensity, x.flops_per_s), 4, color.filled())),
            )
            .map_err(e)?;
        chart
            .draw_series(
                pts.iter()
                    .filter(|x| x.kernel.starts_with("attention"))
                    .map(|x| TriangleMarker::new((x.intensity, x.flops_per_s), 5, color.filled())),
            )
            .map_err(e)?;
        chart
            .draw_series(
                pts.iter()
                    .filter(|x| x.kernel != "matmul" && !x.kernel.starts_with("attention"))
                    .map(|x| Cross::new((x.intensity, x.flops_per_s), 5, color.stroke_width(2))),
            )
            .map_err(e)?;
    }
    chart
        .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
        .map_err(e)?
        .label("circle: matmul, triangle: attention, cross: norm / reduce / forward")
        .legend(|(x, y)| Circle::new((x + 9, y), 3, BLACK.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e)?;
    area.present().map_err(e)?;
    Ok(())
}
