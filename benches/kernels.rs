//! Criterion benches of the kernels on the best adapter: matmul (square and transformer
//! shapes, f32 and f16, several tilings), fused attention against the unfused baseline,
//! the LM head against its unfused path, the column-moments reduction, every other
//! registered kernel (`ceiling_host::cases::benches`: softmax, the norms, rope), one whole
//! forward pass, and a large buffer copy for the bandwidth peak. FLOP counts come from the
//! kernel cases and shapes, one definition each.
//!
//! Each run is timed with GPU timestamps where the adapter has them (criterion's
//! `iter_custom` gets the GPU time), else with the wall clock around a synchronised submit;
//! runs rotate over several input sets. Criterion prints time and throughput (elements =
//! FLOP, or bytes for the copy); after each case a line gives GFLOP/s and GB/s.
//!
//! Under `cargo bench` (or `cargo xtask bench`) it also writes a self-describing JSON
//! (`ceiling_host::timing::BenchReport`) to `$CEILING_BENCH_DIR` (default
//! `target/ceiling-bench`), named after the adapter. `CEILING_BENCH_SIZE=large` selects
//! shapes for real GPUs; the default is sized for lavapipe (a few minutes on 2 cores).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape};
use ceiling_core::model::{FfnActivation, ModelConfig, ModelWeights, RandomInput};
use ceiling_host::cases::{self, KernelCase};
use ceiling_host::kernels::{
    self, AttentionKernel, AttentionPlan, MatmulKernel, MatmulPlan, MatmulTiles, Vec4Tiles,
};
use ceiling_host::model::{GpuModel, ModelKernels};
use ceiling_host::timing::{
    self, BenchReport, BenchResult, Clock, CopyBench, Measurement, Peak, Stats, Timer,
};
use ceiling_host::{AdapterRequest, Gpu, Result, Tensor};
use ceiling_shaders::{Family, Precision, Variant};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Criterion samples per case (its minimum); the JSON statistics use exactly these.
const SAMPLES: usize = 10;
/// Input sets are added until they hold this much (at least 2, at most 4).
const SET_TARGET_BYTES: usize = 64 << 20;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Size {
    /// Sized for lavapipe on a 2-core CPU.
    Small,
    /// Sized for real GPUs.
    Large,
}

