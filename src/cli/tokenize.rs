//! `ceiling tokenize`: the ids a model's tokenizer gives a text, one line, space separated,
//! to diff against Python's `tokenizers` (`tok.encode(text).ids`) or llama.cpp.

use std::path::PathBuf;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// A GGUF file or a checkpoint directory with tokenizer.json.
    #[arg(long)]
    model: PathBuf,
    /// A UTF-8 text file.
    #[arg(long)]
    text: PathBuf,
    /// Print the decoded ids instead of the ids (a round trip of the text).
    #[arg(long)]
    decode: bool,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let raw =
        std::fs::read(&args.text).with_context(|| format!("reading {}", args.text.display()))?;
    let text = String::from_utf8(raw).map_err(|e| {
        anyhow::anyhow!(
            "{} is not valid UTF-8 (first bad byte at offset {})",
            args.text.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let tokenizer = match ceiling_core::model::load_tokenizer(&args.model)? {
        Some(t) => t,
        None => bail!(
            "{} has no tokenizer (no tokenizer.json beside config.json, or no \
             tokenizer.ggml.* metadata in the GGUF file)",
            args.model.display()
        ),
    };
    let ids = tokenizer.encode(&text)?;
    if args.decode {
        print!("{}", tokenizer.decode(&ids)?);
    } else {
        let line: Vec<String> = ids.iter().map(u32::to_string).collect();
        println!("{}", line.join(" "));
    }
    eprintln!(
        "{} tokens from {} bytes ({})",
        ids.len(),
        text.len(),
        tokenizer.source()
    );
    Ok(())
}
