//! `cargo xtask web`: the browser page (web/) built from crates/web for wasm32 and served on
//! 127.0.0.1; with `--test`, driven in headless Chromium through WebDriver (chromedriver),
//! its results asserted and handed to `ceiling report`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask web [--test] [--build] [--port N] [--query '?kernels=...']

  (none)   build the page and serve web/ on http://127.0.0.1:8000 (--port N) until stopped;
           open it in any browser with WebGPU
  --build  only build (wasm32 + wasm-bindgen into web/pkg)
  --test   build, serve on a free port and run the page in headless Chromium (installed with
           chromium-driver when missing, as lavapipe is); fails on any check that fails, any
           WGSL variant the browser's compiler refuses, or any error; writes the results to
           target/web-test/ and runs `ceiling report` over them
  --query  URL options for the page (--test and serve), e.g. '?kernels=matmul&phases=checks'";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The page's options in `cargo xtask test`: every phase and kernel, attention (checks and
/// benches) up to head_dim 64 as in the GL run: on SwiftShader the larger head dims, each a
/// kernel of its own to compile, took 20 to 60 s each; `cargo xtask web --test` runs them all.
pub const TEST_QUERY: &str = "?max_head_dim=64";

/// How long the page may take in --test (a full run took 7.5 minutes on SwiftShader, 2 cores).
const PAGE_BUDGET: Duration = Duration::from_secs(25 * 60);

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let (mut test, mut build_only, mut port, mut query) = (false, false, 8000u16, String::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--test" => test = true,
            "--build" => build_only = true,
            "--port" => {
                port = it
                    .next()
                    .and_then(|p| p.parse().ok())
                    .context("--port takes a port number")?
            }
            "--query" => query = it.next().context("--query takes URL options")?.clone(),
            _ => bail!("{USAGE}"),
        }
    }
    build(root)?;
    if build_only {
        return Ok(());
    }
    if test {
        return browser_test(root, &query);
    }
    let server = Server::start(&root.join("web"), port)?;
    println!(
        "serving the page on http://127.0.0.1:{}/index.html{query} (Ctrl-C stops)",
        server.port
    );
    server.thread.join().ok();
    Ok(())
}

/// Builds crates/web for wasm32 and binds it into web/pkg (the wasm32 target and a
/// wasm-bindgen CLI of the lockfile's version are installed when missing).
pub fn build(root: &Path) -> Result<()> {
    ensure_wasm_target()?;
    ensure_wasm_bindgen(root)?;
    super::cargo(
        &["build", "-p", "ceiling-web", "--target", WASM_TARGET],
        &[],
    )?;
    let wasm = target_dir(root)
        .join(WASM_TARGET)
        .join("debug/ceiling_web.wasm");
    let status = Command::new("wasm-bindgen")
        .args(["--target", "web", "--no-typescript", "--out-dir"])
        .arg(root.join("web/pkg"))
        .arg(&wasm)
        .status()
        .context("starting wasm-bindgen")?;
    ensure!(status.success(), "wasm-bindgen {} failed", wasm.display());
    Ok(())
}

/// Clippy of the browser build (crates/web, and the host crate's async form), which the
/// native clippy never sees.
pub fn clippy() -> Result<()> {
    ensure_wasm_target()?;
    super::cargo(
        &[
            "clippy",
            "-p",
            "ceiling-web",
            "-p",
            "ceiling-host",
            "--target",
            WASM_TARGET,
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )
}

/// Where cargo builds: CARGO_TARGET_DIR, else target/ in the repository.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn ensure_wasm_target() -> Result<()> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(WASM_TARGET).exists() {
        return Ok(());
    }
    eprintln!("xtask: adding the {WASM_TARGET} target: rustup target add {WASM_TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", WASM_TARGET])
        .status()
        .with_context(|| format!("the page needs `rustup target add {WASM_TARGET}`"))?;
    ensure!(status.success(), "`rustup target add {WASM_TARGET}` failed");
    Ok(())
}

/// The wasm-bindgen CLI must be the version of the wasm-bindgen crate in Cargo.lock.
fn ensure_wasm_bindgen(root: &Path) -> Result<()> {
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).context("reading Cargo.lock")?;
    let version = lock
        .split("[[package]]")
        .find_map(|p| {
            p.contains("\nname = \"wasm-bindgen\"\n")
                .then(|| p.split("version = \"").nth(1)?.split('"').next())
                .flatten()
        })
        .context("Cargo.lock has no wasm-bindgen")?
        .to_string();
    let installed = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if installed != format!("wasm-bindgen {version}") {
        eprintln!("xtask: installing wasm-bindgen-cli {version} (found: {installed:?})");
        // Not --locked: the CLI's own lockfile names a webpki-roots that crates.io yanked.
        // Without TLS (only its test runner downloads anything): 2m45s on 2 cores instead of
        // about 5 minutes.
        super::cargo(
            &[
                "install",
                "wasm-bindgen-cli",
                "--version",
                &version,
                "--no-default-features",
            ],
            &[],
        )?;
    }
    Ok(())
}

