//! `ceiling kernel ...`: one kernel run on tensors read from a safetensors file, with the
//! result written to another, so that users can diff ceiling against PyTorch or JAX.
//!
//! Everything about the file (names, dtypes, ranks, shapes, finiteness) is checked before
//! the GPU is opened, so a bad file fails fast and with the tensor named.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::tensors::{same_dim, write_atomic, Input, Loaded, Output};
use anyhow::{bail, Context, Result};
use ceiling_core::kernel::{Activation, AttentionShape, MatmulShape, SoftmaxShape};
use ceiling_host::cases::{self, KernelCase, NormKind, Variant};
use ceiling_host::kernels::{self, AttentionKernel, MatmulKernel, STATS_PER_ROW};
use ceiling_host::{AdapterRequest, Gpu};
use ceiling_shaders::Precision;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Attention, softmax(scale q k^T + masks) v.
    ///
    /// Tensors: q [batch, heads, n_q, head_dim], k and v [batch, kv_heads, n_kv, head_dim],
    /// optional mask [batch, n_kv] (nonzero = keep). Writes out, and (fused kernels) f32
    /// lse, n_eff, entropy [batch, heads, n_q].
    Attention(AttentionArgs),
    /// Matmul with epilogue, act(a b + bias) + residual.
    ///
    /// Tensors: a [m, k] or [batch, m, k], b [k, n], optional bias [n], optional residual
    /// (the shape of out). Writes out.
    Matmul(MatmulArgs),
    /// Layer norm over the last dim.
    ///
    /// Tensors: x [..., cols], gamma [cols], beta [cols]. Writes out.
    LayerNorm(NormArgs),
    /// RMS norm over the last dim.
    ///
    /// Tensors: x [..., cols], gamma [cols]. Writes out.
    RmsNorm(NormArgs),
    /// Softmax over the last dim.
    ///
    /// Tensor: x [..., cols]; computes softmax(scale * x). Writes out.
    Softmax(SoftmaxArgs),
}

