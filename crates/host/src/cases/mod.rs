//! The kernel harness: every kernel is described once, as [`KernelCase`]s, and that one
//! description drives the reference tests (`tests/kernels.rs`), the criterion benches
//! (`benches/kernels.rs`), `ceiling check` and the tensor names of `ceiling kernel`.
//!
//! A case is a kernel at one shape with its parameters. It names its tensors, draws fresh
//! inputs from a seed, launches on the GPU (in each variant its plans can choose), computes
//! its f64 reference, says how close the two must be per precision, and counts its FLOPs
//! and bytes. Adding a kernel = its WGSL, its launcher, its reference and one file here.

mod attention;
mod elementwise;
mod lm_head;
mod matmul;
mod norm;
mod reduce;
mod rope;
mod softmax;

pub use attention::{AttentionCase, AttentionUnfusedCase};
pub use elementwise::{BinaryCase, BinaryOp};
pub use lm_head::LmHeadCase;
pub use matmul::MatmulCase;
pub use norm::{NormCase, NormKind};
pub use reduce::ColumnMomentsCase;
pub use rope::RopeCase;
pub use softmax::SoftmaxCase;

use std::collections::BTreeMap;
use std::fmt;

use ceiling_core::reference::compare;
use ceiling_shaders::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use ceiling_core::kernel::{check_len, ShapeError};

use crate::error::{HostError, Result};
use crate::kernels::{AttentionKernel, MatmulKernel};
use crate::timing::{self, BenchResult, Clock, MeasureConfig, Timer};
use crate::{AdapterSummary, Gpu, Tensor};

/// How a tensor of a case is stored on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    /// At the precision the case runs at (f32 or f16).
    Run,
    /// Always f32: masks, statistics, losses.
    F32,
}

impl Storage {
    pub fn precision(self, run: Precision) -> Precision {
        match self {
            Storage::Run => run,
            Storage::F32 => Precision::F32,
        }
    }
}

/// A tensor a case reads or writes, named as in `ceiling kernel`'s safetensors files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub storage: Storage,
}

impl TensorSpec {
    pub fn new(name: &'static str, shape: &[usize]) -> TensorSpec {
        TensorSpec {
            name,
            shape: shape.to_vec(),
            storage: Storage::Run,
        }
    }

    pub fn f32(name: &'static str, shape: &[usize]) -> TensorSpec {
        TensorSpec {
            storage: Storage::F32,
            ..TensorSpec::new(name, shape)
        }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the tensor takes at `precision`.
    pub fn bytes(&self, precision: Precision) -> f64 {
        (self.len() * self.storage.precision(precision).size()) as f64
    }
}

/// The kernel choice a launch asks for: what each family's plans choose between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// Kernels with a single path.
    Only,
    Matmul(MatmulKernel),
    Attention(AttentionKernel),
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Only => write!(f, "only"),
            Variant::Matmul(k) => write!(f, "{}", matmul::variant_name(k)),
            Variant::Attention(k) => write!(f, "{}", attention::variant_name(k)),
        }
    }
}

/// One output's error against its reference and the tolerance it must stay under.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputCheck {
    pub output: String,
    /// Relative error (`ceiling_core::reference::compare`) unless the case's tolerance is
    /// per element, then the worst ratio of an element's error to its own bound times
    /// `tolerance`; infinite for NaN, infinity or a broken invariant (see `note`). JSON
    /// writes a non-finite error as null, read back as NaN: still a failure.
    #[serde(with = "ceiling_core::nonfinite")]
    pub error: f64,
    pub tolerance: f64,
    /// Why an output failed beyond its error figure (a masked row that is not zero...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl OutputCheck {
    /// The relative error of `got` against `want` under `tolerance`.
    pub fn relative(output: &str, got: &[f32], want: &[f64], tolerance: f64) -> OutputCheck {
        OutputCheck {
            output: output.to_string(),
            error: compare(got, want).rel,
            tolerance,
            note: None,
        }
    }

    pub fn passed(&self) -> bool {
        self.error.is_finite() && self.error <= self.tolerance && self.note.is_none()
    }

    /// Marks the output failed with the reason.
    pub fn fail(&mut self, note: String) {
        self.error = f64::INFINITY;
        self.note.get_or_insert(note);
    }
}