impl Size {
    fn from_env() -> Size {
        match std::env::var("CEILING_BENCH_SIZE").as_deref() {
            Ok("large") => Size::Large,
            Ok("small") | Err(_) => Size::Small,
            Ok(other) => panic!("CEILING_BENCH_SIZE={other}: use small or large"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

/// What one case computes; `name` is "group/case".
struct Case {
    name: String,
    kernel: &'static str,
    precision: Precision,
    variant: String,
    shape: BTreeMap<String, u64>,
    flops: f64,
    bytes: f64,
    clock: Clock,
}

fn shape_of(dims: &[(&str, usize)]) -> BTreeMap<String, u64> {
    dims.iter()
        .map(|&(k, v)| (k.to_string(), v as u64))
        .collect()
}

/// How many input sets of `bytes` each to rotate over.
fn input_sets(bytes: usize) -> usize {
    SET_TARGET_BYTES.div_ceil(bytes.max(1)).clamp(2, 4)
}

struct Bench<'g> {
    gpu: &'g Gpu,
    timer: Timer<'g>,
    size: Size,
    filter: Option<String>,
    rng: RefCell<ChaCha8Rng>,
    results: RefCell<Vec<BenchResult>>,
    skipped: RefCell<Vec<String>>,
    warm_up: Duration,
    measurement: Duration,
}

impl<'g> Bench<'g> {
    fn random(&self, len: usize) -> Vec<f32> {
        let mut rng = self.rng.borrow_mut();
        (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    fn upload(&self, what: &str, len: usize, p: Precision) -> Result<Tensor> {
        self.gpu.upload(what, &self.random(len), p)
    }

    fn group<'c>(&self, c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
        let mut g = c.benchmark_group(name);
        g.sample_size(SAMPLES)
            .warm_up_time(self.warm_up)
            .measurement_time(self.measurement)
            .sampling_mode(SamplingMode::Flat);
        g
    }

    fn selected(&self, name: &str) -> bool {
        self.filter
            .as_ref()
            .is_none_or(|f| name.contains(f.as_str()))
    }

    fn skip(&self, name: &str, why: String) {
        eprintln!("skipped {name}: {why}");
        self.skipped.borrow_mut().push(format!("{name}: {why}"));
    }

    /// Builds the inputs of a case (only when the filter selects it), runs it once untimed
    /// to catch errors and create pipelines, then hands it to criterion. `build` returns
    /// the number of input sets and a closure that records run `i` on set `i % sets`.
    fn case<F>(
        &self,
        group: &mut BenchmarkGroup<'_, WallTime>,
        case: Case,
        build: impl FnOnce() -> Result<(usize, F)>,
    ) where
        F: FnMut(usize) -> Result<()>,
    {
        if !self.selected(&case.name) {
            return;
        }
        let (sets, mut run) = match build().and_then(|(sets, mut run)| {
            run(0)?;
            self.gpu.sync()?;
            Ok((sets, run))
        }) {
            Ok(x) => x,
            Err(e) => return self.skip(&case.name, e.to_string()),
        };
        group.throughput(if case.flops > 0.0 {
            Throughput::Elements(case.flops as u64)
        } else {
            Throughput::Bytes(case.bytes as u64)
        });
        let calls: RefCell<Vec<Vec<f64>>> = RefCell::default();
        let mut i = 1;
        let id = case.name.split_once('/').map_or(&*case.name, |(_, id)| id);
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut times = Vec::with_capacity(iters as usize);
                for _ in 0..iters {
                    let t = self
                        .timer
                        .time(case.clock, || run(i % sets))
                        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                    times.push(t);
                    i += 1;
                }
                let total = times.iter().sum::<f64>();
                calls.borrow_mut().push(times);
                Duration::from_secs_f64(total)
            })
        });
        // Criterion's warm-up calls come first; its SAMPLES measurement calls are the last.
        let calls = calls.into_inner();
        let samples: Vec<f64> = calls[calls.len().saturating_sub(SAMPLES)..]
            .iter()
            .flatten()
            .copied()
            .collect();
        let Some(stats) = Stats::from_samples(&samples) else {
            return self.skip(&case.name, "no timing samples".into());
        };
        let result = BenchResult::new(
            case.name.clone(),
            case.kernel,
            &case.precision.to_string(),
            case.variant,
            case.shape,
            case.flops,
            case.bytes,
            sets,
            Measurement {
                method: self.timer.method(case.clock).into(),
                stats,
            },
        );
        eprintln!(
            "    {}: median {:.3} ms (IQR {:.0}%, {} runs, {}), {:.3} GFLOP/s, {:.3} GB/s",
            result.name,
            result.time.stats.median_s * 1e3,
            result.time.stats.rel_iqr * 100.0,
            result.time.stats.samples,
            result.time.method,
            result.flops_per_s * 1e-9,
            result.bytes_per_s * 1e-9
        );
        self.results.borrow_mut().push(result);
    }

    fn copy_peak(&self, c: &mut Criterion) {
        let mut g = self.group(c, "peak");
        let bytes: u64 = match self.size {
            Size::Small => 64 << 20,
            Size::Large => 1 << 30,
        };
        let copy = match CopyBench::new(self.gpu, bytes) {
            Ok(c) => c,
            Err(e) => return self.skip("peak/copy", e.to_string()),
        };
        let case = Case {
            name: copy.name(),
            kernel: "copy",
            precision: Precision::F32,
            variant: CopyBench::VARIANT.into(),
            shape: shape_of(&[("bytes", copy.bytes as usize)]),
            flops: 0.0,
            bytes: copy.traffic() as f64,
            clock: Clock::Auto,
        };
        self.case(&mut g, case, || Ok((1, |_| copy.copy(self.gpu))));
        g.finish();
    }