/// A static file server of one folder on 127.0.0.1, on its own thread.
struct Server {
    port: u16,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    fn start(dir: &Path, port: u16) -> Result<Server> {
        let server = tiny_http::Server::http(("127.0.0.1", port))
            .map_err(|e| anyhow::anyhow!("serving on 127.0.0.1:{port}: {e}"))?;
        let port = server
            .server_addr()
            .to_ip()
            .context("the server has no IP address")?
            .port();
        let dir = dir.to_path_buf();
        let thread = std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let _ = serve(&dir, request);
            }
        });
        Ok(Server { port, thread })
    }
}

fn serve(dir: &Path, request: tiny_http::Request) -> std::io::Result<()> {
    let path = request.url().split(['?', '#']).next().unwrap_or("/");
    let path = if path == "/" { "/index.html" } else { path };
    // Only plain names below the folder.
    let file = (!path.contains(".."))
        .then(|| dir.join(path.trim_start_matches('/')))
        .filter(|f| f.is_file());
    let Some(file) = file else {
        return request
            .respond(tiny_http::Response::from_string("not found").with_status_code(404));
    };
    let mime = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let header = tiny_http::Header::from_bytes("Content-Type", mime).expect("a valid header");
    request.respond(tiny_http::Response::from_file(std::fs::File::open(file)?).with_header(header))
}

/// Kills the child (chromedriver) when dropped, whatever happened.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A WebDriver session on chromedriver.
struct WebDriver {
    base: String,
    session: String,
}

impl WebDriver {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        call(
            method,
            &format!("{}/session/{}{path}", self.base, self.session),
            body,
        )
    }

    fn script(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }
}

impl Drop for WebDriver {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
    }
}

/// One WebDriver call: the `value` of its JSON answer, or the error it names.
fn call(method: &str, url: &str, body: Option<Value>) -> Result<Value> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .new_agent();
    let mut response = match body {
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b.to_string())?,
        None if method == "DELETE" => agent.delete(url).call()?,
        None => agent.get(url).call()?,
    };
    let text = response.body_mut().read_to_string()?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("WebDriver {method} {url} answered {text:?}"))?;
    let value = value.get("value").cloned().unwrap_or(Value::Null);
    if let Some(error) = value.get("error") {
        bail!(
            "WebDriver {method} {url}: {error}: {}",
            value.get("message").unwrap_or(&Value::Null)
        );
    }
    Ok(value)
}

