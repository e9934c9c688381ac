//! A short fuzz run of every target on the stable toolchain, without AFL: random mutations
//! of the seeds (no coverage feedback), CEILING_FUZZ_SECONDS per target (default 2; `cargo
//! xtask test` gives 8). The seed is printed; CEILING_FUZZ_SEED repeats a run. An input that
//! panics is written to target/fuzz-crashes/<target>/ and fails the test: copy it into
//! fuzz/regressions/<target>/ when the reader is fixed.

fn fuzz(target: &str) {
    let seconds: f64 = std::env::var("CEILING_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0);
    let seed = ceiling_fuzz::fixtures::seed_from_env("CEILING_FUZZ_SEED");
    // Panics are expected to be caught; keep their messages from flooding the output.
    match ceiling_fuzz::mutate_for(target, seconds, seed) {
        Ok(execs) => {
            eprintln!("{target}: {execs} executions in {seconds} s (CEILING_FUZZ_SEED={seed})")
        }
        Err(input) => {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../target/fuzz-crashes")
                .join(target);
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("crash-{seed}"));
            std::fs::write(&path, &input).unwrap();
            panic!(
                "{target}: an input panics the reader (CEILING_FUZZ_SEED={seed}); saved as {}",
                path.display()
            );
        }
    }
}

#[test]
fn mutate_safetensors() {
    fuzz("safetensors");
}

#[test]
fn mutate_hf_config() {
    fuzz("hf_config");
}

#[test]
fn mutate_model_config() {
    fuzz("model_config");
}

#[test]
fn mutate_gguf() {
    fuzz("gguf");
}

#[test]
fn mutate_tokenizer_json() {
    fuzz("tokenizer_json");
}

#[test]
fn mutate_tokens() {
    fuzz("tokens");
}

#[test]
fn mutate_corpus() {
    fuzz("corpus");
}

#[test]
fn mutate_results() {
    fuzz("results");
}

/// Every target has its test here (`cargo xtask fuzz` reads the list from `TARGETS` itself).
#[test]
fn every_target_is_mutated() {
    let me = include_str!("mutate.rs");
    for t in ceiling_fuzz::TARGETS {
        assert!(me.contains(&format!("fn mutate_{t}()")), "{t}");
    }
}
