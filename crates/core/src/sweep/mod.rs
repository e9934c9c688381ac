//! Context-length sweeps without the GPU: what a sweep measures ([`config`]), the weights of
//! the controls' attention layer ([`layer`]), the streaming Poisson bootstrap of V and the SNR
//! ([`bootstrap`]), the result files of a run directory and their schemas ([`results`]), and
//! the summary with its fits and tables ([`summary`]). Running a sweep on an adapter is
//! `ceiling_host::sweep`.

pub mod bootstrap;
pub mod config;
pub mod layer;
pub mod results;
pub mod summary;

pub use bootstrap::PoissonBootstrap;
pub use config::{ConfigError, ModelSpec, Preset, Probe, SweepConfig, TextSpec};
pub use layer::AttentionLayer;
pub use results::{LengthResult, RunHeader, SiteResult};
pub use summary::{build_summary, summarise, Ci, SiteFit, Slope, Summary};
