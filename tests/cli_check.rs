//! `ceiling check`: the registered kernel cases on the adapter, with JUnit XML and the JSON
//! that `ceiling report` tabulates.

mod common;

use common::*;

#[test]
fn check_writes_junit_and_json_that_report_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (junit, json) = (dir.path().join("check.xml"), dir.path().join("check.json"));
    let out = run_ceiling(&[
        "check",
        "--kernels",
        "rms_norm",
        "--seed",
        "5",
        "--junit",
        junit.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One line per case and precision, each with its error and tolerance.
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("ok ")).collect();
    assert!(lines.len() >= 6, "{stdout}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("rms_norm/") && l.contains(" < ")),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"failures="0""#) && xml.contains("<testsuite name=\"rms_norm\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase ").count(), lines.len(), "{xml}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "ceiling-check/1");
    assert_eq!(v["seed"], 5);
    assert_eq!(v["results"].as_array().unwrap().len(), lines.len());

    let report = dir.path().join("report");
    let out = run_ceiling(&[
        "report",
        json.to_str().unwrap(),
        "--out",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let md = std::fs::read_to_string(report.join("checks.md")).unwrap();
    assert!(md.contains("rms_norm/") && md.contains("0 of"), "{md}");
    assert!(report.join("checks.csv").is_file());
}

#[test]
fn check_lists_cases_and_refuses_an_unknown_pattern() {
    let out = run_ceiling(&["check", "--kernels", "attention/*causal", "--list"]);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().count() >= 3, "{stdout}");
    assert!(
        stdout
            .lines()
            .all(|l| l.starts_with("attention/") && l.contains("q [")),
        "{stdout}"
    );
    let out = run_ceiling(&["check", "--kernels", "no-such-kernel"]);
    assert_refused(&out, &["no case matches", "matmul", "lm_head"]);
}
