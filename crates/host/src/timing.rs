//! GPU timing for the benchmarks, and the self-describing bench result file.
//!
//! [`Timer`] times one region of recorded GPU work: with GPU timestamps (a two-entry
//! `QuerySet` written before and after the region with `CommandEncoder::write_timestamp`,
//! resolved, read back and scaled by `Queue::get_timestamp_period`) where the adapter has
//! TIMESTAMP_QUERY and TIMESTAMP_QUERY_INSIDE_ENCODERS, and with the wall clock around a
//! synchronised submit otherwise (the work is recorded first, the clock runs only over the
//! submit and the wait). [`measure`] warms up, rotates over several input sets (so that
//! caches hold no previous result) and reports the median and the spread.
//!
//! [`BenchReport`] is the JSON that `cargo xtask bench` writes and `ceiling report` reads:
//! adapter, timing method, measured peaks (a large buffer copy for bandwidth, the best
//! matmul for arithmetic) and, per case, shape, precision, median and spread, FLOP/s,
//! bytes/s, fraction of the peaks and the roofline bound.

use std::collections::BTreeMap;
use std::time::Instant;

use ceiling_core::adapter::AdapterSummary;
use serde::{Deserialize, Serialize};

use crate::error::{HostError, Result};
use crate::gpu::Gpu;

/// Which clock a measurement uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    /// GPU timestamps where the adapter has them, else the wall clock.
    Auto,
    /// The wall clock from before recording to the end of a synchronised submit: for work
    /// that reads back or submits by itself (a whole forward pass), where timestamps would
    /// count the host's gaps too. Includes the host's recording and read-back time.
    WallClock,
}

/// How a region was timed, as written in result files.
pub const METHOD_TIMESTAMP: &str = "gpu-timestamp";
pub const METHOD_WALL: &str = "wall-clock";

/// Times regions of GPU work on one device.
pub struct Timer<'g> {
    gpu: &'g Gpu,
    query: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    period_ns: f64,
}

impl<'g> Timer<'g> {
    /// A timer with GPU timestamps where the device has them.
    pub fn new(gpu: &'g Gpu) -> Self {
        let wanted =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS;
        let query = gpu.features.contains(wanted).then(|| {
            let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("bench timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("bench timestamps resolve"),
                size: 2 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolve)
        });
        Self {
            gpu,
            query,
            period_ns: gpu.queue.get_timestamp_period() as f64,
        }
    }

    /// A wall-clock-only timer (to compare the two methods, or where timestamps misbehave).
    pub fn wall_clock(gpu: &'g Gpu) -> Self {
        Self {
            gpu,
            query: None,
            period_ns: gpu.queue.get_timestamp_period() as f64,
        }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Nanoseconds per timestamp tick.
    pub fn timestamp_period_ns(&self) -> f64 {
        self.period_ns
    }

    /// The method [`Timer::time`] uses with `clock`.
    pub fn method(&self, clock: Clock) -> &'static str {
        match (clock, &self.query) {
            (Clock::Auto, Some(_)) => METHOD_TIMESTAMP,
            _ => METHOD_WALL,
        }
    }

    /// Seconds the GPU took for the work `record` records (it may also submit by itself).
    pub fn time(&self, clock: Clock, record: impl FnOnce() -> Result<()>) -> Result<f64> {
        let gpu = self.gpu;
        // Nothing earlier may run inside the region.
        gpu.sync()?;
        let seconds = match (clock, &self.query) {
            (Clock::Auto, Some((set, resolve))) => {
                gpu.encode(|e| e.write_timestamp(set, 0));
                record()?;
                gpu.encode(|e| {
                    e.write_timestamp(set, 1);
                    e.resolve_query_set(set, 0..2, resolve, 0);
                });
                let bytes = gpu.read_bytes(resolve, 0, 16)?;
                let t0 = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
                let t1 = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                t1.wrapping_sub(t0) as f64 * self.period_ns * 1e-9
            }
            (Clock::WallClock, _) => {
                // The work may submit and read back by itself: the clock runs over all of it.
                let start = Instant::now();
                record()?;
                gpu.sync()?;
                start.elapsed().as_secs_f64()
            }
            (Clock::Auto, None) => {
                // Recording is host work: the clock runs over the submit and the wait only.
                record()?;
                let start = Instant::now();
                gpu.sync()?;
                start.elapsed().as_secs_f64()
            }
        };
        if !(seconds.is_finite() && seconds >= 0.0) || seconds > 1e6 {
            return Err(HostError::Gpu(format!(
                "a timed region gave {seconds} s: the adapter's timestamps are unusable here, \
                 use the wall clock (Timer::wall_clock)"
            )));
        }
        Ok(seconds)
    }
}