/// A kernel at one shape with its parameters: everything the tests, the benches and the
/// CLI need to know about it.
pub trait KernelCase: Send + Sync {
    /// The kernel's name (`ceiling kernel NAME`, the bench group, the JUnit class).
    fn kernel(&self) -> &'static str;
    /// The shape and parameters, short and unique within the kernel.
    fn label(&self) -> String;
    fn inputs(&self) -> Vec<TensorSpec>;
    fn outputs(&self) -> Vec<TensorSpec>;
    /// Fresh inputs, one vector per input spec. Uniform in [-1, 1) unless the kernel
    /// needs otherwise (masks, ids).
    fn draw(&self, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
        self.inputs()
            .iter()
            .map(|s| uniform(rng, s.len()))
            .collect()
    }
    /// The variants worth checking on this adapter: `Auto` first, then each kernel its
    /// plans can choose for this shape.
    fn variants(&self, _gpu: &Gpu) -> Vec<Variant> {
        vec![Variant::Only]
    }
    /// Runs the kernel on `inputs` (uploaded from `host`) into `outputs` (NaN-poisoned);
    /// returns the plan it ran, as printed by the launcher.
    fn launch(
        &self,
        gpu: &Gpu,
        variant: Variant,
        inputs: &[Tensor],
        host: &[Vec<f32>],
        outputs: &[Tensor],
    ) -> Result<String>;
    /// The f64 reference of every output, from the inputs as stored.
    fn reference(&self, inputs: &[Vec<f64>]) -> Vec<Vec<f64>>;
    /// The relative error allowed at `precision` (docs/METHOD.md, "Kernel checks").
    fn tolerance(&self, precision: Precision) -> f64 {
        default_tolerance(precision)
    }
    /// Each output against its reference. By default the relative error of every output
    /// against [`KernelCase::tolerance`].
    fn compare(
        &self,
        precision: Precision,
        _inputs: &[Vec<f64>],
        got: &[Vec<f32>],
        want: &[Vec<f64>],
    ) -> Vec<OutputCheck> {
        let tol = self.tolerance(precision);
        self.outputs()
            .iter()
            .zip(got.iter().zip(want))
            .map(|(spec, (g, w))| OutputCheck::relative(spec.name, g, w, tol))
            .collect()
    }
    /// Floating-point operations of one launch (a multiply-add counts 2).
    fn flops(&self) -> f64;
    /// Bytes one launch must move at least: every input read once, every output written.
    fn bytes(&self, precision: Precision) -> f64 {
        self.inputs()
            .iter()
            .chain(&self.outputs())
            .map(|s| s.bytes(precision))
            .sum()
    }
    /// Precisions the kernel runs at (all the adapter offers unless it is f32 only).
    fn precisions(&self) -> &'static [Precision] {
        &[Precision::F32, Precision::F16]
    }

    /// The head dimension of attention kernels. Mesa's GLSL compiler takes about a minute
    /// per rows kernel above 64, so the GL test run leaves those to the Vulkan run.
    fn head_dim(&self) -> Option<usize> {
        None
    }

    /// Whether the case stays within a cap on the head dimension (each head dim is an
    /// attention kernel of its own, slow to compile on some adapters); no cap: always.
    fn within_head_dim(&self, max: Option<usize>) -> bool {
        match (max, self.head_dim()) {
            (Some(max), Some(hd)) => hd <= max,
            _ => true,
        }
    }

    /// `kernel/label`: what filters match and what every report prints.
    fn name(&self) -> String {
        format!("{}/{}", self.kernel(), self.label())
    }

    /// The input sizes by name: the shape a bench result records.
    fn dims(&self) -> BTreeMap<String, u64> {
        self.inputs()
            .iter()
            .map(|t| (t.name.to_string(), t.len() as u64))
            .collect()
    }
}

/// The name of `case`'s bench result at `precision`: `kernel/label/precision`.
pub fn bench_name(case: &dyn KernelCase, precision: Precision) -> String {
    format!("{}/{precision}", case.name())
}

/// `defaults` followed by the `extra` variants it lacks.
fn with_extra<T: PartialEq + Copy>(mut defaults: Vec<T>, extra: &[T]) -> Vec<T> {
    for k in extra {
        if !defaults.contains(k) {
            defaults.push(*k);
        }
    }
    defaults
}

/// Error thresholds of docs/METHOD.md: f32 far under 1e-4, f16 storage near 1e-3.
pub fn default_tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 1e-5,
        Precision::F16 => 2e-3,
    }
}

