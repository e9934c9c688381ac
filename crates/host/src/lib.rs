//! `ceiling-host`: the wgpu side of ceiling. Adapter and device, tensors, kernel launchers.

pub mod autotune;
pub mod cases;
pub mod emergence;
pub mod error;
pub mod gpu;
pub mod kernels;
pub mod loss;
pub mod sweep;
pub mod tensor;
pub mod timing;

pub use autotune::Autotune;
pub use ceiling_core::adapter::AdapterSummary;
pub use ceiling_shaders::Precision;
pub use error::{HostError, Result};
pub use gpu::{check_backend_env, list_adapters, AdapterRequest, Gpu};
pub use tensor::Tensor;
pub mod model;
