//! ceiling in a browser (`web/index.html`): every kernel's reference check, the benches and
//! a small sweep on the browser's WebGPU adapter, through the same harness, kernels and
//! sweep code as the native tool (the host crate's async build). The page drives the loop
//! one case at a time, so it can show progress; every result comes back as the JSON the
//! native tool writes (`ceiling-check/1`, the bench report, a sweep summary), which
//! `ceiling report` reads. Compiled only for wasm32.
#![cfg(target_arch = "wasm32")]

use std::rc::Rc;

use ceiling_core::sweep::{build_summary, AttentionLayer, LengthResult, Preset, RunHeader};
use ceiling_host::cases::{self, CaseCheck, CheckReport, KernelCase};
use ceiling_host::sweep::SweepConfig;
use ceiling_host::timing::{
    BenchReport, BenchResult, Clock, CopyBench, MeasureConfig, Peak, Timer,
};
use ceiling_host::{AdapterRequest, Gpu, Precision};
use ceiling_shaders::{Variant, WgslTarget};
use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// Timed runs per bench case: a browser page should finish in minutes on a CPU adapter.
const MEASURE: MeasureConfig = MeasureConfig {
    warmup: 1,
    samples: 5,
};

/// The copy that measures the bandwidth peak.
const COPY_BYTES: u64 = 16 << 20;