/// Uniform values in [-1, 1): never constants or zeros.
pub fn uniform(rng: &mut ChaCha8Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// A key mask [batch, n_kv] (1 = visible) with a share `masked` of keys hidden; with
/// several batches every key of batch 0 is hidden, so fully masked rows are covered.
pub fn key_mask(rng: &mut ChaCha8Rng, batch: usize, n_kv: usize, masked: f64) -> Vec<f32> {
    (0..batch * n_kv)
        .map(|i| {
            let all = batch > 1 && i < n_kv;
            if all || rng.random_bool(masked) {
                0.0
            } else {
                1.0
            }
        })
        .collect()
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

/// The outcome of one case in one variant at one precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseCheck {
    /// `kernel/label`.
    pub case: String,
    pub kernel: String,
    pub variant: String,
    /// What the launcher ran (the plan `Auto` chose, the tiles...); empty if it refused.
    pub plan: String,
    pub precision: Precision,
    /// The seed the inputs were drawn from (CEILING_TEST_SEED reproduces them).
    pub seed: u64,
    pub outputs: Vec<OutputCheck>,
    /// The launcher's refusal, if it refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub seconds: f64,
}

impl CaseCheck {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.outputs.iter().all(OutputCheck::passed)
    }

    /// `case precision variant` (without the variant of single-path kernels): unique
    /// within one run.
    pub fn id(&self) -> String {
        match self.variant.as_str() {
            "only" => format!("{} {}", self.case, self.precision),
            v => format!("{} {} {v}", self.case, self.precision),
        }
    }

    /// The output furthest beyond (or nearest to) its tolerance.
    pub fn worst(&self) -> Option<&OutputCheck> {
        self.outputs.iter().max_by(|a, b| {
            let r = |o: &OutputCheck| o.error / o.tolerance;
            r(a).total_cmp(&r(b))
        })
    }
}

impl fmt::Display for CaseCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.passed() { "ok  " } else { "FAIL" };
        write!(f, "{verdict} {} {}", self.case, self.precision)?;
        match (self.variant.as_str(), self.plan.as_str()) {
            (v, "") => write!(f, " {v}")?,
            ("only", p) => write!(f, " {p}")?,
            (v, p) => write!(f, " {v}: {p}")?,
        }
        if let Some(e) = &self.error {
            return write!(f, ": refused: {e}");
        }
        for o in &self.outputs {
            write!(f, "; {} {:.2e} < {:.0e}", o.output, o.error, o.tolerance)?;
            if let Some(n) = &o.note {
                write!(f, " [{n}]")?;
            }
        }
        Ok(())
    }
}

/// The schema tag of check result files.
pub const CHECK_SCHEMA: &str = "ceiling-check/1";

/// A check run as `ceiling check --json` and the browser page write it, and as `ceiling
/// report` reads it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckReport {
    pub schema: String,
    pub tool_version: String,
    pub created_unix_s: u64,
    pub adapter: AdapterSummary,
    pub seed: u64,
    pub results: Vec<CaseCheck>,
}

impl CheckReport {
    /// The results of a run seeded `seed` on `adapter`, stamped now.
    pub fn new(adapter: AdapterSummary, seed: u64, results: Vec<CaseCheck>) -> Self {
        Self {
            schema: CHECK_SCHEMA.into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            created_unix_s: ceiling_core::bench::unix_seconds(),
            adapter,
            seed,
            results,
        }
    }

    pub fn failures(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }
}

/// A case's inputs on the host and the GPU, and its NaN-poisoned outputs.
pub struct Prepared {
    /// The drawn values (some launchers read ids from the host).
    pub host: Vec<Vec<f32>>,
    pub inputs: Vec<Tensor>,
    pub outputs: Vec<Tensor>,
}

impl Prepared {
    /// Launches `case` on these tensors.
    pub fn launch(&self, gpu: &Gpu, case: &dyn KernelCase, variant: Variant) -> Result<String> {
        case.launch(gpu, variant, &self.inputs, &self.host, &self.outputs)
    }

    /// Every output, read back.
    #[maybe_async::maybe_async]
    pub async fn download(&self, gpu: &Gpu) -> Result<Vec<Vec<f32>>> {
        let mut all = Vec::with_capacity(self.outputs.len());
        for t in &self.outputs {
            all.push(gpu.download(t).await?);
        }
        Ok(all)
    }
}

/// Draws the inputs of `case` from `seed`, uploads them at `precision` and allocates its
/// outputs, filled with NaN.
pub fn prepare(
    gpu: &Gpu,
    case: &dyn KernelCase,
    precision: Precision,
    seed: u64,
) -> Result<Prepared> {
    let host = case.draw(&mut ChaCha8Rng::seed_from_u64(seed));
    upload(gpu, case, precision, host)
}

