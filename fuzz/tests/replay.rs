//! Every crash the fuzzers found (`fuzz/regressions/<target>/`, copied there by `cargo xtask
//! fuzz`) and every seed, through its target again: a reader that panics on one of them
//! again fails here, with no AFL installed.

use std::path::Path;

#[test]
fn found_crashes_and_seeds_no_longer_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for target in ceiling_fuzz::TARGETS {
        let mut inputs: Vec<(String, Vec<u8>)> = ceiling_fuzz::seeds(target)
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("{target} seed {i}"), s))
            .collect();
        let dir = root.join(target);
        if dir.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file() && !p.ends_with("README.md"))
                .collect();
            files.sort();
            for f in files {
                inputs.push((f.display().to_string(), std::fs::read(&f).unwrap()));
            }
        }
        for (name, input) in inputs {
            if std::panic::catch_unwind(|| ceiling_fuzz::run(target, &input)).is_err() {
                failures.push(name);
            }
            replayed += 1;
        }
    }
    // Folders under regressions/ are named for targets; a stray one would never replay.
    if root.is_dir() {
        for e in std::fs::read_dir(&root).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                assert!(
                    ceiling_fuzz::TARGETS.contains(&name.as_str()),
                    "{}: not a fuzz target",
                    p.display()
                );
            }
        }
    }
    eprintln!("replayed {replayed} inputs");
    assert!(failures.is_empty(), "these inputs panic: {failures:#?}");
}

/// The seeds are what they claim: valid files their readers accept (a seed that is refused
/// would leave the fuzzer mutating garbage).
#[test]
fn seeds_are_accepted_by_their_readers() {
    use ceiling_core::{model, text};
    for s in ceiling_fuzz::seeds("gguf") {
        let f = model::gguf::GgufFile::parse(s, "seed.gguf").unwrap();
        model::gguf::load_llama(&f).unwrap();
    }
    for (s, config) in ceiling_fuzz::seeds("safetensors")
        .iter()
        .zip(ceiling_fuzz::seeds("hf_config"))
    {
        let config = std::str::from_utf8(&config).unwrap();
        model::parse_checkpoint(config, "config.json", &s[1..], "seed").unwrap();
    }
    for s in ceiling_fuzz::seeds("tokenizer_json") {
        let t = text::Tokenizer::from_json(std::str::from_utf8(&s).unwrap(), "seed").unwrap();
        assert_eq!(
            t.prefix().len(),
            1,
            "the seed's post-processor puts one token first"
        );
    }
    for s in ceiling_fuzz::seeds("model_config") {
        let c: model::ModelConfig = serde_json::from_slice(&s).unwrap();
        c.validate().unwrap();
    }
    for s in ceiling_fuzz::seeds("tokens") {
        let t = std::str::from_utf8(&s[1..]).unwrap();
        let r = if s[0] % 2 == 0 {
            text::parse_token_json(t, "t")
        } else {
            text::parse_token_lines(t, "t")
        };
        assert!(r.unwrap().n > 0);
    }
    for s in ceiling_fuzz::seeds("corpus") {
        assert!(!text::documents_of(s[1..].to_vec(), "c", s[0] % 2 == 1)
            .unwrap()
            .is_empty());
    }
}
