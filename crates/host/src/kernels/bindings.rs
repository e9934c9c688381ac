//! What each kernel binds, declared once: a binding table per entry point (binding index,
//! WGSL name, kind) and a `#[repr(C)]` params struct named like its WGSL struct. The pipeline
//! layout ([`Gpu::pipeline`]) and every bind group are made from these tables, and
//! `crates/host/tests/bindings.rs` checks them against naga's reflection of every shader
//! variant: the same bindings and kinds per entry point, and params structs of the same
//! name, size, members and offsets.
//!
//! A table lists the params uniform first (binding 0), then the storage buffers in the order
//! a launcher passes them to [`Launch::dispatch`]. Each launcher file declares the tables
//! of its kernels (a `Binding` const per WGSL global, shared by the entry points of a file).

use std::sync::Arc;

use ceiling_shaders::{Family, Variant};

use crate::error::{HostError, Result};
use crate::gpu::Gpu;

/// How a binding is declared in WGSL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// `var<uniform>`: a kernel's params.
    Uniform,
    /// `var<storage, read>`.
    ReadOnly,
    /// `var<storage, read_write>`.
    ReadWrite,
}

/// One binding of group 0: its index, the name of its WGSL global, and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Binding {
    pub index: u32,
    pub name: &'static str,
    pub access: Access,
}

impl Binding {
    pub const fn uniform(index: u32, name: &'static str) -> Binding {
        Binding {
            index,
            name,
            access: Access::Uniform,
        }
    }

    pub const fn read(index: u32, name: &'static str) -> Binding {
        Binding {
            index,
            name,
            access: Access::ReadOnly,
        }
    }

    pub const fn read_write(index: u32, name: &'static str) -> Binding {
        Binding {
            index,
            name,
            access: Access::ReadWrite,
        }
    }

    /// The layout entry of this binding; a uniform's minimum size is its params struct's.
    fn layout_entry(&self, params_size: usize) -> wgpu::BindGroupLayoutEntry {
        let ty = match self.access {
            Access::Uniform => wgpu::BufferBindingType::Uniform,
            Access::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
            Access::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
        };
        let min_binding_size = match self.access {
            Access::Uniform => std::num::NonZeroU64::new(params_size as u64),
            _ => None,
        };
        wgpu::BindGroupLayoutEntry {
            binding: self.index,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty,
                has_dynamic_offset: false,
                min_binding_size,
            },
            count: None,
        }
    }
}

/// One member of a params struct: name, byte offset, and scalar type ("u32", "f32").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub offset: usize,
    pub ty: &'static str,
}

/// The layout of a params struct, as Rust lays it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructLayout {
    /// The struct's name, the same in Rust and WGSL.
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [Field],
}

/// A kernel's uniform parameters: the Rust twin of a WGSL struct (see [`params!`]).
pub trait Params: bytemuck::Pod {
    const LAYOUT: StructLayout;
}

/// Declares a `#[repr(C)]` Pod params struct and its [`Params`] layout (name, size, and
/// each field's name, offset and type), for the test against naga's reflection.
macro_rules! params {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$fmeta:meta])* pub $field:ident: $ty:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::kernels::bindings::Params for $name {
            const LAYOUT: $crate::kernels::bindings::StructLayout =
                $crate::kernels::bindings::StructLayout {
                    name: stringify!($name),
                    size: ::std::mem::size_of::<$name>(),
                    fields: &[$($crate::kernels::bindings::Field {
                        name: stringify!($field),
                        offset: ::std::mem::offset_of!($name, $field),
                        ty: stringify!($ty),
                    },)*],
                };
        }
    };
}
pub(crate) use params;

/// One entry point's interface: the WGSL files it is in, its params struct and its bindings.
#[derive(Debug)]
pub struct Kernel {
    /// The kernel families (WGSL files) that define this entry point with these bindings.
    pub families: &'static [Family],
    pub entry: &'static str,
    pub params: StructLayout,
    /// The params uniform at binding 0, then the storage buffers in launch order.
    pub bindings: &'static [Binding],
}

/// Every kernel's table, for [`Gpu::pipeline`] to find and the reflection test to check.
pub static KERNELS: &[&Kernel] = &[
    &super::matmul::MATMUL,
    &super::matmul::MATMUL_VEC4,
    &super::attention::ATTENTION,
    &super::softmax::SOFTMAX,
    &super::norm::LAYER_NORM,
    &super::norm::RMS_NORM,
    &super::reduce::COLUMN_MOMENTS,
    &super::rope::ROPE,
    &super::lm_head::LM_HEAD_PARTIALS,
    &super::lm_head::LM_HEAD_ROWS,
    &super::elementwise::SPLIT_HEADS,
    &super::elementwise::MERGE_HEADS,
    &super::elementwise::EMBED,
    &super::elementwise::ADD,
    &super::elementwise::MUL,
    &super::elementwise::GATHER_ROWS,
    &super::elementwise::GATHER_STATS,
];

/// The kernel of `family` with entry point `entry`, if a table declares it.
pub fn find(family: Family, entry: &str) -> Option<&'static Kernel> {
    KERNELS
        .iter()
        .copied()
        .find(|k| k.entry == entry && k.families.contains(&family))
}

impl Kernel {
    /// The bind group layout entries of this kernel, in table order.
    pub(crate) fn layout_entries(&self) -> Vec<wgpu::BindGroupLayoutEntry> {
        self.bindings
            .iter()
            .map(|b| b.layout_entry(self.params.size))
            .collect()
    }

    /// The cached pipeline of this kernel in `variant` with override `constants`.
    pub(crate) fn pipeline(
        &'static self,
        gpu: &Gpu,
        variant: Variant,
        constants: &[(&'static str, u32)],
    ) -> Result<Launch> {
        if !self.families.contains(&variant.family) {
            return Err(HostError::Gpu(format!(
                "kernel {} is not in {}",
                self.entry,
                variant.label()
            )));
        }
        Ok(Launch {
            kernel: self,
            pipeline: gpu.pipeline(variant, self.entry, constants)?,
        })
    }
}

/// A kernel's pipeline, dispatched with its params struct and buffers in table order.
pub(crate) struct Launch {
    kernel: &'static Kernel,
    pipeline: Arc<wgpu::ComputePipeline>,
}

impl Launch {
    /// Records one dispatch: `params` fills binding 0, `buffers` the table's storage
    /// bindings in order (as many as the table has).
    pub(crate) fn dispatch<P: Params>(
        &self,
        gpu: &Gpu,
        params: &P,
        buffers: &[wgpu::BufferBinding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let k = self.kernel;
        if P::LAYOUT.name != k.params.name {
            return Err(HostError::Gpu(format!(
                "kernel {} takes {}, not {}",
                k.entry,
                k.params.name,
                P::LAYOUT.name
            )));
        }
        let storage = &k.bindings[1..];
        if buffers.len() != storage.len() {
            let names: Vec<&str> = storage.iter().map(|b| b.name).collect();
            return Err(HostError::Gpu(format!(
                "kernel {} binds {} buffers ({}), given {}",
                k.entry,
                storage.len(),
                names.join(", "),
                buffers.len()
            )));
        }
        let entries: Vec<(u32, wgpu::BufferBinding<'_>)> = storage
            .iter()
            .zip(buffers)
            .map(|(b, buffer)| (b.index, buffer.clone()))
            .collect();
        gpu.dispatch(&self.pipeline, bytemuck::bytes_of(params), &entries, groups)
    }
}
