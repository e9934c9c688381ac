//! Autotuning. The first time a kernel runs with its `Auto` choice on a (adapter, shape
//! class, precision), the candidate plans are timed on the real inputs and the fastest is
//! kept in a versioned cache file per adapter, driver and backend, so lavapipe and each real
//! GPU get their own best. `Off` uses the built-in rules, `Cached` uses the cache where it
//! has an entry (else the rules), `Full` also tunes what the cache lacks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use web_time::Instant;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{HostError, Result};

/// Bumped whenever a kernel or its candidates change meaning: old caches are then ignored.
const CACHE_VERSION: u32 = 1;
/// Timed runs per candidate after one warm-up run; the median counts.
const TIMED_RUNS: usize = 3;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Autotune {
    /// The built-in rules, never a cache (the default of the library and the tests).
    #[default]
    Off,
    /// The cache where it has an entry, the rules elsewhere; never times anything.
    Cached,
    /// As `Cached`, and a shape class the cache lacks is timed and added.
    Full,
}

impl std::str::FromStr for Autotune {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "off" => Ok(Autotune::Off),
            "cached" => Ok(Autotune::Cached),
            "full" => Ok(Autotune::Full),
            _ => Err(format!("--autotune {s}: use off, cached or full")),
        }
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct CacheFile {
    version: u32,
    adapter: String,
    /// Shape class -> the winning kernel choice, as JSON.
    entries: BTreeMap<String, serde_json::Value>,
}

/// The tuning state of one device.
#[derive(Default)]
pub struct Tuner {
    mode: Autotune,
    /// The cache file; None while off.
    path: Option<PathBuf>,
    adapter: String,
    entries: Mutex<BTreeMap<String, serde_json::Value>>,
    /// Every plan a kernel launched with, by shape class (for results and reports).
    used: Mutex<BTreeMap<String, String>>,
}

/// The folder of the cache: CEILING_CACHE_DIR, else $XDG_CACHE_HOME/ceiling, else
/// ~/.cache/ceiling.
pub fn cache_dir() -> Option<PathBuf> {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("CEILING_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("ceiling")))
        .or_else(|| env("HOME").map(|d| d.join(".cache").join("ceiling")))
}

fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl Tuner {
    /// A tuner in `mode` for the adapter described by `adapter` (name, driver, backend),
    /// reading its cache file if there is one. A cache of another version or adapter, or
    /// one that does not parse, is ignored (and rewritten when something is tuned).
    pub fn new(mode: Autotune, adapter: &str) -> Tuner {
        // A browser can neither block to time candidates nor keep a cache file.
        let mode = if cfg!(target_arch = "wasm32") {
            Autotune::Off
        } else {
            mode
        };
        match cache_dir() {
            Some(dir) => Tuner::in_dir(mode, adapter, &dir),
            None => Tuner::in_dir(mode, adapter, Path::new(".ceiling-cache")),
        }
    }

    /// The same with the cache in `dir`.
    pub fn in_dir(mode: Autotune, adapter: &str, dir: &Path) -> Tuner {
        let path = (mode != Autotune::Off)
            .then(|| dir.join(format!("autotune-v{CACHE_VERSION}-{}.json", slug(adapter))));
        let entries = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<CacheFile>(&b).ok())
            .filter(|f| f.version == CACHE_VERSION && f.adapter == adapter)
            .map(|f| f.entries)
            .unwrap_or_default();
        Tuner {
            mode,
            path,
            adapter: adapter.to_string(),
            entries: Mutex::new(entries),
            used: Mutex::default(),
        }
    }

    pub fn mode(&self) -> Autotune {
        self.mode
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Notes the plan a kernel ran for a shape class.
    pub(crate) fn record(&self, class: &str, plan: String) {
        self.used.lock().unwrap().insert(class.to_string(), plan);
    }

    /// Every (shape class, plan) launched since the last call, and forgets them.
    pub fn take_plans_used(&self) -> BTreeMap<String, String> {
        std::mem::take(&mut *self.used.lock().unwrap())
    }

    /// The kernel choice for `class`: the cached winner, or (in `Full` mode) the fastest of
    /// `candidates`, each run by `run` (which must synchronise: it is timed). None when
    /// off, or cached-only without an entry, or when no candidate ran.
    pub(crate) fn choose<K>(
        &self,
        class: &str,
        candidates: &[K],
        mut run: impl FnMut(K) -> Result<()>,
    ) -> Result<Option<K>>
    where
        K: Copy + Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        if self.mode == Autotune::Off {
            return Ok(None);
        }
        if candidates.len() <= 1 {
            // Nothing to choose between: no timing, no cache entry.
            return Ok(candidates.first().copied());
        }
        if let Some(v) = self.entries.lock().unwrap().get(class) {
            if let Ok(k) = serde_json::from_value::<K>(v.clone()) {
                if candidates.contains(&k) {
                    return Ok(Some(k));
                }
            }
        }
        if self.mode == Autotune::Cached {
            return Ok(None);
        }
        let mut best: Option<(f64, K)> = None;
        for &k in candidates {
            // A candidate that cannot run here (limits, features) is left out.
            if run(k).is_err() {
                continue;
            }
            let mut times = Vec::with_capacity(TIMED_RUNS);
            for _ in 0..TIMED_RUNS {
                let t = Instant::now();
                run(k)?;
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let median = times[TIMED_RUNS / 2];
            if best.is_none_or(|(b, _)| median < b) {
                best = Some((median, k));
            }
        }
        let Some((seconds, winner)) = best else {
            return Ok(None);
        };
        eprintln!(
            "autotune: {class}: {winner:?} in {:.2} ms, fastest of {} candidates (cached)",
            seconds * 1e3,
            candidates.len()
        );
        let value = serde_json::to_value(winner).map_err(|e| HostError::Gpu(e.to_string()))?;
        self.entries
            .lock()
            .unwrap()
            .insert(class.to_string(), value);
        self.save()?;
        Ok(Some(winner))
    }

    /// Writes the cache atomically (a temporary file renamed over the old one).
    fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let file = CacheFile {
            version: CACHE_VERSION,
            adapter: self.adapter.clone(),
            entries: self.entries.lock().unwrap().clone(),
        };
        let io = |source: std::io::Error| HostError::AutotuneCache {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| HostError::Gpu(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// A power-of-two bucket of a size, for shape classes: sizes within a factor of two share
/// a tuned plan.
pub(crate) fn bucket(x: usize) -> usize {
    x.max(1).next_power_of_two()
}
