//! GPU timing for the benchmarks.
//!
//! [`Timer`] times one region of recorded GPU work: with GPU timestamps (a two-entry
//! `QuerySet` written before and after the region with `CommandEncoder::write_timestamp`,
//! resolved, read back and scaled by `Queue::get_timestamp_period`) where the adapter has
//! TIMESTAMP_QUERY and TIMESTAMP_QUERY_INSIDE_ENCODERS, and with the wall clock around a
//! synchronised submit otherwise (the work is recorded first, the clock runs only over the
//! submit and the wait). [`measure`] warms up, rotates over several input sets (so that
//! caches hold no previous result) and reports the median and the spread.
//!
//! The bench result file ([`BenchReport`]) and the statistics of timed runs are
//! `ceiling_core::bench`, re-exported here for the benches.

use web_time::Instant;

use serde::{Deserialize, Serialize};

pub use ceiling_core::bench::{
    roof, slug, BenchReport, BenchResult, Measurement, Peak, Stats, BENCH_SCHEMA, METHOD_TIMESTAMP,
    METHOD_WALL,
};

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
    #[maybe_async::maybe_async]
    pub async fn time(&self, clock: Clock, record: impl FnOnce() -> Result<()>) -> Result<f64> {
        let gpu = self.gpu;
        // Nothing earlier may run inside the region.
        gpu.sync().await?;
        let seconds = match (clock, &self.query) {
            (Clock::Auto, Some((set, resolve))) => {
                gpu.encode(|e| e.write_timestamp(set, 0));
                record()?;
                gpu.encode(|e| {
                    e.write_timestamp(set, 1);
                    e.resolve_query_set(set, 0..2, resolve, 0);
                });
                let bytes = gpu.read_bytes(resolve, 0, 16).await?;
                let t0 = u64::from_le_bytes(bytes[0..8].try_into().unwrap());
                let t1 = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                t1.wrapping_sub(t0) as f64 * self.period_ns * 1e-9
            }
            (Clock::WallClock, _) => {
                // The work may submit and read back by itself: the clock runs over all of it.
                let start = Instant::now();
                record()?;
                gpu.sync().await?;
                start.elapsed().as_secs_f64()
            }
            (Clock::Auto, None) => {
                // Recording is host work: the clock runs over the submit and the wait only.
                record()?;
                let start = Instant::now();
                gpu.sync().await?;
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

/// Warms up, then times `config.samples` runs of `run(i)`, where `i` counts runs so that the
/// caller rotates over its input sets (`i % sets`).
#[maybe_async::maybe_async]
pub async fn measure(
    timer: &Timer<'_>,
    clock: Clock,
    config: MeasureConfig,
    mut run: impl FnMut(usize) -> Result<()>,
) -> Result<Measurement> {
    let mut i = 0;
    for _ in 0..config.warmup {
        run(i)?;
        i += 1;
    }
    timer.gpu().sync().await?;
    let mut samples = Vec::with_capacity(config.samples);
    for _ in 0..config.samples.max(1) {
        samples.push(timer.time(clock, || run(i)).await?);
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
    #[maybe_async::maybe_async]
    pub async fn new(gpu: &Gpu, bytes: u64) -> Result<Self> {
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
        gpu.sync().await?;
        Ok(Self { src, dst, bytes })
    }

    /// What a copy runs, as bench results name it.
    pub const VARIANT: &'static str = "copy_buffer_to_buffer";

    /// The bench case's name: `peak/copy-<size>MiB`.
    pub fn name(&self) -> String {
        format!("peak/copy-{}MiB", self.bytes >> 20)
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
