//! `ceiling hidden`: per-layer hidden states of a model for given token ids or random
//! inputs, written as safetensors, for diffing against another implementation.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use ceiling_core::model::{
    load_checkpoint, reference, ModelConfig, ModelWeights, ProbeStates, RandomInput,
};
use ceiling_host::model::GpuModel;
use ceiling_shaders::Precision;
use safetensors::{tensor::TensorView, Dtype};

#[derive(clap::Args)]
pub struct Args {
    /// A Hugging Face checkpoint directory (config.json + model.safetensors; BERT or GPT-2).
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    model: Option<PathBuf>,
    /// A ceiling model config (JSON); weights are drawn from --seed.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Token ids: a JSON array of ids (one sequence) or an array of equal-length arrays.
    /// Without it, random inputs of --batch x --n are drawn from --seed.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Seed of random weights and random inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sequences of random inputs.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Length of random inputs.
    #[arg(long, default_value_t = 16)]
    n: usize,
    /// Positions to keep, comma-separated (default: every position).
    #[arg(long, value_delimiter = ',')]
    positions: Option<Vec<usize>>,
    /// Storage precision of weights and activations: f32 or f16.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Also run the f64 CPU reference and print the relative error per layer (slow on big models).
    #[arg(long)]
    check: bool,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

fn read_tokens(path: &PathBuf) -> anyhow::Result<(Vec<u32>, usize, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid JSON", path.display()))?;
    let id = |v: &serde_json::Value| -> anyhow::Result<u32> {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .with_context(|| {
                format!(
                    "{}: token ids must be integers >= 0, got {v}",
                    path.display()
                )
            })
    };
    let Some(outer) = value.as_array() else {
        bail!("{}: expected a JSON array of token ids", path.display());
    };
    if outer.is_empty() {
        bail!("{}: no token ids", path.display());
    }
    if outer[0].is_array() {
        let rows: Vec<Vec<u32>> = outer
            .iter()
            .map(|r| {
                r.as_array()
                    .with_context(|| format!("{}: mixed arrays and ids", path.display()))?
                    .iter()
                    .map(id)
                    .collect()
            })
            .collect::<anyhow::Result<_>>()?;
        let n = rows[0].len();
        if n == 0 || rows.iter().any(|r| r.len() != n) {
            bail!(
                "{}: every sequence must have the same, non-zero length",
                path.display()
            );
        }
        Ok((rows.concat(), rows.len(), n))
    } else {
        let ids: Vec<u32> = outer.iter().map(id).collect::<anyhow::Result<_>>()?;
        let n = ids.len();
        Ok((ids, 1, n))
    }
}

pub fn run(args: Args, adapter: &ceiling_host::AdapterRequest) -> anyhow::Result<()> {
    let precision = match args.precision.as_str() {
        "f32" => Precision::F32,
        "f16" => Precision::F16,
        p => bail!("--precision must be f32 or f16, got '{p}'"),
    };
    let (weights, source) = match (&args.model, &args.config) {
        (Some(dir), _) => (
            load_checkpoint(dir).with_context(|| format!("loading {}", dir.display()))?,
            format!("checkpoint {}", dir.display()),
        ),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let config: ModelConfig = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a valid model config", path.display()))?;
            (
                ModelWeights::random(&config, args.seed)?,
                format!("config {} seed {}", path.display(), args.seed),
            )
        }
        (None, None) => bail!("give --model DIR or --config FILE"),
    };
    let config = &weights.config;
    let (input, batch, n) = match &args.tokens {
        Some(path) => {
            let (ids, batch, n) = read_tokens(path)?;
            (RandomInput::Tokens(ids), batch, n)
        }
        None => (
            RandomInput::draw(config, args.batch, args.n, args.seed.wrapping_add(1)),
            args.batch,
            args.n,
        ),
    };
    let positions = args.positions.clone().unwrap_or_else(|| (0..n).collect());
    let gpu = ceiling_host::Gpu::new(adapter)?;
    let model = GpuModel::new(&gpu, &weights, precision)?;
    let states = model.forward(&gpu, &input.as_input(batch, n), &positions)?;
    eprintln!(
        "{} layers, d_model {}, batch {batch} x n {n}, {} positions on {} ({precision})",
        config.layers,
        config.d_model,
        positions.len(),
        gpu.name()
    );
    if args.check {
        let want = reference::forward(&weights, &input.as_input(batch, n), &positions)?;
        for (l, (g, c)) in states.hidden.iter().zip(&want.hidden).enumerate() {
            eprintln!(
                "layer {l}: hidden {}, attn_out {}",
                ceiling_core::reference::compare(g, c),
                ceiling_core::reference::compare(&states.attn_out[l], &want.attn_out[l])
            );
        }
    }
    let mut meta = HashMap::new();
    meta.insert("config".into(), serde_json::to_string(config)?);
    meta.insert("source".into(), source);
    meta.insert("adapter".into(), serde_json::to_string(&gpu.summary)?);
    meta.insert("precision".into(), precision.to_string());
    meta.insert("seed".into(), args.seed.to_string());
    meta.insert("positions".into(), serde_json::to_string(&positions)?);
    meta.insert("tool_version".into(), env!("CARGO_PKG_VERSION").into());
    meta.insert(
        "layout".into(),
        "embeddings, hidden.L, attn_out.L, final_norm: [batch, positions, d_model]; \
         n_eff.L, entropy.L: [batch, heads, positions]"
            .into(),
    );
    write_states(&args.out, &states, meta)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn write_states(
    path: &PathBuf,
    s: &ProbeStates<f32>,
    meta: HashMap<String, String>,
) -> anyhow::Result<()> {
    let rows = vec![s.batch, s.probes.len(), s.d_model];
    let spread = vec![s.batch, s.heads, s.probes.len()];
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    tensors.push(("embeddings".into(), rows.clone(), bytes(&s.embeddings)));
    for l in 0..s.hidden.len() {
        tensors.push((format!("hidden.{l}"), rows.clone(), bytes(&s.hidden[l])));
        tensors.push((format!("attn_out.{l}"), rows.clone(), bytes(&s.attn_out[l])));
        tensors.push((format!("n_eff.{l}"), spread.clone(), bytes(&s.n_eff[l])));
        tensors.push((format!("entropy.{l}"), spread.clone(), bytes(&s.entropy[l])));
    }
    if let Some(f) = &s.final_norm {
        tensors.push(("final_norm".into(), rows.clone(), bytes(f)));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, data)| {
            Ok((
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let data = safetensors::serialize(views, Some(meta))?;
    // Written next to the target and renamed, so a reader never sees half a file.
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}
