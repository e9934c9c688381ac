//! `ceiling`: GPU kernels for transformers and context-length sweeps of hidden-state noise.

mod cli;
mod plot;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ceiling", version, about)]
struct Cli {
    /// Use the adapter whose name contains this (case-insensitive); default: the best one.
    /// WGPU_ADAPTER_NAME and WGPU_BACKEND are honoured too.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// How kernels choose their variant: `full` times the candidates the first time a shape
    /// class runs on this adapter and caches the winner (~/.cache/ceiling, or
    /// CEILING_CACHE_DIR); `cached` only reads that cache; `off` uses the built-in rules.
    #[arg(long, global = true, env = "CEILING_AUTOTUNE", default_value = "full")]
    autotune: ceiling_host::Autotune,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter with its backend, driver, features and limits.
    Info(cli::info::Args),
    /// Run one kernel on tensors from a safetensors file (to diff against PyTorch or JAX).
    #[command(subcommand)]
    Kernel(cli::kernel::Command),
    /// Every kernel against its f64 reference on this adapter (awkward shapes, each
    /// precision and variant): one line per case, JUnit XML and JSON, exit 1 on a failure.
    Check(cli::check::Args),
    /// Context-length sweep: how hidden-state noise falls with n.
    Sweep(cli::sweep::Args),
    /// Merge result directories (sweeps, bench JSON) into one table and one set of plots.
    Report(cli::report::Args),
    /// Per-layer hidden states of a model for given token ids or random inputs.
    Hidden(cli::hidden::Args),
    /// Next-token loss along the context: windows of real text through a causal language model.
    Loss(cli::loss::Args),
    /// In-context emergence: induction and few-shot tasks along the context, per-layer label
    /// SNR and read-out accuracy, the model's own accuracy, and one threshold across them.
    Emerge(cli::emerge::Args),
    /// The token ids a model's tokenizer gives a text (one line, space separated).
    Tokenize(cli::tokenize::Args),
    /// Fit L = E + A/N^alpha + B/D^beta (and with E = 0) to a CSV of training runs.
    Fit(cli::fit::Args),
}

fn main() -> std::process::ExitCode {
    // Mesa's Vulkan window-system layer complains on every start without XDG_RUNTIME_DIR;
    // compute needs no display. Set here, before any thread exists.
    if cfg!(target_os = "linux") && std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    let adapter = ceiling_host::AdapterRequest {
        name: cli.adapter.clone(),
        autotune: cli.autotune,
        ..Default::default()
    };
    let result = match cli.command {
        Command::Info(args) => cli::info::run(args, cli.adapter.as_deref()),
        Command::Kernel(cmd) => cli::kernel::run(cmd, &adapter),
        Command::Check(args) => cli::check::run(args, &adapter),
        Command::Sweep(args) => cli::sweep::run(args, &adapter),
        Command::Report(args) => cli::report::run(args),
        Command::Hidden(args) => cli::hidden::run(args, &adapter),
        Command::Tokenize(args) => cli::tokenize::run(args),
        Command::Loss(args) => cli::loss::run(args, &adapter),
        Command::Emerge(args) => cli::emerge::run(args, &adapter),
        Command::Fit(args) => cli::fit::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by ": ", as `{:#}` writes them, less the causes whose text
/// is already there: an error that keeps its source (an I/O or JSON error) names it in its
/// own message, before the fix.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}