/// Uploads `host` (one vector per input spec, in order) at `precision` and allocates the
/// outputs of `case`, filled with NaN.
pub fn upload(
    gpu: &Gpu,
    case: &dyn KernelCase,
    precision: Precision,
    host: Vec<Vec<f32>>,
) -> Result<Prepared> {
    let specs = case.inputs();
    if host.len() != specs.len() {
        return Err(HostError::Shape(ShapeError::Invalid(format!(
            "{}: {} input tensors given, the kernel takes {}",
            case.name(),
            host.len(),
            specs.len()
        ))));
    }
    let inputs = specs
        .iter()
        .zip(&host)
        .map(|(spec, data)| {
            check_len(spec.name, spec.len(), data.len())?;
            gpu.upload(spec.name, data, spec.storage.precision(precision))
        })
        .collect::<Result<Vec<_>>>()?;
    let outputs = case
        .outputs()
        .iter()
        .map(|spec| gpu.nan_tensor(spec.name, spec.len(), spec.storage.precision(precision)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        host,
        inputs,
        outputs,
    })
}

/// Runs `case` in `variant` on `host` inputs at `precision` (how `ceiling kernel` runs a
/// user's tensors); returns the plan the launcher ran and every output, read back.
#[maybe_async::maybe_async]
pub async fn run(
    gpu: &Gpu,
    case: &dyn KernelCase,
    variant: Variant,
    precision: Precision,
    host: Vec<Vec<f32>>,
) -> Result<(String, Vec<Vec<f32>>)> {
    let prepared = upload(gpu, case, precision, host)?;
    let plan = prepared.launch(gpu, case, variant)?;
    let outputs = prepared.download(gpu).await?;
    Ok((plan, outputs))
}

/// Runs `case` in `variant` at `precision` on inputs drawn from `seed` into NaN-poisoned
/// outputs and compares each output with the f64 reference of the inputs as stored. A
/// launcher refusal is reported in the result, not as an error; errors are the GPU's.
#[maybe_async::maybe_async]
pub async fn check(
    gpu: &Gpu,
    case: &dyn KernelCase,
    variant: Variant,
    precision: Precision,
    seed: u64,
) -> Result<CaseCheck> {
    let start = web_time::Instant::now();
    let prepared = prepare(gpu, case, precision, seed)?;
    let mut result = CaseCheck {
        case: case.name(),
        kernel: case.kernel().to_string(),
        variant: variant.to_string(),
        plan: String::new(),
        precision,
        seed,
        outputs: vec![],
        error: None,
        seconds: 0.0,
    };
    match prepared.launch(gpu, case, variant) {
        Ok(plan) => result.plan = plan,
        Err(e) => {
            result.error = Some(e.to_string());
            result.seconds = start.elapsed().as_secs_f64();
            return Ok(result);
        }
    }
    let got = prepared.download(gpu).await?;
    let as_stored: Vec<Vec<f64>> = case
        .inputs()
        .iter()
        .zip(&prepared.host)
        .map(|(spec, x)| stored(x, spec.storage.precision(precision)))
        .collect();
    let want = case.reference(&as_stored);
    result.outputs = case.compare(precision, &as_stored, &got, &want);
    result.seconds = start.elapsed().as_secs_f64();
    Ok(result)
}

/// Times `case` at `precision` in the variant its plans choose here (the first of
/// [`KernelCase::variants`]), rotating over two input sets, and names the result as the
/// registered benches do (`kernel/label/precision`, with the plan as its variant).
#[maybe_async::maybe_async]
pub async fn bench(
    gpu: &Gpu,
    timer: &Timer<'_>,
    case: &dyn KernelCase,
    precision: Precision,
    config: MeasureConfig,
) -> Result<BenchResult> {
    const SETS: usize = 2;
    let variant = case.variants(gpu)[0];
    let prepared = (0..SETS)
        .map(|i| prepare(gpu, case, precision, i as u64))
        .collect::<Result<Vec<_>>>()?;
    let plan = prepared[0].launch(gpu, case, variant)?;
    let time = timing::measure(timer, Clock::Auto, config, |i| {
        prepared[i % SETS].launch(gpu, case, variant).map(|_| ())
    })
    .await?;
    Ok(BenchResult::new(
        bench_name(case, precision),
        case.kernel(),
        &precision.to_string(),
        plan,
        case.dims(),
        case.flops(),
        case.bytes(precision),
        SETS,
        time,
    ))
}

