//! The bench result file: the JSON that `cargo xtask bench` writes and `ceiling report`
//! reads. Adapter, timing method, measured peaks (a large buffer copy for bandwidth, the best
//! matmul for arithmetic) and, per case, shape, precision, median and spread, FLOP/s,
//! bytes/s, fraction of the peaks and the roofline bound. The timing itself (GPU timestamps
//! or the wall clock) is `ceiling_host::timing`.

use crate::stats::{quantile, QuantileRule};
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::adapter::AdapterSummary;
use crate::files::FileError;

/// How a region was timed, as written in result files.
pub const METHOD_TIMESTAMP: &str = "gpu-timestamp";
pub const METHOD_WALL: &str = "wall-clock";

/// Median and spread of the timed runs of one case, in seconds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stats {
    pub samples: usize,
    pub median_s: f64,
    pub mean_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    /// 25th and 75th percentiles (linear interpolation).
    pub p25_s: f64,
    pub p75_s: f64,
    /// Median absolute deviation from the median.
    pub mad_s: f64,
    /// (p75 - p25) / median: the relative spread.
    pub rel_iqr: f64,
}

impl Stats {
    /// Statistics of positive, finite samples; `None` when there are none.
    pub fn from_samples(samples: &[f64]) -> Option<Stats> {
        let mut s: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        if s.is_empty() {
            return None;
        }
        s.sort_by(f64::total_cmp);
        let median = quantile(&s, 0.5, QuantileRule::Linear);
        let mut dev: Vec<f64> = s.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let (p25, p75) = (
            quantile(&s, 0.25, QuantileRule::Linear),
            quantile(&s, 0.75, QuantileRule::Linear),
        );
        Some(Stats {
            samples: s.len(),
            median_s: median,
            mean_s: s.iter().sum::<f64>() / s.len() as f64,
            min_s: s[0],
            max_s: s[s.len() - 1],
            p25_s: p25,
            p75_s: p75,
            mad_s: quantile(&dev, 0.5, QuantileRule::Linear),
            rel_iqr: if median > 0.0 {
                (p75 - p25) / median
            } else {
                0.0
            },
        })
    }
}

/// A timed case: the method and the statistics of its runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    pub method: String,
    pub stats: Stats,
}

/// The version tag of [`BenchReport`] files.
pub const BENCH_SCHEMA: &str = "ceiling-bench/1";

/// One bench result file: everything needed to compare it with other GPUs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    /// Always [`BENCH_SCHEMA`].
    pub schema: String,
    pub tool_version: String,
    /// Seconds since the Unix epoch when the file was written.
    pub created_unix_s: u64,
    pub adapter: AdapterSummary,
    /// The method used where timestamps were possible ("gpu-timestamp" or "wall-clock");
    /// every result names its own method too.
    pub timing_method: String,
    pub timestamp_period_ns: f64,
    /// "small" (sized for lavapipe) or "large" (real GPUs).
    pub size: String,
    /// Criterion settings and input sets per case.
    pub settings: BTreeMap<String, serde_json::Value>,
    pub peak: Peak,
    pub results: Vec<BenchResult>,
}

/// The adapter's measured peaks.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Peak {
    /// Bytes per second of a large buffer-to-buffer copy (read + write).
    pub bandwidth_bytes_per_s: f64,
    pub bandwidth_case: String,
    /// FLOP per second of the best matmul measured (any precision, any tiling).
    pub flops_per_s: f64,
    pub flops_case: String,
    /// The best matmul per storage precision ("f32", "f16").
    pub flops_per_s_by_precision: BTreeMap<String, f64>,
}

/// One benchmarked case.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    /// Unique within a file and equal across GPUs for the same case, e.g.
    /// "matmul/square-512/f32/16x16x16".
    pub name: String,
    /// matmul, attention, attention_unfused, layer_norm, column_moments, forward, copy.
    pub kernel: String,
    /// Storage precision (arithmetic is f32 in every kernel).
    pub precision: String,
    /// Kernel options: tiles, attention kernel, causal.
    pub variant: String,
    /// Named dimensions.
    pub shape: BTreeMap<String, u64>,
    /// Useful floating-point work of one run (causal attention counts the unmasked half;
    /// the unfused baseline is credited with the same work as the fused kernel).
    pub flops: f64,
    /// Compulsory memory traffic of one run: inputs read once, outputs written once.
    pub bytes: f64,
    /// Input sets rotated over.
    pub input_sets: usize,
    pub time: Measurement,
    pub flops_per_s: f64,
    pub bytes_per_s: f64,
    /// FLOP per byte.
    pub intensity: f64,
    pub frac_peak_flops: f64,
    pub frac_peak_bandwidth: f64,
    /// "bandwidth" or "compute": the roof that is lower at this intensity.
    pub bound: String,
    /// Achieved / attainable, where attainable = min(peak FLOP/s, intensity x peak B/s).
    pub frac_roofline: f64,
}