fn js_error(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn to_json(v: &impl serde::Serialize) -> Result<String, JsValue> {
    serde_json::to_string(v).map_err(js_error)
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, JsValue> {
    serde_json::from_str(text).map_err(|e| js_error(format!("{what}: {e}")))
}

/// The check case named `name`.
fn check_case(name: &str) -> Result<Box<dyn KernelCase>, JsValue> {
    cases::checks()
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| js_error(format!("no check case is named {name}")))
}

/// The bench case and precision whose result is named `name` (see `cases::bench_name`).
fn bench_case(name: &str) -> Result<(Box<dyn KernelCase>, Precision), JsValue> {
    cases::benches(true)
        .into_iter()
        .find_map(|c| {
            let p = Precision::ALL
                .into_iter()
                .find(|&p| cases::bench_name(c.as_ref(), p) == name)?;
            Some((c, p))
        })
        .ok_or_else(|| js_error(format!("no bench case is named {name}")))
}

/// The cases matching `pattern` (all without one), less attention with a head_dim above
/// `max_head_dim` if given.
fn chosen(
    all: Vec<Box<dyn KernelCase>>,
    pattern: Option<String>,
    max_head_dim: Option<usize>,
) -> Vec<Box<dyn KernelCase>> {
    cases::select(all, pattern.as_deref())
        .into_iter()
        .filter(|c| c.within_head_dim(max_head_dim))
        .collect()
}

/// The small sweep of the page: the clt control (variance ~ 1/n), lengths 8 to 256.
fn sweep_config(seed: u64) -> SweepConfig {
    let mut cfg = SweepConfig::for_preset(Preset::Clt);
    cfg.lengths = (3..=8).map(|e| 1usize << e).collect();
    cfg.samples = 256;
    cfg.seed = seed;
    cfg
}

/// One browser adapter opened for checks, benches and a sweep.
#[wasm_bindgen]
pub struct Session {
    gpu: Rc<Gpu>,
    seed: u64,
}

#[wasm_bindgen]
impl Session {
    /// Opens the browser's WebGPU adapter. `seed` (decimal) reproduces a run's inputs;
    /// without it a fresh one is drawn. wgpu names the adapter by the browser's description
    /// alone, often empty: `name` (the page's reading of GPUAdapterInfo) stands in then, and
    /// `browser` (its user agent's product) is kept as the driver.
    pub async fn open(
        seed: Option<String>,
        name: String,
        browser: String,
    ) -> Result<Session, JsValue> {
        // A panic poisons the module and leaves its promise pending: the page must hear of it.
        std::panic::set_hook(Box::new(|info| {
            let message = format!("ceiling panicked: {info}");
            console_error(&message);
            page_panicked(&message);
        }));
        let seed = match seed {
            Some(s) => s
                .trim()
                .parse()
                .map_err(|e| js_error(format!("seed {s:?}: {e}")))?,
            None => rand::random(),
        };
        let mut gpu = Gpu::new(&AdapterRequest::default())
            .await
            .map_err(js_error)?;
        if gpu.summary.name.is_empty() {
            gpu.summary.name = name;
        }
        gpu.summary.driver = browser;
        Ok(Session {
            gpu: Rc::new(gpu),
            seed,
        })
    }

    /// The run's seed, in decimal (a u64 does not fit a JavaScript number).
    pub fn seed(&self) -> String {
        self.seed.to_string()
    }

    /// The adapter as result files describe it (JSON).
    pub fn adapter(&self) -> Result<String, JsValue> {
        to_json(&self.gpu.summary)
    }

    /// The names of the registered check cases that match `pattern` (every case without
    /// one; `*` globs, as `ceiling check --kernels`), in order, leaving out attention with
    /// a head_dim above `max_head_dim` if given (each head_dim is a kernel of its own, which
    /// a CPU adapter may take seconds to compile).
    pub fn check_cases(&self, pattern: Option<String>, max_head_dim: Option<usize>) -> Vec<String> {
        chosen(cases::checks(), pattern, max_head_dim)
            .iter()
            .map(|c| c.name())
            .collect()
    }

    /// Checks one case at every precision the adapter offers and in every variant its
    /// plans choose here, on NaN-poisoned outputs. A promise of JSON: `results` (for
    /// [`Session::check_report`]), `lines` (as `ceiling check` prints them) and `failed`
    /// (how many results failed). A GPU error becomes a failed result, kept in the report.
    pub fn check(&self, name: String) -> Promise {
        let (gpu, seed) = (self.gpu.clone(), self.seed);
        future_to_promise(async move {
            let case = check_case(&name)?;
            let results = match cases::check_every_variant(&gpu, case.as_ref(), seed, |_| {}).await
            {
                Ok(r) => r,
                Err(e) => vec![CaseCheck {
                    case: name.clone(),
                    kernel: case.kernel().to_string(),
                    variant: "auto".into(),
                    plan: String::new(),
                    precision: Precision::F32,
                    seed: cases::case_seed(seed, &name),
                    outputs: vec![],
                    error: Some(format!("GPU error: {e}")),
                    seconds: 0.0,
                }],
            };
            let out = serde_json::json!({
                "lines": results.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                "failed": results.iter().filter(|r| !r.passed()).count(),
                "results": results,
            });
            Ok(to_json(&out)?.into())
        })
    }

    /// The check results (a JSON array of the arrays `check` gave, flattened) as the
    /// `ceiling-check/1` file `ceiling check --json` writes.
    pub fn check_report(&self, results: String) -> Result<String, JsValue> {
        let results: Vec<CaseCheck> = from_json("check results", &results)?;
        to_json(&CheckReport::new(
            self.gpu.summary.clone(),
            self.seed,
            results,
        ))
    }

    /// The bench cases (`kernel/label/precision`) at the precisions the adapter offers:
    /// every registered kernel at the small bench sizes, chosen as [`Session::check_cases`].
    pub fn bench_cases(&self, pattern: Option<String>, max_head_dim: Option<usize>) -> Vec<String> {
        let mut names = vec![];
        for case in chosen(cases::benches(true), pattern, max_head_dim) {
            for p in cases::precisions(&self.gpu, case.as_ref()) {
                names.push(cases::bench_name(case.as_ref(), p));
            }
        }
        names
    }

    /// Times one bench case: a promise of its JSON result.
    pub fn bench(&self, name: String) -> Promise {
        let gpu = self.gpu.clone();
        future_to_promise(async move {
            let (case, precision) = bench_case(&name)?;
            let timer = Timer::new(&gpu);
            let result = cases::bench(&gpu, &timer, case.as_ref(), precision, MEASURE)
                .await
                .map_err(js_error)?;
            Ok(to_json(&result)?.into())
        })
    }

    /// Times a 16 MiB buffer copy, the bandwidth peak of the report: a promise of its JSON
    /// result.
    pub fn bench_copy(&self) -> Promise {
        let gpu = self.gpu.clone();
        future_to_promise(async move {
            let timer = Timer::new(&gpu);
            let copy = CopyBench::new(&gpu, COPY_BYTES).await.map_err(js_error)?;
            let time =
                ceiling_host::timing::measure(&timer, Clock::Auto, MEASURE, |_| copy.copy(&gpu))
                    .await
                    .map_err(js_error)?;
            let result = BenchResult::new(
                copy.name(),
                "copy",
                "f32",
                CopyBench::VARIANT.into(),
                [("bytes".to_string(), copy.bytes)].into(),
                0.0,
                copy.traffic() as f64,
                1,
                time,
            );
            Ok(to_json(&result)?.into())
        })
    }

    /// The bench report (`results`: a JSON array of bench results; `copy`: the copy's),
    /// with peaks and roofline fractions, as `cargo xtask bench` writes it.
    pub fn bench_report(&self, results: String, copy: String) -> Result<String, JsValue> {
        let results: Vec<BenchResult> = from_json("bench results", &results)?;
        let copy: BenchResult = from_json("copy result", &copy)?;
        let timer = Timer::new(&self.gpu);
        let peak = Peak {
            bandwidth_bytes_per_s: copy.bytes_per_s,
            bandwidth_case: copy.name.clone(),
            ..Default::default()
        };
        let mut all = vec![copy];
        all.extend(results);
        let settings = [
            ("warmup".to_string(), MEASURE.warmup.into()),
            ("samples".to_string(), MEASURE.samples.into()),
            ("runner".to_string(), "browser".into()),
        ]
        .into();
        to_json(&BenchReport::new(
            self.gpu.summary.clone(),
            timer.method(Clock::Auto).to_string(),
            timer.timestamp_period_ns(),
            "small".into(),
            settings,
            peak,
            all,
        ))
    }

    /// Every WGSL variant as the browser reads it, for the page to compile with the
    /// browser's own WebGPU (wgpu cannot enable subgroups there): a JSON array of `label`,
    /// `source` and the WebGPU `features` it needs. Each family at each precision, and the
    /// rows attention kernel at a tile besides its default.
    pub fn shader_variants(&self) -> Result<String, JsValue> {
        let mut variants: Vec<Variant> = Variant::all().collect();
        variants.extend(Precision::ALL.map(|p| Variant::attention_rows(p, 3, 7)));
        let list: Vec<serde_json::Value> = variants
            .iter()
            .map(|v| {
                serde_json::json!({
                    "label": v.label(),
                    "source": v.source_for(WgslTarget::WebGpu),
                    "features": v.webgpu_features(),
                })
            })
            .collect();
        to_json(&list)
    }

    /// The lengths of the page's sweep.
    pub fn sweep_lengths(&self) -> Vec<usize> {
        sweep_config(self.seed).lengths
    }

    /// Measures one length of the sweep: a promise of its JSON point.
    pub fn sweep_length(&self, n: usize) -> Promise {
        let (gpu, cfg) = (self.gpu.clone(), sweep_config(self.seed));
        future_to_promise(async move {
            let layer = AttentionLayer::new(&cfg);
            let point =
                ceiling_host::sweep::run::measure_length(&gpu, &cfg, &layer, n, &mut |_| {})
                    .await
                    .map_err(js_error)?;
            Ok(to_json(&point)?.into())
        })
    }

    /// The sweep's summary with its fits (a JSON array of points in), as summary.json.
    pub fn sweep_summary(&self, points: String) -> Result<String, JsValue> {
        let points: Vec<LengthResult> = from_json("sweep points", &points)?;
        let header = RunHeader {
            tool: ceiling_host::sweep::TOOL.into(),
            version: ceiling_host::sweep::VERSION.into(),
            adapter: self.gpu.summary.clone(),
            config: sweep_config(self.seed),
            corpus: None,
        };
        to_json(&build_summary(header, points))
    }
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(s: &str);

    /// Defined by web/main.js: marks the page failed.
    #[wasm_bindgen(js_namespace = window, js_name = ceilingPanicked)]
    fn page_panicked(s: &str);
}
