//! `ceiling-peers`: ceiling's kernels against burn's wgpu backend (CubeCL kernels, with
//! burn-wgpu's default fusion and autotune) and a CPU GEMM (the `gemm` crate), on the same
//! shapes, in one process, on the same adapter, in interleaved rounds.
//!
//! Writes a `BenchReport` JSON (`ceiling_host::timing`) that `ceiling report` reads. Every
//! row's name starts with `peers/` and ends with its implementation (`ceiling`,
//! `burn-<version>`, `gemm-cpu`); peer rows have their kernel prefixed (`burn:matmul`,
//! `burn:attention`, `gemm-cpu:matmul`), so the report's arithmetic peak is ceiling's best
//! matmul and the peers are measured against it. Prints a table of the same figures.
//!
//! Method: inputs are drawn once per case (2-4 sets, rotated) and given to every contender;
//! each contender runs `--warmup` times first (pipeline creation, burn's autotune), and its
//! first run's output is compared with ceiling's; then `--rounds` rounds, in each of which
//! every case runs every contender once, in an order that rotates from round to round. Each
//! run is timed by the wall clock from launch to the end of a synchronisation.

mod contenders;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use burn::tensor::wgpu::{wgpu, WgpuBackend};
use burn::tensor::{Device, DeviceKind};
use ceiling_core::adapter::DeviceType;
use ceiling_core::kernel::{AttentionShape, MatmulShape};
use ceiling_host::kernels::{AttentionKernel, AttentionPlan, MatmulKernel, MatmulPlan};
use ceiling_host::timing::{
    self, BenchReport, BenchResult, Measurement, Peak, Stats, Timer, METHOD_WALL,
};
use ceiling_host::{AdapterRequest, Autotune, Gpu};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use contenders::{
    BurnAttention, BurnMatmul, CeilingAttention, CeilingCopy, CeilingMatmul, Contender, CpuGemm,
};

const BURN: &str = env!("PEERS_BURN_VERSION");
const CUBECL: &str = env!("PEERS_CUBECL_VERSION");
const WGPU: &str = env!("PEERS_WGPU_VERSION");
const GEMM: &str = env!("PEERS_GEMM_VERSION");

/// Outputs further from ceiling's than this (max |x - ref| / max |ref|) are reported.
const MAX_ERROR: f64 = 1e-4;

/// Input sets are added until they hold this much (at least 2, at most 4), as in the
/// criterion benches.
const SET_TARGET_BYTES: usize = 64 << 20;

const USAGE: &str = "usage: ceiling-peers [--rounds N] [--warmup N] [--filter SUBSTR] [--out FILE] \
[--size small|large]

  --rounds N       timed rounds; each runs every contender of every case once (default 5)
  --warmup N       untimed runs of each contender first (default 2)
  --filter SUBSTR  only rows whose name contains SUBSTR, e.g. attention, square-1024, burn
  --out FILE       the JSON (default benches/results/peers-<adapter>-<backend>[-large][-filtered].json)
  --size S         small (sized for lavapipe, the default) or large (real GPUs)

The adapter is ceiling's choice (a real GPU first; WGPU_ADAPTER_NAME and WGPU_BACKEND pick
one); burn is opened on the same adapter and graphics API, and the run stops if it is not.";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    Small,
    Large,
}

struct Args {
    rounds: usize,
    warmup: usize,
    filter: Option<String>,
    out: Option<PathBuf>,
    size: Size,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        rounds: 5,
        warmup: 2,
        filter: None,
        out: None,
        size: Size::Small,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .with_context(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--rounds" => args.rounds = value()?.parse().context("--rounds")?,
            "--warmup" => args.warmup = value()?.parse().context("--warmup")?,
            "--filter" => args.filter = Some(value()?),
            "--out" => args.out = Some(value()?.into()),
            "--size" => {
                args.size = match value()?.as_str() {
                    "small" => Size::Small,
                    "large" => Size::Large,
                    other => bail!("--size {other}: use small or large"),
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}\n{USAGE}"),
        }
    }
    if args.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    Ok(args)
}