impl BenchResult {
    /// A result with its rates; peak fractions are filled in by [`BenchReport::apply_peaks`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        kernel: &str,
        precision: &str,
        variant: String,
        shape: BTreeMap<String, u64>,
        flops: f64,
        bytes: f64,
        input_sets: usize,
        time: Measurement,
    ) -> Self {
        let t = time.stats.median_s.max(f64::MIN_POSITIVE);
        Self {
            name,
            kernel: kernel.into(),
            precision: precision.into(),
            variant,
            shape,
            flops,
            bytes,
            input_sets,
            flops_per_s: flops / t,
            bytes_per_s: bytes / t,
            intensity: if bytes > 0.0 { flops / bytes } else { 0.0 },
            time,
            frac_peak_flops: 0.0,
            frac_peak_bandwidth: 0.0,
            bound: String::new(),
            frac_roofline: 0.0,
        }
    }
}

impl BenchReport {
    /// A report stamped with the schema, this tool's version and the time, with the
    /// arithmetic peak and every result's fractions filled in from `peak`'s bandwidth and
    /// the best matmul (see [`BenchReport::apply_peaks`]).
    pub fn new(
        adapter: AdapterSummary,
        timing_method: String,
        timestamp_period_ns: f64,
        size: String,
        settings: BTreeMap<String, serde_json::Value>,
        peak: Peak,
        results: Vec<BenchResult>,
    ) -> Self {
        let mut report = BenchReport {
            schema: BENCH_SCHEMA.into(),
            // Every crate of the workspace has the version of the tool.
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_unix_s: unix_seconds(),
            adapter,
            timing_method,
            timestamp_period_ns,
            size,
            settings,
            peak,
            results,
        };
        report.apply_peaks();
        report
    }

    /// Sets the arithmetic peak from the best matmul and fills in every result's fractions
    /// and roofline bound. The bandwidth peak must be set before.
    pub fn apply_peaks(&mut self) {
        let mut best: Option<&BenchResult> = None;
        self.peak.flops_per_s_by_precision.clear();
        for r in self.results.iter().filter(|r| r.kernel == "matmul") {
            let e = self
                .peak
                .flops_per_s_by_precision
                .entry(r.precision.clone())
                .or_insert(0.0);
            *e = e.max(r.flops_per_s);
            if best.is_none_or(|b| r.flops_per_s > b.flops_per_s) {
                best = Some(r);
            }
        }
        if let Some(b) = best {
            self.peak.flops_per_s = b.flops_per_s;
            self.peak.flops_case = b.name.clone();
        }
        let (pf, pb) = (self.peak.flops_per_s, self.peak.bandwidth_bytes_per_s);
        for r in &mut self.results {
            r.frac_peak_flops = if pf > 0.0 { r.flops_per_s / pf } else { 0.0 };
            r.frac_peak_bandwidth = if pb > 0.0 { r.bytes_per_s / pb } else { 0.0 };
            let (attainable, bound) = roof(r.intensity, pf, pb);
            r.bound = if pf > 0.0 && pb > 0.0 {
                bound.into()
            } else {
                "unknown (a peak was not measured)".into()
            };
            r.frac_roofline = if r.flops > 0.0 && attainable > 0.0 {
                r.flops_per_s / attainable
            } else {
                r.frac_peak_bandwidth
            };
        }
    }
}

impl BenchReport {
    /// Writes the report as pretty JSON, atomically (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        crate::files::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads a report, refusing files of another schema.
    pub fn read(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FileError::caused(path, format!("cannot read: {e}"), e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| FileError::caused(path, format!("not JSON: {e}"), e))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(BENCH_SCHEMA) => {}
            other => {
                return Err(FileError::new(
                    path,
                    format!(
                        "not a bench result (schema {other:?}, expected {BENCH_SCHEMA:?}); \
                         write one with `cargo xtask bench`"
                    ),
                ))
            }
        }
        serde_json::from_value(value).map_err(|e| FileError::caused(path, e.to_string(), e))
    }
}

/// Attainable FLOP/s at `intensity` FLOP/byte under the two roofs, and the lower roof.
pub fn roof(intensity: f64, peak_flops: f64, peak_bandwidth: f64) -> (f64, &'static str) {
    let memory = intensity * peak_bandwidth;
    if memory < peak_flops {
        (memory, "bandwidth")
    } else {
        (peak_flops, "compute")
    }
}

/// A file name part from an adapter name: ASCII letters and digits, '-' elsewhere.
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    s.split('-')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// Seconds since the Unix epoch, for result files (web-time: std's clock panics on wasm32,
/// where the browser's clock is used).
pub fn unix_seconds() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_known_samples() {
        let s = Stats::from_samples(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!(s.median_s, 3.0);
        assert_eq!(s.min_s, 1.0);
        assert_eq!(s.max_s, 5.0);
        assert_eq!(s.p25_s, 2.0);
        assert_eq!(s.p75_s, 4.0);
        assert_eq!(s.mad_s, 1.0);
        assert!((s.rel_iqr - 2.0 / 3.0).abs() < 1e-12);
        assert!(Stats::from_samples(&[f64::NAN]).is_none());
    }

    #[test]
    fn roofline_bound() {
        // 10 GFLOP/s, 10 GB/s: the ridge is at 1 FLOP/byte.
        assert_eq!(roof(0.5, 1e10, 1e10), (5e9, "bandwidth"));
        assert_eq!(roof(4.0, 1e10, 1e10), (1e10, "compute"));
        assert_eq!(
            slug("llvmpipe (LLVM 15.0.6, 256 bits)"),
            "llvmpipe-llvm-15-0-6-256-bits"
        );
    }
}
