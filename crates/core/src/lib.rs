//! `ceiling-core`: everything of ceiling that needs no GPU. Shapes and configs, the f64 CPU
//! reference of every kernel, statistics and fits, the result files of sweeps (configs,
//! points, summaries and their fits) and of benchmarks, and the adapter description they
//! carry.

pub mod adapter;
pub mod bench;
pub mod curve;
pub mod emergence;
pub mod expected;
pub mod files;
pub mod fit;
pub mod kernel;
pub mod memory;
pub mod model;
pub mod nonfinite;
pub mod optimise;
pub mod process;
pub mod reference;
pub mod stats;
pub mod sweep;
pub mod text;