/// What a case computes.
#[derive(Clone)]
enum Work {
    Copy { bytes: u64 },
    Matmul(MatmulShape),
    Attention(AttentionShape),
}

/// One shape, run by several contenders.
struct Case {
    /// "matmul/square-512", "attention/n512-hd64-h8-causal", "copy/64MiB".
    label: String,
    work: Work,
    flops: f64,
    bytes: f64,
    dims: BTreeMap<String, u64>,
}

fn dims(pairs: &[(&str, usize)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(k, v)| (k.into(), v as u64)).collect()
}

fn matmul_case(label: &str, m: usize, k: usize, n: usize) -> Case {
    Case {
        label: format!("matmul/{label}"),
        work: Work::Matmul(MatmulShape::new(m, k, n)),
        flops: 2.0 * (m * k * n) as f64,
        bytes: 4.0 * (m * k + k * n + m * n) as f64,
        dims: dims(&[("batch", 1), ("m", m), ("k", k), ("n", n), ("trans_b", 0)]),
    }
}

fn attention_case(b: usize, h: usize, n: usize, hd: usize, causal: bool) -> Case {
    let mut shape = AttentionShape::new(b, h, n, hd);
    shape.causal = causal;
    let pairs = if causal {
        (n * (n + 1) / 2) as f64
    } else {
        (n * n) as f64
    };
    let mask = if causal { "causal" } else { "full" };
    Case {
        label: format!("attention/b{b}-h{h}-n{n}-hd{hd}-{mask}"),
        work: Work::Attention(shape),
        flops: 4.0 * (b * h * hd) as f64 * pairs,
        // q, k, v read once, out written once.
        bytes: 4.0 * 4.0 * shape.q_len() as f64,
        dims: dims(&[
            ("batch", b),
            ("heads", h),
            ("n", n),
            ("head_dim", hd),
            ("causal", causal as usize),
        ]),
    }
}

fn cases(size: Size) -> Vec<Case> {
    let copy_bytes: u64 = match size {
        Size::Small => 64 << 20,
        Size::Large => 1 << 30,
    };
    let mut cases = vec![Case {
        label: format!("copy/{}MiB", copy_bytes >> 20),
        work: Work::Copy { bytes: copy_bytes },
        flops: 0.0,
        bytes: 2.0 * copy_bytes as f64,
        dims: dims(&[("bytes", copy_bytes as usize)]),
    }];
    match size {
        Size::Small => {
            cases.push(matmul_case("square-512", 512, 512, 512));
            cases.push(matmul_case("square-1024", 1024, 1024, 1024));
            // A transformer block's linear layers at 256 tokens, width 256.
            cases.push(matmul_case("ffn-up-256x256x1024", 256, 256, 1024));
            cases.push(matmul_case("ffn-down-256x1024x256", 256, 1024, 256));
            // 1024 tokens through a 576 -> 1536 projection (a small model's MLP).
            cases.push(matmul_case("mlp-1024x576x1536", 1024, 576, 1536));
            for causal in [false, true] {
                cases.push(attention_case(1, 8, 512, 64, causal));
            }
        }
        Size::Large => {
            cases.push(matmul_case("square-2048", 2048, 2048, 2048));
            cases.push(matmul_case("square-4096", 4096, 4096, 4096));
            cases.push(matmul_case("ffn-up-2048x1024x4096", 2048, 1024, 4096));
            cases.push(matmul_case("ffn-down-2048x4096x1024", 2048, 4096, 1024));
            cases.push(matmul_case("mlp-4096x2304x6144", 4096, 2304, 6144));
            for (n, hd) in [(2048, 64), (4096, 128)] {
                for causal in [false, true] {
                    cases.push(attention_case(1, 16, n, hd, causal));
                }
            }
        }
    }
    cases
}

