//! `ceiling fit` on CSV tables generated from known parameters: fit.json's keys and values,
//! and bad tables refused with a message naming the problem, writing nothing.

mod common;

use std::path::Path;
use std::process::Output;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use common::run_ceiling as ceiling;

/// Header and rows of Hoffmann et al.'s L(N, D) with ~1% noise, columns in an odd order with
/// an extra one that must be ignored.
fn chinchilla_csv(rows: usize) -> String {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut s = String::from("loss,run,D,N\n");
    for k in 0..rows {
        let (i, j) = (k / 6, k % 6);
        let n = 1e7 * 10f64.powf(i as f64 * 0.6);
        let d = 1e9 * 10f64.powf(j as f64 * 0.6);
        let l = 1.69 + 406.4 / n.powf(0.34) + 410.7 / d.powf(0.28);
        let noise = 0.017 * (2.0 * rng.random::<f64>() - 1.0);
        s += &format!("{},run-{k},{d:e},{n}\n", l * (1.0 + noise));
    }
    s
}

fn run_fit(dir: &Path, csv: &str) -> (Output, std::path::PathBuf) {
    let table = dir.join("runs.csv");
    std::fs::write(&table, csv).unwrap();
    let out = dir.join("out");
    let o = ceiling(&[
        "fit",
        "--table",
        table.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--bootstrap",
        "40",
        "--seed",
        "3",
    ]);
    (o, out)
}

#[test]
fn fit_writes_both_forms_with_intervals_and_aicc() {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_fit(dir.path(), &chinchilla_csv(36));
    assert!(o.status.success());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("with pedestal") && stdout.contains("without pedestal"));
    assert!(stdout.contains("shifts alpha by") && stdout.contains("and beta by"));
    let text = std::fs::read_to_string(out.join("fit.json")).unwrap();
    assert!(!out.join("fit.json.tmp").exists());
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for form in ["with_pedestal", "without_pedestal"] {
        let f = &v[form];
        for key in ["E", "A", "B", "alpha", "beta"] {
            assert!(f[key].is_number(), "{form}.{key}");
            for end in ["lo", "hi"] {
                assert!(
                    f["intervals"][key][end].is_number(),
                    "{form}.intervals.{key}.{end}"
                );
            }
        }
        assert!(f["aicc"].is_number(), "{form}.aicc");
    }
    let w = &v["with_pedestal"];
    let get = |k: &str| w[k].as_f64().unwrap();
    assert!((get("E") - 1.69).abs() < 0.1, "E {}", get("E"));
    assert!((get("alpha") - 0.34).abs() < 0.04 && (get("beta") - 0.28).abs() < 0.04);
    assert_eq!(v["without_pedestal"]["E"].as_f64(), Some(0.0));
    assert_eq!(v["choice"], "with_pedestal");
    assert!(v["alpha_shift"].is_number() && v["beta_shift"].is_number());
    assert_eq!(v["bootstrap"], 40);
    // The same table and seed give the same file.
    let again = dir.path().join("again");
    let o = ceiling(&[
        "fit",
        "--table",
        dir.path().join("runs.csv").to_str().unwrap(),
        "--out",
        again.to_str().unwrap(),
        "--bootstrap",
        "40",
        "--seed",
        "3",
    ]);
    assert!(o.status.success());
    assert_eq!(
        std::fs::read_to_string(again.join("fit.json")).unwrap(),
        text
    );
}

/// Runs `ceiling fit` on a bad table: it must fail, say `expect` (each part), write nothing.
fn refused(csv: &str, expect: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let (o, out) = run_fit(dir.path(), csv);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("runs.csv"), "names the file: {err}");
    for e in expect {
        assert!(err.contains(e), "expected '{e}' in: {err}");
    }
    assert!(!out.exists(), "nothing is written");
}

#[test]
fn a_missing_column_is_refused() {
    let csv = chinchilla_csv(36).replacen("loss,run,D,N", "loss,run,tokens,N", 1);
    refused(&csv, &["no column `D`", "loss, run, tokens, N"]);
}

#[test]
fn a_non_positive_value_is_refused() {
    let mut lines: Vec<String> = chinchilla_csv(36).lines().map(String::from).collect();
    lines[3] = lines[3].replacen(|c: char| c.is_ascii_digit(), "-", 1);
    let csv = lines.join("\n");
    refused(&csv, &["line 4", "data row 3", "column `loss`", "> 0"]);
    let csv = chinchilla_csv(36).replacen(",1e9,", ",0,", 1);
    refused(&csv, &["line 2", "column `D`", "> 0"]);
}

#[test]
fn a_non_numeric_value_is_refused() {
    let csv = chinchilla_csv(36).replacen(",10000000\n", ",ten million\n", 1);
    refused(&csv, &["column `N`", "'ten million' is not a number"]);
}

#[test]
fn too_few_rows_are_refused() {
    refused(&chinchilla_csv(5), &["5 data rows", "at least 6 rows"]);
}

#[test]
fn out_naming_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("runs.csv");
    std::fs::write(&table, chinchilla_csv(36)).unwrap();
    let o = ceiling(&[
        "fit",
        "--table",
        table.to_str().unwrap(),
        "--out",
        table.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("is a file"));
}
