//! Plots of sweep results as SVG and PNG (plotters; the PNG text uses a font shipped in a
//! crate, so no system fonts are needed).

use std::path::Path;

use anyhow::{Context, Result};
use ceiling_core::sweep::summary::{percentile_interval, Summary};
use plotters::coord::Shift;
use plotters::prelude::*;

const SIZE: (u32, u32) = (900, 620);
pub const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Makes the font that ships with the binary the "sans-serif" of every plot.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        );
    });
}

/// One curve: (x, y, y_lo, y_hi) points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64, f64)>,
    /// Fitted curves, drawn dashed in the series' colour.
    pub curves: Vec<Curve>,
}

/// y = e + a x^-alpha (a straight line in log-log space when e = 0).
#[derive(Clone, Copy, Debug)]
pub struct Curve {
    pub e: f64,
    pub a: f64,
    pub alpha: f64,
}

impl Curve {
    /// The line ln y = intercept + slope ln x.
    pub fn line(slope: f64, intercept: f64) -> Self {
        Self {
            e: 0.0,
            a: intercept.exp(),
            alpha: -slope,
        }
    }

    fn at(&self, x: f64) -> f64 {
        self.e + self.a * x.powf(-self.alpha)
    }
}

/// Axis titles of a plot.
pub struct Labels<'a> {
    pub title: &'a str,
    pub x: &'a str,
    pub y: &'a str,
}

/// What a plot call did.
#[derive(Debug, PartialEq, Eq)]
pub enum Drawn {
    Written,
    /// Nothing drawable: no point with positive, finite x and y on log axes.
    Empty,
}

/// Whether a point can be drawn on log-log axes.
fn drawable(p: &(f64, f64, f64, f64)) -> bool {
    p.0 > 0.0 && p.1 > 0.0 && p.0.is_finite() && p.1.is_finite()
}

/// The log-axis ranges that hold every drawable point, padded; one x or one y value (a
/// single context length) gets a range around it.
fn ranges(series: &[Series]) -> Option<((f64, f64), (f64, f64))> {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y, lo, hi) in series
        .iter()
        .flat_map(|s| &s.points)
        .filter(|p| drawable(p))
    {
        x0 = x0.min(x);
        x1 = x1.max(x);
        for v in [y, lo, hi] {
            if v > 0.0 && v.is_finite() {
                y0 = y0.min(v);
                y1 = y1.max(v);
            }
        }
    }
    if x0 > x1 {
        return None;
    }
    Some(((x0 / 1.2, x1 * 1.2), (y0 / 1.2, y1 * 1.2)))
}

/// Writes `<stem>.svg` and `<stem>.png` (each to a temporary name first, then renamed, so
/// an interrupted or failed write never leaves half a plot): log-log axes; points with x or
/// y <= 0 are left out. Returns `Drawn::Empty`, writing nothing, when no point is drawable.
pub fn loglog(
    stem: &Path,
    labels: &Labels,
    series: &[Series],
    reference: Option<(f64, f64)>,
) -> Result<Drawn> {
    let Some(ranges) = ranges(series) else {
        eprintln!(
            "note: {}.svg/png skipped: no positive value to draw on log axes",
            stem.display()
        );
        return Ok(Drawn::Empty);
    };
    register_font();
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    // The bitmap encoder picks its format from the extension: keep it last.
    let (svg_tmp, png_tmp) = (
        stem.with_extension("tmp.svg"),
        stem.with_extension("tmp.png"),
    );
    let written = draw(
        SVGBackend::new(&svg_tmp, SIZE).into_drawing_area(),
        labels,
        series,
        reference,
        ranges,
    )
    .with_context(|| format!("drawing {}", svg.display()))
    .and_then(|()| {
        draw(
            BitMapBackend::new(&png_tmp, SIZE).into_drawing_area(),
            labels,
            series,
            reference,
            ranges,
        )
        .with_context(|| format!("drawing {}", png.display()))
    })
    .and_then(|()| {
        std::fs::rename(&svg_tmp, &svg)?;
        std::fs::rename(&png_tmp, &png)?;
        Ok(())
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&svg_tmp);
        let _ = std::fs::remove_file(&png_tmp);
    }
    written.map(|()| Drawn::Written)
}