/// A contender of a case, with its row in the report and its timed runs.
struct Entry<'g> {
    /// Index into the case list.
    case: usize,
    name: String,
    implementation: String,
    kernel: String,
    variant: String,
    sets: usize,
    contender: Box<dyn Contender + 'g>,
    runs: usize,
    samples: Vec<f64>,
    /// Max |x - ref| / max |ref| of the first run's output against ceiling's.
    error: Option<f64>,
}

impl Entry<'_> {
    fn run(&mut self) -> Result<f64> {
        let t = self.contender.run(self.runs % self.sets)?;
        self.runs += 1;
        Ok(t)
    }
}

/// Max |x - ref| over max |ref|: the error relative to the output's scale (NaN anywhere
/// gives NaN).
fn scaled_error(x: &[f32], reference: &[f32]) -> f64 {
    if x.len() != reference.len() {
        return f64::NAN;
    }
    let scale = reference
        .iter()
        .fold(0.0f64, |m, &r| m.max((r as f64).abs()));
    let mut err = 0.0f64;
    for (&a, &r) in x.iter().zip(reference) {
        let d = (a as f64 - r as f64).abs();
        if !d.is_finite() {
            return f64::NAN;
        }
        err = err.max(d);
    }
    err / scale.max(f64::MIN_POSITIVE)
}

/// Opens burn's wgpu runtime on ceiling's adapter (same device type, index among adapters of
/// that type, graphics API) and checks that it landed there.
fn burn_device(gpu: &Gpu) -> Result<(Device, wgpu::AdapterInfo)> {
    let s = &gpu.summary;
    let (api, backends) = match s.backend.as_str() {
        "Vulkan" => (WgpuBackend::Vulkan, wgpu::Backends::VULKAN),
        "Metal" => (WgpuBackend::Metal, wgpu::Backends::METAL),
        "Dx12" => (WgpuBackend::Dx12, wgpu::Backends::DX12),
        "Gl" => (WgpuBackend::Gl, wgpu::Backends::GL),
        other => bail!("burn: no wgpu graphics API for ceiling's backend {other}"),
    };
    // The index of ceiling's adapter among the adapters of its type on its API, in the
    // order wgpu lists them (the order CubeCL picks from).
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let same_type: Vec<wgpu::AdapterInfo> =
        pollster::block_on(instance.enumerate_adapters(backends))
            .iter()
            .map(|a| a.get_info())
            .filter(|i| format!("{:?}", i.device_type) == s.device_type.name())
            .collect();
    let index = same_type.iter().position(|i| i.name == s.name).unwrap_or(0);
    let kind = match s.device_type {
        DeviceType::Cpu => DeviceKind::Cpu,
        DeviceType::DiscreteGpu => DeviceKind::DiscreteGpu(index),
        DeviceType::IntegratedGpu => DeviceKind::IntegratedGpu(index),
        DeviceType::VirtualGpu => DeviceKind::VirtualGpu(index),
        DeviceType::Other => DeviceKind::DefaultDevice,
    };
    let (device, setup) = Device::wgpu_options()
        .device_kind(kind.clone())
        .graphics_api(api)
        .init_with_setup()
        .map_err(|e| anyhow!("burn: opening {kind:?} on {api:?}: {e}"))?;
    let info = setup.adapter.get_info();
    if info.name != s.name || format!("{:?}", info.backend) != s.backend {
        bail!(
            "burn opened {} ({:?}), not ceiling's adapter {} ({}): pick another with \
             WGPU_ADAPTER_NAME",
            info.name,
            info.backend,
            s.name,
            s.backend
        );
    }
    Ok((device, info))
}

fn random_sets(rng: &mut ChaCha8Rng, lens: &[usize]) -> Vec<Vec<Vec<f32>>> {
    let bytes: usize = lens.iter().sum::<usize>() * 4;
    let sets = SET_TARGET_BYTES.div_ceil(bytes.max(1)).clamp(2, 4);
    (0..sets)
        .map(|_| {
            lens.iter()
                .map(|&len| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect())
                .collect()
        })
        .collect()
}

