use std::path::PathBuf;

use ceiling_core::files::FileError;
use ceiling_core::kernel::ShapeError;

/// Everything that can go wrong on the GPU side, each with the problem and the fix named.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// No adapter: no driver at all, none on the backends WGPU_BACKEND names, or none with
    /// the requested name; the message says which (see [`crate::gpu::no_adapter`]).
    #[error("{0}")]
    NoAdapter(String),
    #[error("adapter '{adapter}' does not offer {feature}: {fix}")]
    MissingFeature {
        adapter: String,
        feature: &'static str,
        fix: &'static str,
    },
    #[error("{what} needs {need} but the adapter allows at most {max}: {fix}")]
    Limit {
        what: String,
        need: u64,
        max: u64,
        fix: &'static str,
    },
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("{what} contains NaN or infinity at element {index}; kernels take finite inputs only")]
    NonFinite { what: String, index: usize },
    #[error(
        "`{what}` has {value:e} at element {index}, beyond the f16 range (+-65504): store it \
         in f32 (drop --f16, or --precision f32), or scale it into that range"
    )]
    F16Range {
        what: String,
        value: f32,
        index: usize,
    },
    #[error("could not create a device on '{adapter}': {message}")]
    Device { adapter: String, message: String },
    #[error("GPU error: {0}")]
    Gpu(String),
    /// A sweep or model configuration that cannot run; the message names the fix.
    #[error("{0}")]
    Config(String),
    /// Statistics that cannot be formed from the measured values.
    #[error("{0}")]
    Stats(String),
    /// A result file that cannot be read or written: the path and the fix, with the I/O or
    /// JSON error underneath as its source.
    #[error(transparent)]
    File(#[from] FileError),
    /// The autotune cache cannot be written.
    #[error(
        "writing the autotune cache {}: {source} (CEILING_CACHE_DIR moves it; --autotune off \
         skips it)",
        path.display()
    )]
    AutotuneCache {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub type Result<T, E = HostError> = std::result::Result<T, E>;

/// Refuses NaN and infinity in an input before it is uploaded.
pub fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    match data.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(HostError::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}