/// How many runs a measurement makes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct MeasureConfig {
    /// Untimed runs first (pipeline creation, first-touch of buffers, clocks ramping up).
    pub warmup: usize,
    /// Timed runs.
    pub samples: usize,
}

impl Default for MeasureConfig {
    fn default() -> Self {
        Self {
            warmup: 2,
            samples: 10,
        }
    }
}

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
        let median = quantile(&s, 0.5);
        let mut dev: Vec<f64> = s.iter().map(|v| (v - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let (p25, p75) = (quantile(&s, 0.25), quantile(&s, 0.75));
        Some(Stats {
            samples: s.len(),
            median_s: median,
            mean_s: s.iter().sum::<f64>() / s.len() as f64,
            min_s: s[0],
            max_s: s[s.len() - 1],
            p25_s: p25,
            p75_s: p75,
            mad_s: quantile(&dev, 0.5),
            rel_iqr: if median > 0.0 {
                (p75 - p25) / median
            } else {
                0.0
            },
        })
    }
}

/// Quantile of sorted values, linear between order statistics.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A timed case: the method and the statistics of its runs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Measurement {
    pub method: String,
    pub stats: Stats,
}

/// Warms up, then times `config.samples` runs of `run(i)`, where `i` counts runs so that the
/// caller rotates over its input sets (`i % sets`).
pub fn measure(
    timer: &Timer,
    clock: Clock,
    config: MeasureConfig,
    mut run: impl FnMut(usize) -> Result<()>,
) -> Result<Measurement> {
    let mut i = 0;
    for _ in 0..config.warmup {
        run(i)?;
        i += 1;
    }
    timer.gpu().sync()?;
    let mut samples = Vec::with_capacity(config.samples);
    for _ in 0..config.samples.max(1) {
        samples.push(timer.time(clock, || run(i))?);
        i += 1;
    }
    Ok(Measurement {
        method: timer.method(clock).to_string(),
        stats: Stats::from_samples(&samples)
            .ok_or_else(|| HostError::Gpu("no finite timing samples".into()))?,
    })
}

/// Two device-local buffers for the bandwidth peak: `copy` moves `bytes` from one to the
/// other (read once, written once).
pub struct CopyBench {
    pub src: wgpu::Buffer,
    pub dst: wgpu::Buffer,
    pub bytes: u64,
}

impl CopyBench {
    /// Buffers of `bytes` (capped at the adapter's largest buffer, rounded to 256 bytes).
    pub fn new(gpu: &Gpu, bytes: u64) -> Result<Self> {
        let bytes = bytes.min(gpu.limits.max_buffer_size) / 256 * 256;
        if bytes == 0 {
            return Err(HostError::Gpu("copy bench of zero bytes".into()));
        }
        let make = |label| {
            gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        };
        let (src, dst) = (make("copy src"), make("copy dst"));
        // Touch both so that first-use page faults are not timed.
        gpu.encode(|e| {
            e.clear_buffer(&src, 0, None);
            e.clear_buffer(&dst, 0, None);
        });
        gpu.sync()?;
        Ok(Self { src, dst, bytes })
    }

    /// Records one copy of the whole buffer.
    pub fn copy(&self, gpu: &Gpu) -> Result<()> {
        gpu.encode(|e| e.copy_buffer_to_buffer(&self.src, 0, &self.dst, 0, self.bytes));
        Ok(())
    }

    /// Bytes moved by one copy: read plus write.
    pub fn traffic(&self) -> u64 {
        2 * self.bytes
    }
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
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
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
    pub fn write(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        ceiling_core::files::write_atomic(path, (text + "\n").as_bytes())
    }

    /// Reads a report, refusing files of another schema.
    pub fn read(path: &std::path::Path) -> std::result::Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        match value.get("schema").and_then(|s| s.as_str()) {
            Some(BENCH_SCHEMA) => {}
            other => {
                return Err(format!(
                    "{}: not a bench result (schema {other:?}, expected {BENCH_SCHEMA:?}); \
                     write one with `cargo xtask bench`",
                    path.display()
                ))
            }
        }
        serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))
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