fn main() {
    if let Err(e) = run() {
        eprintln!("ceiling-peers: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    // Autotuned like burn: the first (untimed warm-up) run of each shape picks the plan.
    let gpu = Gpu::new(&AdapterRequest {
        autotune: Autotune::Full,
        ..Default::default()
    })
    .context("ceiling: no adapter")?;
    let (device, burn_info) = burn_device(&gpu)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let burn_impl = format!("burn-{BURN}");
    eprintln!(
        "peers on {} ({}, {}); burn {BURN} (CubeCL {CUBECL}, wgpu {WGPU}) on {} ({:?}); \
         gemm {GEMM} on {threads} CPU threads",
        gpu.summary.name,
        gpu.summary.backend,
        gpu.summary.driver,
        burn_info.name,
        burn_info.backend
    );

    let selected = |name: &str| args.filter.as_ref().is_none_or(|f| name.contains(f));
    let cases = cases(args.size);
    let mut rng = ChaCha8Rng::seed_from_u64(0xCE11);
    let mut entries: Vec<Entry> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let started = Instant::now();

    // Build every contender, warm it up and check its output against ceiling's.
    for (ci, case) in cases.iter().enumerate() {
        let mut candidates: Vec<(String, String, String)> = Vec::new();
        let row = |imp: &str| format!("peers/{}/f32/{imp}", case.label);
        match &case.work {
            Work::Copy { .. } => candidates.push((
                "ceiling".into(),
                "copy".into(),
                "copy_buffer_to_buffer on ceiling's device".into(),
            )),
            Work::Matmul(shape) => {
                let plan = MatmulPlan::choose(&gpu, shape, MatmulKernel::Auto)?;
                candidates.push((
                    "ceiling".into(),
                    "matmul".into(),
                    format!("kernels::matmul Auto (autotuned; rules: {plan})"),
                ));
                candidates.push((
                    burn_impl.clone(),
                    "burn:matmul".into(),
                    format!(
                        "burn {BURN} Tensor::matmul (CubeCL {CUBECL}, wgpu {WGPU}, fusion + \
                         autotune)"
                    ),
                ));
                candidates.push((
                    "gemm-cpu".into(),
                    "gemm-cpu:matmul".into(),
                    format!("gemm {GEMM} f32 on the CPU, {threads} threads (not on the adapter)"),
                ));
            }
            Work::Attention(shape) => {
                let mask = if shape.causal { "causal" } else { "full" };
                let plan = AttentionPlan::choose(&gpu, shape, AttentionKernel::Auto)?;
                candidates.push((
                    "ceiling-fused".into(),
                    "attention".into(),
                    format!(
                        "kernels::attention Auto (autotuned; rules: {plan}), {mask}, no per-row stats"
                    ),
                ));
                candidates.push((
                    "ceiling-unfused".into(),
                    "attention_unfused".into(),
                    format!("kernels::attention_unfused (matmul+softmax+matmul), {mask}"),
                ));
                candidates.push((
                    format!("{burn_impl}-fused"),
                    "burn:attention".into(),
                    format!("burn {BURN} module::attention (flash or fallback, autotuned), {mask}"),
                ));
                candidates.push((
                    format!("{burn_impl}-unfused"),
                    "burn:attention_unfused".into(),
                    format!(
                        "burn {BURN} q.matmul(k^T)*scale, mask_fill, softmax, matmul v; {mask}"
                    ),
                ));
            }
        }
        candidates.retain(|(imp, _, _)| selected(&row(imp)));
        if candidates.is_empty() {
            continue;
        }
        eprintln!("{}: building and warming up", case.label);
        let sets = match &case.work {
            Work::Copy { .. } => Vec::new(),
            Work::Matmul(s) => random_sets(&mut rng, &[s.a_len(), s.b_len()]),
            Work::Attention(s) => random_sets(&mut rng, &[s.q_len(), s.kv_len(), s.kv_len()]),
        };
        let mut reference: Option<Vec<f32>> = None;
        for (imp, kernel, variant) in candidates {
            let name = row(&imp);
            let built: Result<Box<dyn Contender>> = match &case.work {
                Work::Copy { bytes } => {
                    CeilingCopy::new(&gpu, *bytes).map(|c| Box::new(c) as Box<dyn Contender>)
                }
                Work::Matmul(s) if imp == "ceiling" => {
                    CeilingMatmul::new(&gpu, *s, &sets).map(|c| Box::new(c) as _)
                }
                Work::Matmul(s) if imp == "gemm-cpu" => Ok(Box::new(CpuGemm::new(*s, &sets))),
                Work::Matmul(s) => Ok(Box::new(BurnMatmul::new(&device, *s, &sets))),
                Work::Attention(s) if imp.starts_with("ceiling") => {
                    CeilingAttention::new(&gpu, *s, imp == "ceiling-fused", &sets)
                        .map(|c| Box::new(c) as _)
                }
                Work::Attention(s) => Ok(Box::new(BurnAttention::new(
                    &device,
                    s,
                    imp.ends_with("-fused"),
                    &sets,
                ))),
            };
            let mut entry = match built {
                Ok(contender) => Entry {
                    case: ci,
                    name: name.clone(),
                    implementation: imp,
                    kernel,
                    variant,
                    sets: sets.len().max(1),
                    contender,
                    runs: 0,
                    samples: Vec::new(),
                    error: None,
                },
                Err(e) => {
                    eprintln!("  skipped {name}: {e:#}");
                    skipped.push(format!("{name}: {e:#}"));
                    continue;
                }
            };
            let t0 = Instant::now();
            let warmed = (|| -> Result<()> {
                entry.run()?;
                let out = entry.contender.output()?;
                if !out.is_empty() {
                    match &reference {
                        None if entry.implementation.starts_with("ceiling") => {
                            if out.iter().any(|x| !x.is_finite()) {
                                bail!("ceiling's output has non-finite values");
                            }
                            reference = Some(out);
                            entry.error = Some(0.0);
                        }
                        None => {}
                        Some(r) => entry.error = Some(scaled_error(&out, r)),
                    }
                }
                for _ in 1..args.warmup {
                    entry.run()?;
                }
                Ok(())
            })();
            if let Err(e) = warmed {
                eprintln!("  skipped {name}: {e:#}");
                skipped.push(format!("{name}: {e:#}"));
                continue;
            }
            if entry.error.is_some_and(|e| e.is_nan() || e > MAX_ERROR) {
                eprintln!(
                    "  WARNING {name}: its output differs from ceiling's by {:.2e} of the \
                     output's scale (more than {MAX_ERROR:.0e})",
                    entry.error.unwrap_or(f64::NAN)
                );
            }
            eprintln!(
                "  {name}: warm-up {:.1} s{}",
                t0.elapsed().as_secs_f64(),
                entry
                    .error
                    .map_or(String::new(), |e| format!(", max err vs ceiling {e:.2e}"))
            );
            entries.push(entry);
        }
    }
    if entries.is_empty() {
        bail!("no case selected (filter {:?})", args.filter);
    }

    // Interleaved rounds: every case, every contender once per round, the contenders of a
    // case in an order that rotates with the round.
    for round in 0..args.rounds {
        let t0 = Instant::now();
        let mut i = 0;
        while i < entries.len() {
            let case = entries[i].case;
            let end = i + entries[i..].iter().take_while(|e| e.case == case).count();
            let k = end - i;
            for j in 0..k {
                let entry = &mut entries[i + (j + round) % k];
                let t = entry
                    .run()
                    .with_context(|| format!("{} (round {})", entry.name, round + 1))?;
                entry.samples.push(t);
            }
            i = end;
        }
        eprintln!(
            "round {}/{}: {:.1} s",
            round + 1,
            args.rounds,
            t0.elapsed().as_secs_f64()
        );
    }

    // The report.
    let mut results = Vec::new();
    let mut errors = serde_json::Map::new();
    for e in &entries {
        let case = &cases[e.case];
        let stats =
            Stats::from_samples(&e.samples).ok_or_else(|| anyhow!("{}: no runs", e.name))?;
        results.push(BenchResult::new(
            e.name.clone(),
            &e.kernel,
            "f32",
            e.variant.clone(),
            case.dims.clone(),
            case.flops,
            case.bytes,
            e.sets,
            Measurement {
                method: METHOD_WALL.into(),
                stats,
            },
        ));
        if let Some(err) = e.error {
            errors.insert(e.name.clone(), err.into());
        }
    }
    // Each peer row's speed relative to ceiling's row of the same kind, paired by round.
    let mut speedups = serde_json::Map::new();
    for theirs in entries
        .iter()
        .filter(|e| !e.implementation.starts_with("ceiling"))
    {
        let kind = if theirs.implementation.ends_with("-unfused") {
            "ceiling-unfused"
        } else if theirs.implementation.ends_with("-fused") {
            "ceiling-fused"
        } else {
            "ceiling"
        };
        let ours = entries
            .iter()
            .find(|e| e.case == theirs.case && e.implementation == kind);
        if let Some(r) = ours.and_then(|ours| paired_speedup(ours, theirs)) {
            speedups.insert(theirs.name.clone(), r.into());
        }
    }
    let copy = results.iter().find(|r| r.kernel == "copy");
    let peak = Peak {
        bandwidth_bytes_per_s: copy.map_or(0.0, |r| r.bytes_per_s),
        bandwidth_case: copy.map_or(String::new(), |r| r.name.clone()),
        ..Default::default()
    };
    let mut settings: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    let mut put = |k: &str, v: serde_json::Value| settings.insert(k.into(), v);
    put("bench", "ceiling-peers".into());
    put("rounds", args.rounds.into());
    put("warmup", args.warmup.into());
    put(
        "order",
        "interleaved: each round runs every case, every contender once, rotating the order".into(),
    );
    put(
        "timing",
        "wall clock from launch to the end of a synchronisation, every contender".into(),
    );
    put("filter", args.filter.clone().into());
    put("burn", BURN.into());
    put("cubecl", CUBECL.into());
    put("wgpu", WGPU.into());
    put("gemm", GEMM.into());
    put(
        "burn_features",
        "wgpu (WGSL through wgpu), fusion, autotune (burn-wgpu's defaults)".into(),
    );
    put(
        "burn_adapter",
        format!(
            "{} ({:?}, {})",
            burn_info.name, burn_info.backend, burn_info.driver
        )
        .into(),
    );
    put("cpu_threads", threads.into());
    put(
        "peer_rows",
        "kernel prefixed burn: or gemm-cpu:; the arithmetic peak is ceiling's best matmul".into(),
    );
    put("max_error_vs_ceiling", errors.into());
    put("speedup_vs_ceiling_paired", speedups.into());
    put("skipped", skipped.clone().into());
    let timer = Timer::wall_clock(&gpu);
    let size = match args.size {
        Size::Small => "small",
        Size::Large => "large",
    };
    let report = BenchReport::new(
        gpu.summary.clone(),
        METHOD_WALL.into(),
        timer.timestamp_period_ns(),
        size.into(),
        settings,
        peak,
        results,
    );

    print_table(&report, &entries, &cases, &burn_impl);
    let path = args.out.clone().unwrap_or_else(|| {
        // The repository root: the folder above this crate's.
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().map_or(manifest.clone(), PathBuf::from);
        let mut file = format!(
            "peers-{}-{}",
            timing::slug(&gpu.summary.name),
            timing::slug(&gpu.summary.backend)
        );
        if args.size == Size::Large {
            file.push_str("-large");
        }
        if args.filter.is_some() {
            file.push_str("-filtered");
        }
        root.join("benches")
            .join("results")
            .join(format!("{file}.json"))
    });
    report
        .write(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "{} rows in {:.0} s; results: {}",
        report.results.len(),
        started.elapsed().as_secs_f64(),
        path.display()
    );
    if !skipped.is_empty() {
        eprintln!("skipped:\n  {}", skipped.join("\n  "));
    }
    Ok(())
}

/// The median over rounds of `theirs`' speed relative to `ours` (time of ours / time of
/// theirs in the same round): robust to load that drifts between rounds.
fn paired_speedup(ours: &Entry, theirs: &Entry) -> Option<f64> {
    let ratios: Vec<f64> = ours
        .samples
        .iter()
        .zip(&theirs.samples)
        .map(|(a, b)| a / b)
        .collect();
    Stats::from_samples(&ratios).map(|s| s.median_s)
}

/// The side-by-side table (markdown): per case, ceiling, burn and burn/ceiling in GFLOP/s,
/// and gemm on the CPU for the matmuls; errors are against ceiling's output.
fn print_table(report: &BenchReport, entries: &[Entry], cases: &[Case], burn: &str) {
    let find = |case: usize, imp: &str| {
        entries
            .iter()
            .position(|e| e.case == case && e.implementation == imp)
    };
    let rate = |r: &BenchResult| {
        format!(
            "{:.2} (±{:.0}%)",
            r.flops_per_s * 1e-9,
            r.time.stats.rel_iqr * 50.0
        )
    };
    let err = |e: Option<f64>| e.map_or("-".into(), |e| format!("{e:.1e}"));
    println!(
        "\nadapter: {} ({}, {}); burn {BURN} (CubeCL {CUBECL}, wgpu {WGPU}); gemm {GEMM} on \
         the CPU; f32; median of {} interleaved rounds, wall clock; ± is half the IQR; \
         burn/ceiling is the median over rounds of the speed ratio within a round\n",
        report.adapter.name,
        report.adapter.backend,
        report.adapter.driver,
        report.settings["rounds"]
    );
    println!(
        "| case | ceiling GFLOP/s | burn GFLOP/s | burn/ceiling | gemm (CPU) GFLOP/s | \
         err burn | err gemm |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (ci, case) in cases.iter().enumerate() {
        let pairs: Vec<(String, String, String)> = match case.work {
            Work::Copy { .. } => {
                if let Some(i) = find(ci, "ceiling") {
                    println!(
                        "| {} (GB/s, read + write) | {:.2} | | | | | |",
                        case.label,
                        report.results[i].bytes_per_s * 1e-9
                    );
                }
                continue;
            }
            Work::Matmul(_) => vec![(case.label.clone(), "ceiling".into(), burn.into())],
            Work::Attention(_) => vec![
                (
                    format!("{} fused", case.label),
                    "ceiling-fused".into(),
                    format!("{burn}-fused"),
                ),
                (
                    format!("{} unfused", case.label),
                    "ceiling-unfused".into(),
                    format!("{burn}-unfused"),
                ),
            ],
        };
        for (label, ours, theirs) in pairs {
            let c = find(ci, &ours);
            let b = find(ci, &theirs);
            let g = find(ci, "gemm-cpu");
            if c.is_none() && b.is_none() && g.is_none() {
                continue;
            }
            let ratio = match (c, b) {
                (Some(c), Some(b)) => paired_speedup(&entries[c], &entries[b])
                    .map_or("-".into(), |r| format!("{r:.2}")),
                _ => "-".into(),
            };
            let cell = |i: Option<usize>| i.map_or("-".into(), |i| rate(&report.results[i]));
            println!(
                "| {label} | {} | {} | {ratio} | {} | {} | {} |",
                cell(c),
                cell(b),
                cell(g),
                err(b.and_then(|i| entries[i].error)),
                err(g.and_then(|i| entries[i].error)),
            );
        }
    }
    println!();
}