/// Runs the plots of a finished piece of work: a failure to draw is reported as a warning,
/// never an error, since the data they show is already written.
pub fn after_results(what: &str, plots: impl FnOnce() -> Result<()>) {
    if let Err(e) = plots() {
        eprintln!("warning: the {what} plots were not written ({e:#}); the results are complete");
    }
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    labels: &Labels,
    series: &[Series],
    reference: Option<(f64, f64)>,
    ((x0, x1), (y0, y1)): ((f64, f64), (f64, f64)),
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&area)
        .caption(labels.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(labels.x)
        .y_desc(labels.y)
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let valid: Vec<_> = s.points.iter().filter(|p| drawable(p)).copied().collect();
        chart
            .draw_series(LineSeries::new(
                valid.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(&s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(valid.iter().map(|p| {
                ErrorBar::new_vertical(p.0, p.2.max(y0), p.1, p.3.min(y1), color.filled(), 6)
            }))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // A line needs two points; a curve with a pedestal is drawn through 64, evenly in ln x.
        for (k, c) in s.curves.iter().enumerate() {
            let steps = if c.e == 0.0 { 1 } else { 63 };
            let xs =
                (0..=steps).map(|j| (x0.ln() + (x1 / x0).ln() * j as f64 / steps as f64).exp());
            let line: Vec<(f64, f64)> = xs
                .map(|x| (x, c.at(x)))
                .filter(|p| p.1 > 0.0 && p.1.is_finite())
                .collect();
            let (dash, gap) = if k == 0 { (6, 4) } else { (2, 3) };
            chart
                .draw_series(DashedLineSeries::new(
                    line,
                    dash,
                    gap,
                    color.stroke_width(1),
                ))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    if let Some((x_ref, y_ref)) = reference {
        let line = [x0, x1].map(|x| (x, y_ref * x_ref / x));
        chart
            .draw_series(DashedLineSeries::new(line, 3, 3, BLACK.stroke_width(1)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label("1/n reference")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    area.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A short tick label: integers as integers, other values with three significant digits.
fn tick(v: f64) -> String {
    if v >= 1.0 && v.fract() == 0.0 && v < 1e6 {
        format!("{v:.0}")
    } else if (1e-3..1e4).contains(&v.abs()) {
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.2e}")
    }
}

/// V against n for each site of one sweep, with fitted lines and the 1/n reference; then
/// the SNR plots.
pub fn variance_plot(dir: &Path, s: &Summary) -> Result<()> {
    let series: Vec<Series> = s
        .fits
        .iter()
        .enumerate()
        .map(|(i, f)| Series {
            label: match &f.slope_n {
                Some(sl) => format!("{} (slope {:.3})", f.site, sl.slope),
                None => f.site.clone(),
            },
            points: s
                .points
                .iter()
                .map(|p| {
                    let site = &p.sites[i];
                    let (lo, hi) = percentile_interval(&site.variance_boot);
                    (p.n as f64, site.variance, lo, hi)
                })
                .collect(),
            // The weighted line, and beside it the fit with a pedestal (dotted).
            curves: f
                .slope_n
                .iter()
                .map(|sl| Curve::line(sl.slope, sl.intercept))
                .chain(f.curves.iter().map(|c| Curve {
                    e: c.pedestal.e,
                    a: c.pedestal.a,
                    alpha: c.pedestal.alpha,
                }))
                .collect(),
        })
        .collect();
    let reference = s.points.first().map(|p| (p.n as f64, p.sites[0].variance));
    loglog(
        &dir.join("variance"),
        &Labels {
            title: &format!(
                "{}: noise V(n) on {}",
                s.config.preset.name(),
                s.adapter.name
            ),
            x: "context length n",
            y: "V(n) = tr Cov(h)",
        },
        &series,
        reference,
    )?;
    snr_plots(dir, s)
}

/// SNR against n and, for the planted task, read-out accuracy against the Fisher SNR.
fn snr_plots(dir: &Path, s: &Summary) -> Result<()> {
    let sites = 0..s.fits.len();
    let snr: Vec<Series> = sites
        .clone()
        .map(|i| Series {
            label: s.fits[i].site.clone(),
            points: s
                .points
                .iter()
                .map(|p| {
                    let site = &p.sites[i];
                    let (lo, hi) = percentile_interval(&site.snr_boot);
                    (p.n as f64, site.snr, lo, hi)
                })
                .collect(),
            curves: Vec::new(),
        })
        .collect();
    loglog(
        &dir.join("snr"),
        &Labels {
            title: &format!(
                "{}: SNR against n (positive values)",
                s.config.preset.name()
            ),
            x: "context length n",
            y: "SNR = (|mu|^2 - V/S) / V",
        },
        &snr,
        None,
    )?;
    let accuracy: Vec<Series> = sites
        .map(|i| Series {
            label: s.fits[i].site.clone(),
            points: s
                .points
                .iter()
                .filter_map(|p| {
                    let site = &p.sites[i];
                    let (f, a) = (site.fisher_snr?, site.readout_accuracy?);
                    Some((f, a, a, a))
                })
                .collect(),
            curves: Vec::new(),
        })
        .filter(|x| !x.points.is_empty())
        .collect();
    if !accuracy.is_empty() {
        loglog(
            &dir.join("accuracy"),
            &Labels {
                title: &format!("{}: read-out accuracy against SNR", s.config.preset.name()),
                x: "Fisher SNR (between / within class)",
                y: "linear read-out accuracy",
            },
            &accuracy,
            None,
        )?;
    }
    Ok(())
}

/// Normalised V(n) / V(n_min) of several sweeps on one plot.
pub fn controls_plot(path: &Path, summaries: &[Summary]) -> Result<()> {
    let series: Vec<Series> = summaries
        .iter()
        .filter(|s| !s.points.is_empty())
        .map(|s| {
            let v0 = s.points[0].sites[0].variance;
            Series {
                label: format!(
                    "{} (slope {})",
                    s.config.preset.name(),
                    s.fits
                        .first()
                        .and_then(|f| f.slope_n.as_ref())
                        .map_or("-".into(), |sl| format!("{:.3}", sl.slope))
                ),
                points: s
                    .points
                    .iter()
                    .map(|p| {
                        let (lo, hi) = percentile_interval(&p.sites[0].variance_boot);
                        (p.n as f64, p.sites[0].variance / v0, lo / v0, hi / v0)
                    })
                    .collect(),
                curves: Vec::new(),
            }
        })
        .collect();
    if series.is_empty() {
        return Ok(());
    }
    loglog(
        path,
        &Labels {
            title: "noise against context length, normalised at the shortest n",
            x: "context length n",
            y: "V(n) / V(n_min)",
        },
        &series,
        summaries
            .iter()
            .filter_map(|s| s.points.first())
            .map(|p| p.n as f64)
            .reduce(f64::min)
            .map(|n_min| (n_min, 1.0)),
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: Vec<(f64, f64, f64, f64)>) -> Vec<Series> {
        vec![Series {
            label: "s".into(),
            points,
            curves: vec![Curve::line(-1.0, 0.0)],
        }]
    }

    const LABELS: Labels = Labels {
        title: "t",
        x: "x",
        y: "y",
    };

    #[test]
    fn a_single_point_is_drawn_with_a_range_around_it() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("one");
        let drawn = loglog(
            &stem,
            &LABELS,
            &series(vec![(256.0, 0.5, 0.5, 0.5)]),
            Some((256.0, 0.5)),
        )
        .unwrap();
        assert_eq!(drawn, Drawn::Written);
        assert!(stem.with_extension("svg").exists() && stem.with_extension("png").exists());
        let ((x0, x1), (y0, y1)) = ranges(&series(vec![(256.0, 0.5, 0.5, 0.5)])).unwrap();
        assert!(x0 < 256.0 && 256.0 < x1 && y0 < 0.5 && 0.5 < y1);
    }

    #[test]
    fn nothing_drawable_writes_nothing_and_is_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("none");
        let points = vec![
            (16.0, -0.1, -0.2, 0.0),
            (32.0, 0.0, -0.1, 0.1),
            (0.0, 1.0, 1.0, 1.0),
        ];
        let drawn = loglog(&stem, &LABELS, &series(points), None).unwrap();
        assert_eq!(drawn, Drawn::Empty);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