/// Files and precision, common to every kernel.
#[derive(clap::Args)]
pub struct Io {
    /// Safetensors file with the input tensors (F32, F16, BF16 or F64).
    #[arg(long)]
    input: PathBuf,
    /// Safetensors file to write (atomically: written to a temporary file beside it, then renamed).
    #[arg(long)]
    output: PathBuf,
    /// Store tensors as f16 on the GPU (f32 accumulation) and write out as F16.
    #[arg(long)]
    f16: bool,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct AttentionArgs {
    #[command(flatten)]
    io: Io,
    /// Query i sees key j iff j <= i + n_kv - n_q (queries aligned to the end of the keys).
    #[arg(long)]
    causal: bool,
    /// Logit scale; default 1/sqrt(head_dim).
    #[arg(long)]
    scale: Option<f64>,
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    kernel: KernelChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KernelChoice {
    /// The subgroup kernel on GPUs where it fits this shape, else rows.
    Auto,
    /// One query row per invocation.
    Rows,
    /// Several invocations per query row.
    Portable,
    Subgroup,
    /// Scores in memory, softmax, then weights x v (no lse / n_eff / entropy).
    Unfused,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct MatmulArgs {
    #[command(flatten)]
    io: Io,
    #[arg(long, value_enum, default_value_t = ActivationChoice::None)]
    activation: ActivationChoice,
}

/// Mirrors `ceiling_core::kernel::Activation`, which knows nothing of clap.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ActivationChoice {
    None,
    /// Exact GELU (PyTorch's default `gelu`).
    Gelu,
    /// The tanh approximation (`gelu(approximate="tanh")`).
    GeluTanh,
    Silu,
}

impl From<ActivationChoice> for Activation {
    fn from(a: ActivationChoice) -> Self {
        match a {
            ActivationChoice::None => Activation::None,
            ActivationChoice::Gelu => Activation::Gelu,
            ActivationChoice::GeluTanh => Activation::GeluTanh,
            ActivationChoice::Silu => Activation::Silu,
        }
    }
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct NormArgs {
    #[command(flatten)]
    io: Io,
    #[arg(long, default_value_t = 1e-5)]
    eps: f32,
}

#[derive(clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct SoftmaxArgs {
    #[command(flatten)]
    io: Io,
    /// Multiplies x before the softmax.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

pub fn run(cmd: Command, adapter: &AdapterRequest) -> Result<()> {
    let io = match &cmd {
        Command::Attention(a) => &a.io,
        Command::Matmul(a) => &a.io,
        Command::LayerNorm(a) | Command::RmsNorm(a) => &a.io,
        Command::Softmax(a) => &a.io,
    };
    io.check_output_dir()?;
    match cmd {
        Command::Attention(args) => attention(args, adapter),
        Command::Matmul(args) => matmul(args, adapter),
        Command::LayerNorm(args) => norm(args, true, adapter),
        Command::RmsNorm(args) => norm(args, false, adapter),
        Command::Softmax(args) => softmax(args, adapter),
    }
}

fn attention(args: AttentionArgs, adapter: &AdapterRequest) -> Result<()> {
    let io = &args.io;
    let mut file = Input::read(&io.input, &["q", "k", "v"], &["mask"], io.precision())?;
    let q = file.take("q")?;
    let k = file.take("k")?;
    let v = file.take("v")?;
    let mask = file.take_optional("mask")?;
    q.rank(&["batch", "heads", "n_q", "head_dim"])?;
    k.rank(&["batch", "kv_heads", "n_kv", "head_dim"])?;
    v.rank(&["batch", "kv_heads", "n_kv", "head_dim"])?;
    same_dim(&k, 0, &q, 0, "batch")?;
    same_dim(&k, 3, &q, 3, "head_dim")?;
    if v.shape != k.shape {
        bail!(
            "tensor `v` has shape {:?} but k has {:?}: v must match k exactly",
            v.shape,
            k.shape
        );
    }
    if let Some(m) = &mask {
        m.rank(&["batch", "n_kv"])?;
        same_dim(m, 0, &q, 0, "batch")?;
        same_dim(m, 1, &k, 2, "n_kv")?;
    }
    let [batch, heads, n_q, head_dim] = q.shape[..] else {
        unreachable!("rank checked above")
    };
    let mut shape = AttentionShape::new(batch, heads, n_q, head_dim);
    shape.kv_heads = k.shape[1];
    shape.n_kv = k.shape[2];
    shape.causal = args.causal;
    if let Some(s) = args.scale {
        shape.scale = s;
    }
    shape
        .validate()
        .context("attention: bad q/k/v shapes or --scale")?;

    let precision = io.precision();
    let gpu = open(adapter, precision)?;
    let start = Instant::now();
    // The kernels take the key mask as f32 0/1 whatever the input dtype.
    let mut tensors = vec![q.named(), k.named(), v.named()];
    if let Some(m) = &mask {
        tensors.push((
            "mask",
            m.data.iter().map(|&x| (x != 0.0) as u32 as f32).collect(),
        ));
    }
    let masked = mask.is_some();
    let (kernel_name, outputs) = if args.kernel == KernelChoice::Unfused {
        let case = cases::AttentionUnfusedCase { shape, masked };
        let (_, mut out) = run_case(&gpu, &case, Variant::Only, precision, tensors)?;
        let out = Output::result("out", q.shape.clone(), out.remove(0), precision)?;
        ("unfused".to_string(), vec![out])
    } else {
        let kernel = match args.kernel {
            KernelChoice::Rows => AttentionKernel::Rows {
                wg: kernels::attention::ROWS_WG,
                rows: 0,
            },
            KernelChoice::Portable => AttentionKernel::Portable,
            KernelChoice::Subgroup => AttentionKernel::Subgroup,
            _ => AttentionKernel::Auto,
        };
        let case = cases::AttentionCase {
            shape,
            masked,
            stats: true,
            extra: vec![],
        };
        let (plan, got) = run_case(&gpu, &case, Variant::Attention(kernel), precision, tensors)?;
        let [out, stats] = <[Vec<f32>; 2]>::try_from(got).expect("out and stats");
        let mut outputs = vec![Output::result("out", q.shape.clone(), out, precision)?];
        // Stats are interleaved per row: [lse, n_eff, entropy].
        let rows = vec![batch, heads, n_q];
        for (i, name) in ["lse", "n_eff", "entropy"].into_iter().enumerate() {
            let col = stats
                .iter()
                .skip(i)
                .step_by(STATS_PER_ROW)
                .copied()
                .collect();
            outputs.push(Output::new(name, rows.clone(), col, Precision::F32));
        }
        (plan, outputs)
    };
    let elapsed = start.elapsed();
    let options = format!(
        "{}{}, scale {}",
        if args.causal {
            "causal"
        } else {
            "bidirectional"
        },
        if mask.is_some() { ", key mask" } else { "" },
        shape.scale
    );
    let what = format!(
        "attention ({kernel_name}) q {:?} k/v {:?}, {options}",
        q.shape, k.shape
    );
    finish(&gpu, io, &what, precision, outputs, elapsed)
}

fn matmul(args: MatmulArgs, adapter: &AdapterRequest) -> Result<()> {
    let io = &args.io;
    let mut file = Input::read(
        &io.input,
        &["a", "b"],
        &["bias", "residual"],
        io.precision(),
    )?;
    let a = file.take("a")?;
    let b = file.take("b")?;
    let bias = file.take_optional("bias")?;
    let residual = file.take_optional("residual")?;
    if a.shape.len() == 3 {
        a.rank(&["batch", "m", "k"])?;
    } else {
        a.rank(&["m", "k"])?;
    }
    b.rank(&["k", "n"])?;
    let ka = a.shape.len() - 1;
    same_dim(&b, 0, &a, ka, "k")?;
    let n = b.shape[1];
    // A batch of a against one b is a single matmul over all rows of a.
    let rows: usize = a.shape[..ka].iter().product();
    let out_shape: Vec<usize> = a.shape[..ka].iter().copied().chain([n]).collect();
    if let Some(bias) = &bias {
        bias.rank(&["n"])?;
        same_dim(bias, 0, &b, 1, "n")?;
    }
    if let Some(r) = &residual {
        if r.shape != out_shape {
            bail!(
                "tensor `residual` has shape {:?} but the output has {out_shape:?}: they must match",
                r.shape
            );
        }
    }
    let shape = MatmulShape::new(rows, a.shape[ka], n);
    shape.validate().context("matmul: bad a/b shapes")?;

    let precision = io.precision();
    let gpu = open(adapter, precision)?;
    let start = Instant::now();
    let case = cases::MatmulCase {
        bias: bias.is_some(),
        residual: residual.is_some(),
        act: args.activation.into(),
        ..cases::MatmulCase::new(shape.m, shape.k, shape.n)
    };
    let tensors = [Some(&a), Some(&b), bias.as_ref(), residual.as_ref()]
        .into_iter()
        .flatten()
        .map(Loaded::named)
        .collect();
    let variant = Variant::Matmul(MatmulKernel::Auto);
    let (plan, mut out) = run_case(&gpu, &case, variant, precision, tensors)?;
    let outputs = vec![Output::result("out", out_shape, out.remove(0), precision)?];
    let elapsed = start.elapsed();
    let what = format!(
        "matmul ({plan}) a {:?} x b {:?}{}{}, activation {:?}",
        a.shape,
        b.shape,
        if case.bias { " + bias" } else { "" },
        if case.residual { " + residual" } else { "" },
        case.act
    );
    finish(&gpu, io, &what, precision, outputs, elapsed)
}

fn norm(args: NormArgs, layer: bool, adapter: &AdapterRequest) -> Result<()> {
    let io = &args.io;
    let (kernel, required): (&str, &[&str]) = if layer {
        ("layer_norm", &["x", "gamma", "beta"])
    } else {
        ("rms_norm", &["x", "gamma"])
    };
    let mut file = Input::read(&io.input, required, &[], io.precision())?;
    let x = file.take("x")?;
    let gamma = file.take("gamma")?;
    let beta = if layer {
        Some(file.take("beta")?)
    } else {
        None
    };
    x.at_least_rank_1()?;
    let last = x.shape.len() - 1;
    for p in [Some(&gamma), beta.as_ref()].into_iter().flatten() {
        p.rank(&["cols"])?;
        same_dim(p, 0, &x, last, "cols")?;
    }
    if !(args.eps.is_finite() && args.eps >= 0.0) {
        bail!("--eps must be finite and >= 0, got {}", args.eps);
    }
    let cols = x.shape[last];

    let precision = io.precision();
    let gpu = open(adapter, precision)?;
    let start = Instant::now();
    let case = cases::NormCase {
        kind: if layer {
            NormKind::Layer
        } else {
            NormKind::Rms
        },
        rows: x.data.len() / cols,
        cols,
        eps: args.eps,
    };
    let tensors = [Some(&x), Some(&gamma), beta.as_ref()]
        .into_iter()
        .flatten()
        .map(Loaded::named)
        .collect();
    let (_, mut out) = run_case(&gpu, &case, Variant::Only, precision, tensors)?;
    let outputs = vec![Output::result(
        "out",
        x.shape.clone(),
        out.remove(0),
        precision,
    )?];
    let elapsed = start.elapsed();
    let what = format!("{kernel} x {:?}, eps {}", x.shape, args.eps);
    finish(&gpu, io, &what, precision, outputs, elapsed)
}

fn softmax(args: SoftmaxArgs, adapter: &AdapterRequest) -> Result<()> {
    let io = &args.io;
    let mut file = Input::read(&io.input, &["x"], &[], io.precision())?;
    let x = file.take("x")?;
    x.at_least_rank_1()?;
    let cols = *x.shape.last().unwrap();
    let mut shape = SoftmaxShape::plain(x.data.len() / cols.max(1), cols);
    shape.scale = args.scale;
    shape
        .validate()
        .context("softmax: bad x shape or --scale")?;

    let precision = io.precision();
    let gpu = open(adapter, precision)?;
    let start = Instant::now();
    let case = cases::SoftmaxCase {
        batch: 1,
        shape,
        masked: false,
    };
    let (_, mut out) = run_case(&gpu, &case, Variant::Only, precision, vec![x.named()])?;
    let outputs = vec![Output::result(
        "out",
        x.shape.clone(),
        out.remove(0),
        precision,
    )?];
    let elapsed = start.elapsed();
    let what = format!("softmax x {:?}, scale {}", x.shape, args.scale);
    finish(&gpu, io, &what, precision, outputs, elapsed)
}

impl Io {
    /// Fails before any GPU work when the output could not be written anyway, or would
    /// replace the input.
    fn check_output_dir(&self) -> Result<()> {
        check_output_path(&self.output, "--output")?;
        if same_file(&self.input, &self.output) {
            bail!(
                "--output {} is the --input file: writing it would destroy the input; choose \
                 another --output",
                self.output.display()
            );
        }
        Ok(())
    }

    fn precision(&self) -> Precision {
        if self.f16 {
            Precision::F16
        } else {
            Precision::F32
        }
    }
}

/// Refuses an output path whose folder does not exist, or that is a folder.
pub fn check_output_path(output: &Path, flag: &str) -> Result<()> {
    let dir = match output.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "the folder {} of {flag} {} does not exist: create it first",
            dir.display(),
            output.display()
        );
    }
    if output.is_dir() {
        bail!("{flag} {} is a folder: give a file path", output.display());
    }
    Ok(())
}

/// Whether two paths name the same existing file (through links or `.` and `..`).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Opens the adapter and refuses a precision it cannot store.
fn open(adapter: &AdapterRequest, precision: Precision) -> Result<Gpu> {
    let gpu = Gpu::new(adapter)?;
    gpu.require_precision(precision)
        .context("--f16 needs an adapter with shader-f16; drop --f16 to run in f32")?;
    Ok(gpu)
}

/// Runs `case` on the named input tensors (matched to the case's inputs by name: the
/// case says which tensors the kernel reads); returns the plan and every output.
fn run_case(
    gpu: &Gpu,
    case: &dyn KernelCase,
    variant: Variant,
    precision: Precision,
    mut tensors: Vec<(&'static str, Vec<f32>)>,
) -> Result<(String, Vec<Vec<f32>>)> {
    let host = case
        .inputs()
        .iter()
        .map(|spec| {
            let i = tensors.iter().position(|(name, _)| *name == spec.name);
            let i = i.with_context(|| format!("{}: no tensor `{}`", case.name(), spec.name))?;
            Ok(tensors.swap_remove(i).1)
        })
        .collect::<Result<Vec<_>>>()?;
    cases::run(gpu, case, variant, precision, host)
        .with_context(|| format!("{} failed", case.kernel()))
}

/// Writes the outputs atomically and prints the one-line summary.
fn finish(
    gpu: &Gpu,
    io: &Io,
    what: &str,
    precision: Precision,
    outputs: Vec<Output>,
    elapsed: std::time::Duration,
) -> Result<()> {
    // Self-describing results: which adapter and tool produced them, from what.
    let s = &gpu.summary;
    let metadata = HashMap::from([
        ("kernel".to_string(), what.to_string()),
        ("precision".to_string(), precision.to_string()),
        ("adapter".to_string(), s.name.clone()),
        ("backend".to_string(), s.backend.clone()),
        (
            "driver".to_string(),
            format!("{} {}", s.driver, s.driver_info),
        ),
        (
            "tool".to_string(),
            format!("ceiling {}", env!("CARGO_PKG_VERSION")),
        ),
        ("input".to_string(), io.input.display().to_string()),
    ]);
    write_atomic(&io.output, "--output", &outputs, metadata)?;
    println!(
        "{what}: {precision} on {} ({}), {:.1} ms -> {}",
        s.name,
        s.backend,
        elapsed.as_secs_f64() * 1e3,
        io.output.display()
    );
    Ok(())
}