    fn matmul_case(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        label: &str,
        shape: MatmulShape,
        p: Precision,
        kernel: MatmulKernel,
    ) {
        // The plan the launcher will run names the case: what was measured, never re-derived.
        let plan = match MatmulPlan::choose(self.gpu, &shape, kernel) {
            Ok(plan) => plan,
            Err(e) => return self.skip(&format!("matmul/{label}/{p}/{kernel:?}"), e.to_string()),
        };
        let tile = plan.to_string().replace(' ', "-");
        let (m, k, n, batch) = (shape.m, shape.k, shape.n, shape.batch);
        let es = p.size() as f64;
        let case = Case {
            name: format!("matmul/{label}/{p}/{tile}"),
            kernel: "matmul",
            precision: p,
            variant: format!("{plan}, trans_b {}", shape.trans_b),
            shape: shape_of(&[
                ("batch", batch),
                ("m", m),
                ("k", k),
                ("n", n),
                ("trans_b", shape.trans_b as usize),
            ]),
            flops: shape.flops(),
            bytes: es * (batch * (m * k + k * n + m * n)) as f64,
            clock: Clock::Auto,
        };
        self.case(g, case, || {
            let sets = input_sets((shape.a_len() + shape.b_len()) * p.size());
            let inputs = (0..sets)
                .map(|_| {
                    Ok((
                        self.upload("a", shape.a_len(), p)?,
                        self.upload("b", shape.b_len(), p)?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            let out = self.gpu.nan_tensor("out", shape.out_len(), p)?;
            Ok((sets, move |i: usize| {
                let (a, b) = &inputs[i];
                kernels::matmul(
                    self.gpu,
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
            }))
        });
    }

    fn matmul(&self, c: &mut Criterion) {
        let mut g = self.group(c, "matmul");
        let (squares, rows, d): (&[usize], usize, usize) = match self.size {
            Size::Small => (&[256, 512], 256, 256),
            Size::Large => (&[1024, 2048, 4096], 2048, 1024),
        };
        // Each shape with the chosen plan and with the scalar kernel it replaced.
        let kernels = [
            MatmulKernel::Auto,
            MatmulKernel::Scalar(MatmulTiles::default()),
        ];
        for p in Precision::ALL {
            for &s in squares {
                for kernel in kernels {
                    let shape = MatmulShape::new(s, s, s);
                    self.matmul_case(&mut g, &format!("square-{s}"), shape, p, kernel);
                }
            }
            // The linear layers of a transformer block: x [rows, d] times W^T.
            for (label, k, n) in [
                ("qkv", d, 3 * d),
                ("ffn-up", d, 4 * d),
                ("ffn-down", 4 * d, d),
            ] {
                let mut shape = MatmulShape::new(rows, k, n);
                shape.trans_b = true;
                let label = format!("{label}-{rows}x{k}x{n}");
                for kernel in kernels {
                    self.matmul_case(&mut g, &label, shape, p, kernel);
                }
            }
        }
        // Tiling of the vec4 kernel: WG_X x WG_Y invocations with 16 x 8 outputs each, K in
        // stages of BK. (The default 8x8x16 ran above.)
        let s = match self.size {
            Size::Small => 512,
            Size::Large => 4096,
        };
        let tiles = [
            (8, 8, 32),
            (16, 8, 16),
            (8, 16, 16),
            (16, 16, 16),
            (4, 8, 16),
        ];
        for p in Precision::ALL {
            for &(wg_x, wg_y, bk) in &tiles {
                // f16 on lavapipe: f32 picks the tiling, f16 follows it.
                if self.size == Size::Small && p == Precision::F16 {
                    continue;
                }
                let t = Vec4Tiles { wg_x, wg_y, bk };
                self.matmul_case(
                    &mut g,
                    &format!("square-{s}"),
                    MatmulShape::new(s, s, s),
                    p,
                    MatmulKernel::Vec4(t),
                );
            }
        }
        g.finish();
    }

    fn attention(&self, c: &mut Criterion) {
        let mut g = self.group(c, "attention");
        let (ns, heads): (Vec<usize>, usize) = match self.size {
            Size::Small => (vec![128, 512], 4),
            Size::Large => ((7..=14).map(|e| 1 << e).collect(), 16),
        };
        for p in Precision::ALL {
            for &n in &ns {
                // On lavapipe f16 is benched at one length only, to keep the run short.
                if self.size == Size::Small && p == Precision::F16 && n != 512 {
                    continue;
                }
                for hd in [64, 128] {
                    for causal in [false, true] {
                        let mut shape = AttentionShape::new(1, heads, n, hd);
                        shape.causal = causal;
                        self.attention_cases(&mut g, shape, p);
                    }
                }
            }
        }
        g.finish();
    }

    fn attention_cases(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        shape: AttentionShape,
        p: Precision,
    ) {
        let (b, h, n, hd) = (shape.batch, shape.heads, shape.n_q, shape.head_dim);
        let flops = shape.flops();
        let bytes = (4 * shape.q_len() * p.size()) as f64;
        let mask = if shape.causal { "causal" } else { "full" };
        let label = format!("n{n}-hd{hd}-{mask}");
        // The plan Auto chooses, then every other plan that runs here (named by the plan
        // the launcher returns, never re-derived), then the unfused baseline.
        let auto = match AttentionPlan::choose(self.gpu, &shape, AttentionKernel::Auto) {
            Ok(plan) => plan,
            Err(e) => return self.skip(&format!("attention/{label}/{p}"), e.to_string()),
        };
        let mut kinds = vec![("fused".to_string(), AttentionKernel::Auto, auto.to_string())];
        for kernel in [
            AttentionKernel::Rows { wg: 8, rows: 1 },
            AttentionKernel::Rows { wg: 8, rows: 4 },
            AttentionKernel::Rows { wg: 16, rows: 0 },
            AttentionKernel::Rows { wg: 32, rows: 0 },
            AttentionKernel::Portable,
            AttentionKernel::Subgroup,
        ] {
            if let Ok(plan) = AttentionPlan::choose(self.gpu, &shape, kernel) {
                if plan != auto {
                    let kind = format!("fused-{}", plan.to_string().replace(' ', "-"));
                    kinds.push((kind, kernel, plan.to_string()));
                }
            }
        }
        kinds.push((
            "unfused".into(),
            AttentionKernel::Auto,
            "matmul+softmax+matmul".into(),
        ));
        for (kind, kernel, variant) in kinds {
            let case = Case {
                name: format!("attention/{label}/{p}/{kind}"),
                kernel: if kind == "unfused" {
                    "attention_unfused"
                } else {
                    "attention"
                },
                precision: p,
                variant: if kind == "unfused" {
                    format!("{variant}, {mask}")
                } else {
                    format!("{variant}, {mask}, per-row stats")
                },
                shape: shape_of(&[
                    ("batch", b),
                    ("heads", h),
                    ("n", n),
                    ("head_dim", hd),
                    ("causal", shape.causal as usize),
                ]),
                flops,
                bytes,
                clock: Clock::Auto,
            };
            self.case(g, case, || {
                let len = shape.q_len();
                let sets = input_sets(3 * len * p.size());
                let inputs = (0..sets)
                    .map(|_| {
                        Ok([
                            self.upload("q", len, p)?,
                            self.upload("k", len, p)?,
                            self.upload("v", len, p)?,
                        ])
                    })
                    .collect::<Result<Vec<_>>>()?;
                let out = self.gpu.nan_tensor("out", len, p)?;
                // The fused kernel writes per-row stats (lse, n_eff, entropy) as in the
                // forward pass; without a key mask and stats its launcher binds one dummy
                // buffer read-only and read-write at once, which wgpu refuses.
                let stats = self.gpu.nan_tensor(
                    "stats",
                    shape.rows() * kernels::STATS_PER_ROW,
                    Precision::F32,
                )?;
                let gpu = self.gpu;
                Ok((sets, move |i: usize| {
                    let [q, k, v] = &inputs[i];
                    if kind == "unfused" {
                        kernels::attention_unfused(gpu, &shape, q, k, v, None, &out)
                    } else {
                        kernels::attention(gpu, &shape, q, k, v, None, &out, Some(&stats), kernel)
                            .map(|_| ())
                    }
                }))
            });
        }
    }

    /// The registered cases (`ceiling_host::cases::benches`) of the kernels that have no
    /// section above or below comparing their variants: each at each precision, in the plan
    /// its launcher chooses, with the case's own FLOP and byte counts.
    fn registered(&self, c: &mut Criterion) {
        const OWN_SECTIONS: &[&str] = &[
            "matmul",
            "attention",
            "attention_unfused",
            "lm_head",
            "column_moments",
        ];
        let small = self.size == Size::Small;
        for case in cases::benches(small) {
            let case = case.as_ref();
            if OWN_SECTIONS.contains(&case.kernel()) {
                continue;
            }
            let mut g = self.group(c, case.kernel());
            for p in Precision::ALL {
                let name = cases::bench_name(case, p);
                if !self.selected(&name) {
                    continue;
                }
                let variant = case.variants(self.gpu)[0];
                let bytes = case.bytes(p);
                let sets = input_sets(bytes as usize);
                let prepared = (0..sets)
                    .map(|i| cases::prepare(self.gpu, case, p, i as u64))
                    .collect::<Result<Vec<_>>>();
                // The plan names the case: what runs, as the launcher reports it.
                let ready = prepared.and_then(|sets| {
                    let plan = sets[0].launch(self.gpu, case, variant)?;
                    Ok((sets, plan))
                });
                let (prepared, plan) = match ready {
                    Ok(x) => x,
                    Err(e) => {
                        self.skip(&name, e.to_string());
                        continue;
                    }
                };
                let bench_case = Case {
                    name,
                    kernel: case.kernel(),
                    precision: p,
                    variant: plan,
                    shape: case.dims(),
                    flops: case.flops(),
                    bytes,
                    clock: Clock::Auto,
                };
                self.case(&mut g, bench_case, || {
                    Ok((sets, |i: usize| {
                        prepared[i].launch(self.gpu, case, variant).map(|_| ())
                    }))
                });
            }
            g.finish();
        }
    }

    /// The LM head (lse, nll, entropy, top-1 per row without the logits) against the unfused
    /// path it replaces: the logits matmul, then a row softmax over them.
    fn lm_head(&self, c: &mut Criterion) {
        let mut g = self.group(c, "lm_head");
        // SmolLM2's width; its full vocabulary on real GPUs.
        let (rows, d, vocab) = match self.size {
            Size::Small => (256, 576, 8192),
            Size::Large => (4096, 576, 49152),
        };
        for p in Precision::ALL {
            let label = format!("{rows}x{d}x{vocab}");
            let flops = cases::LmHeadCase {
                rows,
                d,
                vocab,
                scale: 1.0,
            }
            .flops();
            let es = p.size() as f64;
            let shape = shape_of(&[("rows", rows), ("d", d), ("vocab", vocab)]);
            let targets: Vec<u32> = (0..rows).map(|r| (r * 7919 % vocab) as u32).collect();
            let plan = kernels::LmHeadPlan::choose(self.gpu, rows, d, vocab)
                .map(|p| p.to_string())
                .unwrap_or_default();
            let fused = Case {
                name: format!("lm_head/{label}/{p}/fused"),
                kernel: "lm_head",
                precision: p,
                variant: plan,
                shape: shape.clone(),
                flops,
                bytes: es * ((rows + vocab) * d) as f64 + 16.0 * rows as f64,
                clock: Clock::Auto,
            };
            self.case(&mut g, fused, || {
                let x = self.upload("x", rows * d, p)?;
                let head = self.upload("head", vocab * d, p)?;
                let out = self.gpu.nan_tensor("out", rows * 4, Precision::F32)?;
                Ok((1, move |_| {
                    kernels::lm_head_loss(self.gpu, &x, &head, &targets, d, &out).map(|_| ())
                }))
            });
            let unfused = Case {
                name: format!("lm_head/{label}/{p}/unfused"),
                kernel: "lm_head_unfused",
                precision: p,
                variant: "matmul + softmax, logits in memory".into(),
                shape,
                flops,
                bytes: es * ((rows + vocab) * d + 3 * rows * vocab) as f64,
                clock: Clock::Auto,
            };
            self.case(&mut g, unfused, || {
                let x = self.upload("x", rows * d, p)?;
                let head = self.upload("head", vocab * d, p)?;
                let logits = self.gpu.nan_tensor("logits", rows * vocab, p)?;
                let probs = self.gpu.nan_tensor("probs", rows * vocab, p)?;
                let mut mm = MatmulShape::new(rows, d, vocab);
                mm.trans_b = true;
                let sm = ceiling_core::kernel::SoftmaxShape::plain(rows, vocab);
                Ok((1, move |_| {
                    kernels::matmul(
                        self.gpu,
                        &mm,
                        &x,
                        &head,
                        None,
                        None,
                        Activation::None,
                        &logits,
                        MatmulKernel::Auto,
                    )?;
                    kernels::softmax(self.gpu, &sm, &logits, None, &probs)
                }))
            });
        }
        g.finish();
    }

    fn reductions(&self, c: &mut Criterion) {
        let mut g = self.group(c, "reduce");
        let (samples, cols) = match self.size {
            Size::Small => (1024, 4096),
            Size::Large => (4096, 8192),
        };
        for p in Precision::ALL {
            let es = p.size() as f64;
            let shape = shape_of(&[("samples", samples), ("cols", cols)]);
            // x read once, mean and M2 written in f32.
            let flops = cases::ColumnMomentsCase {
                samples,
                cols,
                offset: 0.0,
            }
            .flops();
            let bytes = es * (samples * cols) as f64 + 8.0 * cols as f64;
            let inputs = || -> Result<(usize, Vec<Tensor>)> {
                let sets = input_sets(samples * cols * p.size());
                let xs = (0..sets)
                    .map(|_| self.upload("x", samples * cols, p))
                    .collect::<Result<Vec<_>>>()?;
                Ok((sets, xs))
            };
            // The kernel alone, dispatched as `kernels::column_moments` does.
            let case = Case {
                name: format!("reduce/column_moments-{samples}x{cols}/{p}/kernel"),
                kernel: "column_moments",
                precision: p,
                variant: "Welford per column, WG 64".into(),
                shape: shape.clone(),
                flops,
                bytes,
                clock: Clock::Auto,
            };
            self.case(&mut g, case, || {
                let (sets, xs) = inputs()?;
                let mean = self.gpu.nan_tensor("mean", cols, Precision::F32)?;
                let m2 = self.gpu.nan_tensor("m2", cols, Precision::F32)?;
                let pipeline = self.gpu.pipeline(
                    Variant::new(Family::Reduce, p),
                    "column_moments",
                    &[("WG", 64)],
                )?;
                let params: Vec<u8> = [samples as u32, cols as u32, 0, 0]
                    .iter()
                    .flat_map(|w| w.to_le_bytes())
                    .collect();
                let groups = cols.div_ceil(64) as u32;
                Ok((sets, move |i: usize| {
                    self.gpu.dispatch(
                        &pipeline,
                        &params,
                        &[(1, xs[i].binding()), (2, mean.binding()), (3, m2.binding())],
                        [groups, 1, 1],
                    )
                }))
            });
            // The public call: dispatch, two read-backs and the f64 conversion.
            let case = Case {
                name: format!("reduce/column_moments-{samples}x{cols}/{p}/end-to-end"),
                kernel: "column_moments",
                precision: p,
                variant: "kernels::column_moments with read-back".into(),
                shape,
                flops,
                bytes,
                clock: Clock::WallClock,
            };
            self.case(&mut g, case, || {
                let (sets, xs) = inputs()?;
                Ok((sets, move |i: usize| {
                    kernels::column_moments(self.gpu, &xs[i], samples, cols).map(|_| ())
                }))
            });
        }
        g.finish();
    }

    fn forward(&self, c: &mut Criterion) {
        let mut g = self.group(c, "forward");
        // A GPT-2-like model, and one layer of SmolLM2-135M's shape (width 576, 9 heads on 3
        // K/V heads, SwiGLU 1536, rotary; the real model has 30 such layers).
        let mut smol = ModelConfig::llama_like(1, 576, 9, 3, 49152);
        smol.ff_dim = 1536;
        let models = match self.size {
            Size::Small => [
                ("gpt2-like", ModelConfig::gpt2_like(2, 256, 4, 512), 256),
                ("smollm2-like", smol, 1024),
            ],
            Size::Large => [
                (
                    "gpt2-like",
                    ModelConfig::gpt2_like(12, 768, 12, 50257),
                    1024,
                ),
                ("smollm2-like", ModelConfig { layers: 30, ..smol }, 8192),
            ],
        };
        // The chosen kernels, and the scalar matmul + portable attention they replaced.
        let before = ModelKernels {
            matmul: MatmulKernel::Scalar(MatmulTiles::default()),
            attention: AttentionKernel::Portable,
        };
        let batch = 1;
        for (label, config, n) in models {
            for p in Precision::ALL {
                for (kind, kernels) in [("auto", ModelKernels::default()), ("before", before)] {
                    // On lavapipe the slow path runs for f32 only.
                    if self.size == Size::Small && p == Precision::F16 && kind == "before" {
                        continue;
                    }
                    self.forward_case(&mut g, label, &config, n, batch, p, kind, kernels);
                }
            }
        }
        g.finish();
    }

    #[allow(clippy::too_many_arguments)]
    fn forward_case(
        &self,
        g: &mut BenchmarkGroup<'_, WallTime>,
        label: &str,
        config: &ModelConfig,
        n: usize,
        batch: usize,
        p: Precision,
        kind: &str,
        kernels: ModelKernels,
    ) {
        let (flops, bytes) = forward_cost(config, batch, n, p);
        let case = Case {
            name: format!(
                "forward/{label}-L{}-d{}-n{n}/{p}/{kind}",
                config.layers, config.d_model
            ),
            kernel: "forward",
            precision: p,
            variant: format!(
                "GpuModel::forward, probe at n-1, with read-back; matmul {:?}, attention {:?}",
                kernels.matmul, kernels.attention
            ),
            shape: shape_of(&[
                ("layers", config.layers),
                ("d_model", config.d_model),
                ("heads", config.heads),
                ("kv_heads", config.kv_heads),
                ("ff_dim", config.ff_dim),
                ("batch", batch),
                ("n", n),
            ]),
            flops,
            bytes,
            clock: Clock::WallClock,
        };
        self.case(g, case, || {
            let weights = ModelWeights::random(config, 7)
                .map_err(|e| ceiling_host::HostError::Gpu(format!("random weights: {e}")))?;
            let mut model = GpuModel::new(self.gpu, &weights, p)?;
            model.kernels = kernels;
            let sets = 3;
            let inputs: Vec<RandomInput> = (0..sets)
                .map(|s| RandomInput::draw(config, batch, n, s as u64))
                .collect();
            Ok((sets, move |i: usize| {
                model
                    .forward(self.gpu, &inputs[i].as_input(batch, n), &[n - 1])
                    .map(|_| ())
            }))
        });
    }
}

/// Useful FLOP and compulsory bytes of one forward pass (matmuls, causal attention, norms;
/// weights read once, each kernel's activations read and written once).
fn forward_cost(c: &ModelConfig, batch: usize, n: usize, p: Precision) -> (f64, f64) {
    let rows = (batch * n) as f64;
    let (d, ff, l) = (c.d_model as f64, c.ff_dim as f64, c.layers as f64);
    let kv = (c.kv_heads * c.head_dim()) as f64;
    let ffn_mats = if c.activation == FfnActivation::SwiGlu {
        3.0
    } else {
        2.0
    };
    let weights = 2.0 * d * d + 2.0 * d * kv + ffn_mats * d * ff;
    let pairs = if c.causal {
        (n * (n + 1) / 2) as f64
    } else {
        (n * n) as f64
    };
    let attn = 4.0 * batch as f64 * d * pairs;
    let flops = l * (2.0 * rows * weights + attn + 2.0 * 8.0 * rows * d);
    // Per layer: linear inputs and outputs, two norms, split/merge, attention, residual adds.
    let act = rows * (4.0 * d + 4.0 * d + 2.0 * kv + 2.0 * ff + ffn_mats * ff + 4.0 * d)
        + rows * (4.0 * d + 6.0 * d + 3.0 * d);
    let bytes = p.size() as f64 * l * (weights + act);
    (flops, bytes)
}

/// Criterion's name filter (the first free argument), matched here as a substring.
fn filter_from_args() -> Option<String> {
    const WITH_VALUE: [&str; 14] = [
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--output-format",
        "--color",
        "--profile-time",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--nresamples",
    ];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        } else if !a.starts_with('-') {
            return Some(a);
        }
    }
    None
}

fn seconds_from_env(var: &str, default: f64) -> Duration {
    let s = std::env::var(var)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(default);
    Duration::from_secs_f64(s)
}

fn main() {
    let gpu = Gpu::new(&AdapterRequest::default())
        .unwrap_or_else(|e| panic!("the benches need a GPU adapter: {e}"));
    let size = Size::from_env();
    let (warm, meas) = match size {
        Size::Small => (0.2, 0.6),
        Size::Large => (1.0, 3.0),
    };
    let bench = Bench {
        gpu: &gpu,
        timer: Timer::new(&gpu),
        size,
        filter: filter_from_args(),
        rng: RefCell::new(ChaCha8Rng::seed_from_u64(0xCE11)),
        results: RefCell::default(),
        skipped: RefCell::default(),
        warm_up: seconds_from_env("CEILING_BENCH_WARMUP_S", warm),
        measurement: seconds_from_env("CEILING_BENCH_MEASURE_S", meas),
    };
    eprintln!(
        "bench on {} ({}, {}), timing: {}, size: {}",
        gpu.summary.name,
        gpu.summary.backend,
        gpu.summary.driver,
        bench.timer.method(Clock::Auto),
        size.name()
    );
    let mut c = Criterion::default().configure_from_args();
    bench.copy_peak(&mut c);
    bench.matmul(&mut c);
    bench.attention(&mut c);
    bench.registered(&mut c);
    bench.lm_head(&mut c);
    bench.reductions(&mut c);
    bench.forward(&mut c);
    c.final_summary();

    // Only `cargo bench` (which passes --bench) writes results; `cargo test` runs each once.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let results = bench.results.into_inner();
    let copy = results.iter().find(|r| r.kernel == "copy");
    let mut settings = BTreeMap::new();
    settings.insert("criterion_sample_size".into(), SAMPLES.into());
    settings.insert("warm_up_s".into(), bench.warm_up.as_secs_f64().into());
    settings.insert(
        "measurement_s".into(),
        bench.measurement.as_secs_f64().into(),
    );
    settings.insert("sampling_mode".into(), "flat".into());
    settings.insert("filter".into(), bench.filter.clone().into());
    settings.insert("skipped".into(), bench.skipped.into_inner().into());
    let report = BenchReport::new(
        gpu.summary.clone(),
        bench.timer.method(Clock::Auto).into(),
        bench.timer.timestamp_period_ns(),
        size.name().into(),
        settings,
        Peak {
            bandwidth_bytes_per_s: copy.map_or(0.0, |r| r.bytes_per_s),
            bandwidth_case: copy.map_or(String::new(), |r| r.name.clone()),
            ..Default::default()
        },
        results,
    );
    let dir = std::env::var_os("CEILING_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "target/ceiling-bench".into());
    let suffix = if bench.filter.is_some() {
        "-filtered"
    } else {
        ""
    };
    let path = dir.join(format!(
        "{}-{}-{}{suffix}.json",
        timing::slug(&gpu.summary.name),
        timing::slug(&gpu.summary.backend),
        size.name()
    ));
    eprintln!(
        "peaks on {}: copy {:.2} GB/s ({}), matmul {:.2} GFLOP/s ({})",
        gpu.summary.name,
        report.peak.bandwidth_bytes_per_s * 1e-9,
        report.peak.bandwidth_case,
        report.peak.flops_per_s * 1e-9,
        report.peak.flops_case
    );
    for r in &report.results {
        eprintln!(
            "{:<58} {:>9.3} ms {:>8.3} GFLOP/s {:>7.3} GB/s  {:>5.1}% of roof ({})",
            r.name,
            r.time.stats.median_s * 1e3,
            r.flops_per_s * 1e-9,
            r.bytes_per_s * 1e-9,
            r.frac_roofline * 100.0,
            r.bound
        );
    }
    match report.write(&path) {
        Ok(()) => println!("bench results: {}", path.display()),
        Err(e) => panic!("writing {}: {e}", path.display()),
    }
}