/// Debian's Chromium and its driver, installed like lavapipe when missing.
fn ensure_chromium() -> Result<()> {
    if Path::new("/usr/bin/chromium").exists() && Path::new("/usr/bin/chromedriver").exists() {
        return Ok(());
    }
    eprintln!("xtask: installing headless Chromium for the browser test: apt-get install -y chromium chromium-driver");
    super::apt_install(&["chromium", "chromium-driver"]).context(
        "the browser test needs Chromium and ChromeDriver: `sudo apt-get install -y chromium \
         chromium-driver` (Debian/Ubuntu)",
    )
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Runs the page in headless Chromium (WebGPU on its built-in SwiftShader where there is no
/// GPU) and asserts what it reports; writes its JSON files and reports them.
pub fn browser_test(root: &Path, query: &str) -> Result<()> {
    ensure_chromium()?;
    let server = Server::start(&root.join("web"), 0)?;
    let driver_port = free_port()?;
    let _driver = Killed(
        Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?,
    );
    let base = format!("http://127.0.0.1:{driver_port}");
    let started = Instant::now();
    while call("GET", &format!("{base}/status"), None)
        .map(|v| v["ready"] != json!(true))
        .unwrap_or(true)
    {
        ensure!(
            started.elapsed() < Duration::from_secs(30),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let profile = tempdir(root)?;
    // As root Chromium needs --no-sandbox; the network flags keep it from calling out.
    let args = [
        "--headless=new",
        "--no-sandbox",
        "--enable-unsafe-webgpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        &format!("--user-data-dir={}", profile.display()),
    ];
    let session = call(
        "POST",
        &format!("{base}/session"),
        Some(json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        }}})),
    )?;
    let driver = WebDriver {
        base,
        session: session["sessionId"]
            .as_str()
            .context("WebDriver gave no session id")?
            .to_string(),
    };
    let url = format!("http://127.0.0.1:{}/index.html{query}", server.port);
    eprintln!("xtask: running {url} in headless Chromium");
    driver.call("POST", "/url", Some(json!({ "url": url })))?;
    let mut last = String::new();
    let state = loop {
        let v = driver.script(
            "return [document.body.dataset.state, document.getElementById('status').textContent]",
        )?;
        let (state, status) = (v[0].as_str().unwrap_or(""), v[1].as_str().unwrap_or(""));
        if status != last {
            eprintln!("  [{:>4.0} s] {status}", started.elapsed().as_secs_f64());
            last = status.to_string();
        }
        if state == "done" || state == "failed" {
            break state.to_string();
        }
        ensure!(
            started.elapsed() < PAGE_BUDGET,
            "the page did not finish in {} s (last: {last})",
            PAGE_BUDGET.as_secs()
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let page: Value = serde_json::from_str(
        driver
            .script("return JSON.stringify(window.ceiling)")?
            .as_str()
            .context("the page holds no results")?,
    )?;
    drop(driver);
    let out = root.join("target/web-test");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("page.json"), serde_json::to_string_pretty(&page)?)?;
    let errors = page["errors"].as_array().cloned().unwrap_or_default();
    for e in &errors {
        eprintln!("  page error: {}", e.as_str().unwrap_or_default());
    }
    ensure!(state == "done", "the page failed: {errors:?}");
    let summary = assert_results(&page)?;
    // The files the page offers, read by the native `ceiling report`.
    let mut files = vec![];
    for (key, name) in [
        ("check", "ceiling-check.json"),
        ("bench", "ceiling-bench.json"),
        ("sweep", "summary.json"),
    ] {
        if !page[key].is_null() {
            let path = out.join(name);
            std::fs::write(&path, serde_json::to_string_pretty(&page[key])?)?;
            if key != "sweep" {
                files.push(path);
            }
        }
    }
    if !files.is_empty() {
        // The binary `cargo test --workspace` built, where it exists: `cargo run` of the one
        // package resolves features differently and rebuilt much of the tree (85 s in CI).
        let built = target_dir(root).join("debug/ceiling");
        let mut report = if built.is_file() {
            Command::new(built)
        } else {
            super::cargo_command(&["run", "--quiet", "--bin", "ceiling", "--"])
        };
        report
            .current_dir(root)
            .arg("report")
            .args(&files)
            .arg("--out")
            .arg(out.join("report"));
        let status = report.status().context("starting ceiling report")?;
        ensure!(
            status.success(),
            "`ceiling report` could not read the page's files"
        );
    }
    println!(
        "browser test passed in {:.0} s on {}: {summary}; results in {}",
        started.elapsed().as_secs_f64(),
        page["adapter"]["backend"].as_str().unwrap_or("?"),
        out.display()
    );
    Ok(())
}

/// Asserts the page's results: no error, every check passed, every WGSL variant the
/// adapter can compile compiled; a line that counts them.
fn assert_results(page: &Value) -> Result<String> {
    let errors = page["errors"].as_array().map_or(0, Vec::len);
    ensure!(errors == 0, "the page reported {errors} error(s)");
    let mut said = vec![];
    if let Some(shaders) = page["shaders"].as_object() {
        let count = |k: &str| shaders[k].as_array().map_or(0, Vec::len);
        ensure!(
            count("failed") == 0,
            "WGSL the browser refused: {}",
            shaders["failed"]
        );
        ensure!(
            count("compiled") > 0,
            "the browser compiled no WGSL variant"
        );
        said.push(format!(
            "{} WGSL variants compiled ({} need features it lacks)",
            count("compiled"),
            count("unsupported")
        ));
    }
    if !page["check"].is_null() {
        let check = &page["check"];
        ensure!(
            check["schema"] == "ceiling-check/1",
            "the check report has no schema tag"
        );
        let results = check["results"].as_array().context("no check results")?;
        ensure!(!results.is_empty(), "no check ran");
        let failed = page["failed"].as_u64().unwrap_or(u64::MAX);
        ensure!(failed == 0, "{failed} of {} checks failed", results.len());
        said.push(format!("{} checks passed", results.len()));
    }
    if !page["bench"].is_null() {
        let n = page["bench"]["results"].as_array().map_or(0, Vec::len);
        ensure!(n > 1, "the bench report holds no kernel");
        said.push(format!("{n} bench results"));
    }
    if !page["sweep"].is_null() {
        let n = page["sweep"]["points"].as_array().map_or(0, Vec::len);
        ensure!(n > 2, "the sweep has {n} points");
        said.push(format!("a sweep of {n} lengths"));
    }
    Ok(said.join(", "))
}

/// A fresh folder under target/ for Chromium's profile.
fn tempdir(root: &Path) -> Result<PathBuf> {
    let dir = root
        .join("target/web-test/chromium-profile")
        .join(std::process::id().to_string());
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
