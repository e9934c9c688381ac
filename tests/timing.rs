//! The bench timing code on a real adapter: durations are positive and finite with either
//! clock, and a bench report carries every field the comparison across GPUs needs.
//! (Speed itself is measured in `benches/`, never asserted here.)

mod common;

use std::collections::BTreeMap;

use ceiling_core::bench::{
    BenchReport, BenchResult, Peak, BENCH_SCHEMA, METHOD_TIMESTAMP, METHOD_WALL,
};
use ceiling_core::kernel::{Activation, MatmulShape};
use ceiling_host::kernels::{self, MatmulKernel};
use ceiling_host::timing::{measure, Clock, CopyBench, MeasureConfig, Timer};
use ceiling_shaders::Precision;

fn positive(t: f64) -> bool {
    t.is_finite() && t > 0.0
}

#[test]
fn timers_give_positive_finite_durations() {
    let gpu = common::gpu();
    let mut rng = common::rng("timers_give_positive_finite_durations");
    let shape = MatmulShape::new(67, 45, 33);
    let sets: Vec<_> = (0..2)
        .map(|_| {
            let a = gpu.upload(
                "a",
                &common::random(&mut rng, shape.a_len()),
                Precision::F32,
            );
            let b = gpu.upload(
                "b",
                &common::random(&mut rng, shape.b_len()),
                Precision::F32,
            );
            (a.unwrap(), b.unwrap())
        })
        .collect();
    let out = gpu
        .nan_tensor("out", shape.out_len(), Precision::F32)
        .unwrap();
    let run = |i: usize| {
        let (a, b) = &sets[i % sets.len()];
        let kernel = MatmulKernel::Auto;
        kernels::matmul(
            gpu,
            &shape,
            a,
            b,
            None,
            None,
            Activation::None,
            &out,
            kernel,
        )
        .map(|_| ())
    };
    let config = MeasureConfig {
        warmup: 1,
        samples: 3,
    };
    for (timer, clock) in [
        (Timer::new(gpu), Clock::Auto),
        (Timer::new(gpu), Clock::WallClock),
        (Timer::wall_clock(gpu), Clock::Auto),
    ] {
        let m = measure(&timer, clock, config, run).unwrap();
        assert_eq!(m.method, timer.method(clock));
        if clock == Clock::WallClock {
            assert_eq!(m.method, METHOD_WALL);
        }
        let s = &m.stats;
        assert_eq!(s.samples, 3);
        for t in [s.median_s, s.mean_s, s.min_s, s.max_s, s.p25_s, s.p75_s] {
            assert!(positive(t), "{}: {s:?}", m.method);
        }
        assert!(s.min_s <= s.median_s && s.median_s <= s.max_s);
    }
    // Where the adapter has timestamps inside encoders, they are used.
    let inside = gpu
        .summary
        .features
        .iter()
        .any(|f| f == "timestamp-query-inside-encoders");
    if gpu.has_timestamps() && inside {
        assert_eq!(Timer::new(gpu).method(Clock::Auto), METHOD_TIMESTAMP);
    }
    assert_eq!(Timer::wall_clock(gpu).method(Clock::Auto), METHOD_WALL);
    // The output was really written: timing does not skip the work.
    assert!(gpu.download(&out).unwrap().iter().all(|v| v.is_finite()));

    let copy = CopyBench::new(gpu, 1 << 20).unwrap();
    let t = Timer::new(gpu)
        .time(Clock::Auto, || copy.copy(gpu))
        .unwrap();
    assert!(positive(t));
}

#[test]
fn bench_report_json_has_required_fields() {
    let gpu = common::gpu();
    let timer = Timer::new(gpu);
    let copy = CopyBench::new(gpu, 1 << 20).unwrap();
    let config = MeasureConfig {
        warmup: 1,
        samples: 3,
    };
    let m = measure(&timer, Clock::Auto, config, |_| copy.copy(gpu)).unwrap();
    let copy_result = BenchResult::new(
        "peak/copy-1MiB".into(),
        "copy",
        "f32",
        "copy_buffer_to_buffer".into(),
        BTreeMap::from([("bytes".to_string(), copy.bytes)]),
        0.0,
        copy.traffic() as f64,
        1,
        m.clone(),
    );
    let mm = BenchResult::new(
        "matmul/square-64/f32/16x16x16".into(),
        "matmul",
        "f32",
        "tiles 16x16x16".into(),
        BTreeMap::from([("m".to_string(), 64), ("k".to_string(), 64)]),
        2.0 * 64f64.powi(3),
        4.0 * 3.0 * 64.0 * 64.0,
        2,
        m,
    );
    let mut report = BenchReport {
        schema: BENCH_SCHEMA.into(),
        tool_version: "test".into(),
        created_unix_s: 0,
        adapter: gpu.summary.clone(),
        timing_method: timer.method(Clock::Auto).into(),
        timestamp_period_ns: timer.timestamp_period_ns(),
        size: "small".into(),
        settings: BTreeMap::new(),
        peak: Peak {
            bandwidth_bytes_per_s: copy_result.bytes_per_s,
            bandwidth_case: copy_result.name.clone(),
            ..Default::default()
        },
        results: vec![copy_result, mm],
    };
    report.apply_peaks();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.json");
    report.write(&path).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["schema"], BENCH_SCHEMA);
    for key in ["name", "backend", "driver", "device_type"] {
        assert!(v["adapter"][key].is_string(), "adapter.{key}");
    }
    for key in ["bandwidth_bytes_per_s", "flops_per_s"] {
        assert!(positive(v["peak"][key].as_f64().unwrap()), "peak.{key}");
    }
    assert_eq!(v["peak"]["flops_case"], "matmul/square-64/f32/16x16x16");
    for r in v["results"].as_array().unwrap() {
        for key in ["name", "kernel", "precision", "bound"] {
            assert!(r[key].is_string(), "{key}");
        }
        assert!(r["shape"].is_object());
        assert!(r["time"]["method"].is_string());
        for key in ["median_s", "p25_s", "p75_s", "mad_s", "rel_iqr"] {
            assert!(r["time"]["stats"][key].is_number(), "time.stats.{key}");
        }
        for key in [
            "flops",
            "bytes",
            "flops_per_s",
            "bytes_per_s",
            "intensity",
            "frac_peak_flops",
            "frac_peak_bandwidth",
            "frac_roofline",
        ] {
            let x = r[key].as_f64().unwrap();
            assert!(x.is_finite() && x >= 0.0, "{key} = {x}");
        }
    }
    // The matmul is the arithmetic peak, so it sits at 100% of it.
    let mm = &v["results"][1];
    assert!((mm["frac_peak_flops"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    // Read back (floats may differ in the last digit after a JSON round trip).
    let back = BenchReport::read(&path).unwrap();
    assert_eq!(back.adapter, report.adapter);
    assert_eq!(back.results.len(), report.results.len());
    assert_eq!(back.peak.flops_case, report.peak.flops_case);
    std::fs::write(dir.path().join("other.json"), "{\"schema\": \"x\"}").unwrap();
    assert!(BenchReport::read(&dir.path().join("other.json")).is_err());
}
