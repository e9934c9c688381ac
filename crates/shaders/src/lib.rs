//! `ceiling-shaders`: the WGSL kernels of `shaders/`, embedded, with their variants and their
//! naga validation. No wgpu device here: the host crate turns a [`Variant`] into a pipeline.
//!
//! A kernel file is written against an element type `T`; a variant prepends the precision
//! prelude (`alias T = f32;`, or `enable f16; alias T = f16;`) and `common.wgsl`. Tile and
//! workgroup sizes are WGSL `override` constants, set when the pipeline is created.

use std::fmt;

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const ATTENTION_COMMON: &str = include_str!("../../../shaders/attention_common.wgsl");

/// Storage precision of a kernel's tensors. Arithmetic is always f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    F32,
    F16,
}

impl Precision {
    pub const ALL: [Precision; 2] = [Precision::F32, Precision::F16];

    /// Bytes per stored element.
    pub fn size(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }

    fn prelude(self) -> &'static str {
        match self {
            Precision::F32 => "alias T = f32;\nalias T4 = vec4<f32>;\n",
            Precision::F16 => "enable f16;\nalias T = f16;\nalias T4 = vec4<f16>;\n",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        })
    }
}

/// A kernel family: one WGSL file, one or more entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Matmul,
    /// Register-tiled matmul on vec4 loads and stores (k and n multiples of 4).
    MatmulVec4,
    Norm,
    Softmax,
    Attention,
    /// Attention with one query row per invocation, whole dot products, no reductions.
    AttentionRows,
    /// Attention with subgroup reductions; needs the adapter's subgroup feature.
    AttentionSubgroup,
    Rope,
    Elementwise,
    Reduce,
}

impl Family {
    pub const ALL: [Family; 10] = [
        Family::Matmul,
        Family::MatmulVec4,
        Family::Norm,
        Family::Softmax,
        Family::Attention,
        Family::AttentionRows,
        Family::AttentionSubgroup,
        Family::Rope,
        Family::Elementwise,
        Family::Reduce,
    ];

    pub fn file_name(self) -> &'static str {
        match self {
            Family::Matmul => "matmul.wgsl",
            Family::MatmulVec4 => "matmul_vec4.wgsl",
            Family::Norm => "norm.wgsl",
            Family::Softmax => "softmax.wgsl",
            Family::Attention => "attention.wgsl",
            Family::AttentionRows => "attention_rows.wgsl",
            Family::AttentionSubgroup => "attention_subgroup.wgsl",
            Family::Rope => "rope.wgsl",
            Family::Elementwise => "elementwise.wgsl",
            Family::Reduce => "reduce.wgsl",
        }
    }

    fn body(self) -> &'static str {
        match self {
            Family::Matmul => include_str!("../../../shaders/matmul.wgsl"),
            Family::MatmulVec4 => include_str!("../../../shaders/matmul_vec4.wgsl"),
            Family::Norm => include_str!("../../../shaders/norm.wgsl"),
            Family::Softmax => include_str!("../../../shaders/softmax.wgsl"),
            Family::Attention => include_str!("../../../shaders/attention.wgsl"),
            Family::AttentionRows => include_str!("../../../shaders/attention_rows.wgsl"),
            Family::AttentionSubgroup => include_str!("../../../shaders/attention_subgroup.wgsl"),
            Family::Rope => include_str!("../../../shaders/rope.wgsl"),
            Family::Elementwise => include_str!("../../../shaders/elementwise.wgsl"),
            Family::Reduce => include_str!("../../../shaders/reduce.wgsl"),
        }
    }

    /// WGSL shared by the variants of one kernel, prepended to the family's file.
    fn shared(self) -> &'static str {
        match self {
            Family::Attention | Family::AttentionRows | Family::AttentionSubgroup => {
                ATTENTION_COMMON
            }
            _ => "",
        }
    }

    /// Whether the family uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Family::AttentionSubgroup)
    }
}

/// One compiled form of a kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub family: Family,
    pub precision: Precision,
}

impl Variant {
    pub fn new(family: Family, precision: Precision) -> Self {
        Self { family, precision }
    }

    /// Every variant the suite ships.
    pub fn all() -> impl Iterator<Item = Variant> {
        Family::ALL
            .into_iter()
            .flat_map(|f| Precision::ALL.into_iter().map(move |p| Variant::new(f, p)))
    }

    /// The complete WGSL source of this variant.
    pub fn source(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}",
            self.precision.prelude(),
            COMMON,
            self.family.shared(),
            self.family.body()
        )
    }

    pub fn label(&self) -> String {
        format!("{:?}/{}", self.family, self.precision)
    }

    /// Parses and validates the WGSL with naga, as wgpu would, with the capabilities
    /// this variant needs. Override constants keep their defaults here.
    pub fn validate(&self) -> Result<naga::Module, ShaderError> {
        let source = self.source();
        let module = naga::front::wgsl::parse_str(&source).map_err(|e| ShaderError {
            variant: self.label(),
            message: e.emit_to_string(&source),
        })?;
        let mut caps = naga::valid::Capabilities::empty();
        if self.precision == Precision::F16 {
            caps |= naga::valid::Capabilities::SHADER_FLOAT16;
        }
        if self.family.needs_subgroups() {
            caps |= naga::valid::Capabilities::SUBGROUP;
        }
        let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
            .validate(&module)
            .map_err(|e| ShaderError {
                variant: self.label(),
                message: e.emit_to_string(&source),
            })?;
        // Resolve overrides with their defaults, as a pipeline without constants would.
        naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            None,
            &Default::default(),
        )
        .map_err(|e| ShaderError {
            variant: self.label(),
            message: format!("{e}"),
        })?;
        Ok(module)
    }
}

/// A WGSL variant that naga rejected.
#[derive(Debug, thiserror::Error)]
#[error("WGSL variant {variant} is invalid:\n{message}")]
pub struct ShaderError {
    pub variant: String,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant parses and validates, with its overrides resolved to their defaults.
    #[test]
    fn every_variant_validates_with_naga() {
        let mut failures = Vec::new();
        for v in Variant::all() {
            if let Err(e) = v.validate() {
                failures.push(e.to_string());
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    /// Every variant also translates to SPIR-V (what wgpu hands Vulkan): naga's validator
    /// accepted WGSL whose SPIR-V writer then panicked (a pointer into an array element
    /// passed to a function), which only a real pipeline showed.
    #[test]
    fn every_variant_translates_to_spirv() {
        for v in Variant::all() {
            let source = v.source();
            let module = naga::front::wgsl::parse_str(&source).unwrap();
            let mut caps = naga::valid::Capabilities::empty();
            if v.precision == Precision::F16 {
                caps |= naga::valid::Capabilities::SHADER_FLOAT16;
            }
            if v.family.needs_subgroups() {
                caps |= naga::valid::Capabilities::SUBGROUP;
            }
            let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap();
            let (module, info) = naga::back::pipeline_constants::process_overrides(
                &module,
                &info,
                None,
                &Default::default(),
            )
            .unwrap();
            let options = naga::back::spv::Options {
                lang_version: (1, 3),
                ..Default::default()
            };
            naga::back::spv::write_vec(&module, &info, &options, None)
                .unwrap_or_else(|e| panic!("{}: {e}", v.label()));
        }
    }

    #[test]
    fn broken_wgsl_is_reported_with_the_variant() {
        let v = Variant::new(Family::Matmul, Precision::F16);
        let source = v.source().replace("fn matmul(", "fn matmul(oops");
        assert!(naga::front::wgsl::parse_str(&source).is_err());
    }
}