/// The seed of `case`'s inputs in a run seeded `run_seed`: each case gets its own inputs,
/// and the run's seed reproduces them all, whatever the filter (FNV-1a of the name).
pub fn case_seed(run_seed: u64, name: &str) -> u64 {
    name.bytes().fold(run_seed ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// `case` at every precision `gpu` offers and in every variant its plans can choose here,
/// on inputs drawn from [`case_seed`]; `each` sees every result as it finishes.
#[maybe_async::maybe_async]
pub async fn check_every_variant(
    gpu: &Gpu,
    case: &dyn KernelCase,
    run_seed: u64,
    mut each: impl FnMut(&CaseCheck),
) -> Result<Vec<CaseCheck>> {
    let seed = case_seed(run_seed, &case.name());
    let mut out = vec![];
    for precision in precisions(gpu, case) {
        for variant in case.variants(gpu) {
            let r = check(gpu, case, variant, precision, seed).await?;
            each(&r);
            out.push(r);
        }
    }
    Ok(out)
}

/// Precisions `case` can run at on `gpu`.
pub fn precisions(gpu: &Gpu, case: &dyn KernelCase) -> Vec<Precision> {
    case.precisions()
        .iter()
        .copied()
        .filter(|&p| p == Precision::F32 || gpu.has_f16())
        .collect()
}

/// Whether `name` matches `pattern`: `*` matches any run of characters, and a pattern
/// without `*` matches any name that contains it.
pub fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Every kernel at the awkward shapes its checks run: sizes of 1, primes, sizes just past
/// a tile or a workgroup, masks and causal rows, extreme scales. `ceiling check` and
/// `tests/kernels.rs` run these.
pub fn checks() -> Vec<Box<dyn KernelCase>> {
    let mut cases: Vec<Box<dyn KernelCase>> = vec![];
    cases.extend(matmul::checks());
    cases.extend(attention::checks());
    cases.extend(softmax::checks());
    cases.extend(norm::checks());
    cases.extend(rope::checks());
    cases.extend(reduce::checks());
    cases.extend(lm_head::checks());
    cases.extend(elementwise::checks());
    cases
}

/// Benchmark sizes: `small` keeps a CI-length run; otherwise transformer-sized shapes.
pub fn benches(small: bool) -> Vec<Box<dyn KernelCase>> {
    let mut cases: Vec<Box<dyn KernelCase>> = vec![];
    cases.extend(matmul::benches(small));
    cases.extend(attention::benches(small));
    cases.extend(softmax::benches(small));
    cases.extend(norm::benches(small));
    cases.extend(rope::benches(small));
    cases.extend(reduce::benches(small));
    cases.extend(lm_head::benches(small));
    cases.extend(elementwise::benches(small));
    cases
}

/// The cases whose names match `pattern` (all when `None`).
pub fn select(cases: Vec<Box<dyn KernelCase>>, pattern: Option<&str>) -> Vec<Box<dyn KernelCase>> {
    cases
        .into_iter()
        .filter(|c| pattern.is_none_or(|p| matches(p, &c.name())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_like_globs() {
        assert!(matches("matmul", "matmul/7x3x5"));
        assert!(matches(
            "attention/*causal",
            "attention/b1h2-n7-hd24-causal"
        ));
        assert!(!matches(
            "attention/*causal",
            "attention/b1h2-n7-hd24-causal-mask"
        ));
        assert!(matches("*norm*", "rms_norm/3x1000"));
        assert!(!matches("norm*", "rms_norm/3x1000"));
        assert!(matches("*", "x"));
    }

    #[test]
    fn a_failed_check_reads_back_from_json() {
        let failed = OutputCheck {
            output: "out".into(),
            error: f64::INFINITY,
            tolerance: 1e-5,
            note: None,
        };
        let text = serde_json::to_string(&failed).unwrap();
        let back: OutputCheck = serde_json::from_str(&text).unwrap();
        assert!(back.error.is_nan() && back.output == failed.output);
        assert!(!back.passed());
    }

    #[test]
    fn names_are_unique() {
        for cases in [checks(), benches(true), benches(false)] {
            let mut names: Vec<String> = cases.iter().map(|c| c.name()).collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate case names");
        }
    }

    #[test]
    fn drawn_inputs_fit_their_specs() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for case in checks().iter().chain(&benches(true)) {
            let inputs = case.draw(&mut rng);
            let specs = case.inputs();
            assert_eq!(inputs.len(), specs.len(), "{}", case.name());
            for (x, s) in inputs.iter().zip(&specs) {
                assert_eq!(x.len(), s.len(), "{} {}", case.name(), s.name);
            }
        }
    }
}
