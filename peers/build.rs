//! Records the versions of the peers (burn, CubeCL, wgpu, gemm) from Cargo.lock, so that the
//! result file names exactly what was measured.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    for (package, var) in [
        ("burn", "PEERS_BURN_VERSION"),
        ("cubecl", "PEERS_CUBECL_VERSION"),
        ("wgpu", "PEERS_WGPU_VERSION"),
        ("gemm", "PEERS_GEMM_VERSION"),
    ] {
        println!("cargo:rustc-env={var}={}", versions(&lock, package));
    }
}

/// Every locked version of `package`, joined by '+' ("?" if the lock file has none).
fn versions(lock: &str, package: &str) -> String {
    let mut found = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{package}\"") {
            if let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|v| v.strip_suffix('"'))
            {
                found.push(v.to_string());
            }
        }
    }
    if found.is_empty() {
        "?".into()
    } else {
        found.join("+")
    }
}
