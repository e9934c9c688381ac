//! The description of a GPU adapter that every result file carries (run.json, summary.json,
//! bench reports), so that results from different GPUs can be told apart and compared.
//! `ceiling-host` fills it in from wgpu's adapter info.

use serde::{Deserialize, Serialize};

/// Everything a result file needs to say which adapter produced it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: DeviceType,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    pub features: Vec<String>,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
}

impl AdapterSummary {
    /// Whether the adapter runs on the CPU (lavapipe, llvmpipe, WARP, SwiftShader).
    pub fn is_cpu(&self) -> bool {
        self.device_type == DeviceType::Cpu
    }
}

/// What kind of device an adapter is: wgpu's `DeviceType`, written in result files under
/// wgpu's names (`"DiscreteGpu"`, `"Cpu"`, ...), as files written before this type read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeviceType {
    /// Not one of the others (or not reported).
    Other,
    IntegratedGpu,
    DiscreteGpu,
    VirtualGpu,
    /// A software rasteriser on the CPU.
    Cpu,
}

impl DeviceType {
    /// The name in result files and in `ceiling info`.
    pub fn name(self) -> &'static str {
        match self {
            DeviceType::Other => "Other",
            DeviceType::IntegratedGpu => "IntegratedGpu",
            DeviceType::DiscreteGpu => "DiscreteGpu",
            DeviceType::VirtualGpu => "VirtualGpu",
            DeviceType::Cpu => "Cpu",
        }
    }
}

impl std::fmt::Display for DeviceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Result files hold wgpu's names; each reads back as its type and is written the same.
    #[test]
    fn device_types_read_and_write_wgpu_names() {
        for t in [
            DeviceType::Other,
            DeviceType::IntegratedGpu,
            DeviceType::DiscreteGpu,
            DeviceType::VirtualGpu,
            DeviceType::Cpu,
        ] {
            let json = format!("\"{}\"", t.name());
            assert_eq!(serde_json::to_string(&t).unwrap(), json);
            assert_eq!(serde_json::from_str::<DeviceType>(&json).unwrap(), t);
            assert_eq!(t.to_string(), t.name());
        }
        assert!(serde_json::from_str::<DeviceType>("\"Gpu\"").is_err());
    }
}
