//! Shared set-up of the integration tests: the adapter, fresh random inputs, comparisons.
#![allow(dead_code)]

pub mod text;

use std::sync::OnceLock;

use ceiling_core::reference::{compare, ErrorFigures};
use ceiling_host::{AdapterRequest, Gpu};
use ceiling_shaders::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The adapter every test runs on. A missing adapter fails the test (never a silent skip);
/// pin lavapipe with WGPU_BACKEND=vulkan.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let gpu = own_gpu();
        eprintln!("adapter: {} ({})", gpu.name(), gpu.summary.backend);
        gpu
    })
}

/// A device of the test's own on the same adapter, for work that should not queue behind
/// other tests' (each device has its own queue).
pub fn own_gpu() -> Gpu {
    Gpu::new(&AdapterRequest::default())
        .unwrap_or_else(|e| panic!("kernel tests need a GPU adapter: {e}"))
}

/// `each` over `items`, shared out among one worker per core, each worker on a device of its
/// own: lavapipe compiles a kernel when it first runs, on its device's one queue thread, so
/// workers sharing a device would compile (and run) one kernel at a time. Returns what every
/// call returned, in no particular order.
pub fn on_own_devices<T: Sync, R: Send>(
    items: &[T],
    each: impl Fn(&Gpu, &T) -> Vec<R> + Sync,
) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let gpu = own_gpu();
                    let mut out = Vec::new();
                    while let Some(item) =
                        items.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                    {
                        out.extend(each(&gpu, item));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a worker panicked"))
            .collect()
    })
}

/// A fresh seed per run (printed, and fixed by CEILING_TEST_SEED to reproduce a failure).
pub fn rng(test: &str) -> ChaCha8Rng {
    let seed = ceiling_fuzz::fixtures::seed_from_env("CEILING_TEST_SEED");
    eprintln!("{test}: CEILING_TEST_SEED={seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

/// Uniform values in [-1, 1), never constants or zeros.
pub fn random(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The values as the kernel sees them after storage at `precision`, in f64.
pub fn stored(x: &[f32], precision: Precision) -> Vec<f64> {
    x.iter()
        .map(|&v| match precision {
            Precision::F32 => v as f64,
            Precision::F16 => half::f16::from_f32(v).to_f64(),
        })
        .collect()
}

/// Error thresholds of docs/METHOD.md: f32 far under 1e-4, f16 storage near 1e-3.
pub fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 2e-3,
    }
}

/// Precisions the adapter can run (f16 where it has shader-f16).
pub fn precisions() -> Vec<Precision> {
    let mut p = vec![Precision::F32];
    if gpu().has_f16() {
        p.push(Precision::F16);
    } else {
        missing_feature("shader-f16");
    }
    p
}

/// An adapter feature the tests would use is absent: its cases are left out, and said so.
/// Under CI (CI=true) that fails on every backend but GL: lavapipe through Vulkan has
/// shader-f16 and subgroups, so their absence there means the wrong driver was picked, while
/// wgpu's GL backend offers neither (its f16 and subgroup cases are never asked for).
pub fn missing_feature(feature: &str) {
    let gpu = gpu();
    let backend = &gpu.summary.backend;
    if std::env::var("CI").is_ok_and(|v| v == "true") && backend != "Gl" {
        panic!(
            "adapter {} ({backend}) lacks {feature} under CI",
            gpu.name()
        );
    }
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap();
    if !said.iter().any(|f| f == feature) {
        said.push(feature.to_string());
        eprintln!(
            "adapter {} ({backend}) lacks {feature}: its {feature} cases are not run",
            gpu.name()
        );
    }
}

/// Asserts the relative error is under `tol` (NaN and infinity fail) and returns it.
pub fn assert_close(what: &str, out: &[f32], reference: &[f64], tol: f64) -> ErrorFigures {
    let e = compare(out, reference);
    eprintln!("{what}: {e}");
    assert!(e.rel < tol, "{what}: {e} exceeds {tol:e}");
    e
}

/// `data` as the little-endian bytes of a safetensors tensor of `dtype` (F32, F16 or BF16,
/// rounded to that type).
pub fn dtype_bytes(data: &[f32], dtype: safetensors::Dtype) -> Vec<u8> {
    use safetensors::Dtype;
    match dtype {
        Dtype::F32 => data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        Dtype::F16 => data
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        Dtype::BF16 => data
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        other => panic!("dtype_bytes: {other:?} is not a float type the tests write"),
    }
}

/// Runs the `ceiling` binary with `args` (autotuning off, lavapipe through Vulkan unless
/// WGPU_BACKEND says otherwise), echoing what it printed.
pub fn run_ceiling(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ceiling"));
    cmd.args(args).env("CEILING_AUTOTUNE", "off");
    if std::env::var_os("WGPU_BACKEND").is_none() {
        cmd.env("WGPU_BACKEND", "vulkan");
    }
    let out = cmd.output().expect("running the ceiling binary");
    eprintln!(
        "ceiling {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a run printed to stderr.
pub fn stderr_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that a run was refused cleanly: exit status 1 (ceiling's refusal) or 2 (the
/// argument parser's), no panic, and a message naming every one of `needles`.
pub fn assert_refused(o: &std::process::Output, needles: &[&str]) {
    let err = stderr_of(o);
    assert!(
        matches!(o.status.code(), Some(1) | Some(2)),
        "expected a refusal (exit 1 or 2), got {:?}: {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}: {err}");
    }
}
