//! `ceiling-shaders`: the WGSL kernels of `shaders/`, embedded, with their variants and their
//! naga validation. No wgpu device here: the host crate turns a [`Variant`] into a pipeline.
//!
//! A kernel file is written against an element type `T`; a variant prepends the precision
//! prelude (`alias T = f32;`, or `enable f16; alias T = f16;`) and `common.wgsl`. Tile and
//! workgroup sizes are WGSL `override` constants, set when the pipeline is created.

use std::fmt;

const COMMON: &str = include_str!("../../../shaders/common.wgsl");
const ATTENTION_COMMON: &str = include_str!("../../../shaders/attention_common.wgsl");
const MATMUL_TILES: &str = include_str!("../../../shaders/matmul_tiles.wgsl");

/// Storage precision of a kernel's tensors. Arithmetic is always f32. Written and read as
/// "f32" / "f16" (command lines, result files).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
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

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "f16" => Ok(Precision::F16),
            other => Err(format!("precision '{other}': use f32 or f16")),
        }
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
    /// Language-model head: log-sum-exp, entropy, top-1 and target loss per row, over
    /// vocabulary blocks, without storing the logits.
    LmHead,
}

impl Family {
    pub const ALL: [Family; 11] = [
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
        Family::LmHead,
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
            Family::LmHead => "lm_head.wgsl",
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
            Family::LmHead => include_str!("../../../shaders/lm_head.wgsl"),
        }
    }

    /// WGSL shared by the variants of one kernel, prepended to the family's file.
    fn shared(self) -> &'static str {
        match self {
            Family::Attention | Family::AttentionRows | Family::AttentionSubgroup => {
                ATTENTION_COMMON
            }
            Family::MatmulVec4 | Family::LmHead => MATMUL_TILES,
            _ => "",
        }
    }

    /// Whether the family uses subgroup operations.
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Family::AttentionSubgroup)
    }
}

/// The WGSL reader a source is for. One source serves both; they differ only in the
/// extensions a variant must enable first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WgslTarget {
    /// naga 30, which wgpu's native backends use: it takes subgroup builtins from the
    /// device's features and rejects `enable subgroups;`.
    Naga,
    /// The WGSL of the WebGPU spec, as a browser reads it (Tint in Chromium): subgroup
    /// builtins need `enable subgroups;` first.
    WebGpu,
}

impl WgslTarget {
    /// The reader of the build: wgpu's webgpu backend hands WGSL to the browser unchanged.
    pub const fn of_build() -> WgslTarget {
        if cfg!(target_arch = "wasm32") {
            WgslTarget::WebGpu
        } else {
            WgslTarget::Naga
        }
    }
}

/// One compiled form of a kernel family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variant {
    pub family: Family,
    pub precision: Precision,
    /// Rows per invocation and head_dim in vec4s that the rows attention kernel is written
    /// out for (see [`attention_rows`]); None for every other family (and the default
    /// 8 x 16 there).
    pub unroll: Option<(u32, u32)>,
}

/// The rows attention kernel's register tile unless a plan says otherwise: 8 rows of a
/// head_dim 64.
pub const ROWS_DEFAULT_UNROLL: (u32, u32) = (8, 16);

impl Variant {
    pub fn new(family: Family, precision: Precision) -> Self {
        Self {
            family,
            precision,
            unroll: None,
        }
    }

    /// The rows attention kernel for `rows` query rows per invocation and a head_dim of
    /// `hd4` vec4s.
    pub fn attention_rows(precision: Precision, rows: u32, hd4: u32) -> Self {
        Self {
            family: Family::AttentionRows,
            precision,
            unroll: Some((rows, hd4)),
        }
    }

    /// Every variant the suite ships.
    pub fn all() -> impl Iterator<Item = Variant> {
        Family::ALL
            .into_iter()
            .flat_map(|f| Precision::ALL.into_iter().map(move |p| Variant::new(f, p)))
    }

    /// The complete WGSL source of this variant for `target`: the directives that target
    /// needs, then [`Variant::source`].
    pub fn source_for(&self, target: WgslTarget) -> String {
        match target {
            WgslTarget::WebGpu if self.family.needs_subgroups() => {
                format!("enable subgroups;\n{}", self.source())
            }
            _ => self.source(),
        }
    }

    /// The features a device must have enabled for this variant, as WebGPU names them.
    pub fn webgpu_features(&self) -> Vec<&'static str> {
        let mut f = vec![];
        if self.precision == Precision::F16 {
            f.push("shader-f16");
        }
        if self.family.needs_subgroups() {
            f.push("subgroups");
        }
        f
    }

    /// The complete WGSL source of this variant, as naga reads it.
    pub fn source(&self) -> String {
        let body = match self.family {
            Family::AttentionRows => {
                let (rows, hd4) = self.unroll.unwrap_or(ROWS_DEFAULT_UNROLL);
                attention_rows(self.family.body(), rows, hd4)
            }
            _ => self.family.body().to_string(),
        };
        format!(
            "{}\n{}\n{}\n{}",
            self.precision.prelude(),
            COMMON,
            self.family.shared(),
            body
        )
    }

    pub fn label(&self) -> String {
        match self.unroll {
            Some((rows, hd4)) => format!("{:?}/{}/{rows}x{hd4}", self.family, self.precision),
            None => format!("{:?}/{}", self.family, self.precision),
        }
    }

    /// The naga capabilities this variant needs (f16 storage, subgroups).
    pub fn capabilities(&self) -> naga::valid::Capabilities {
        let mut caps = naga::valid::Capabilities::empty();
        if self.precision == Precision::F16 {
            caps |= naga::valid::Capabilities::SHADER_FLOAT16;
        }
        if self.family.needs_subgroups() {
            caps |= naga::valid::Capabilities::SUBGROUP;
        }
        caps
    }

    /// Parses and validates the WGSL with naga, as wgpu would, and returns the module with
    /// its validation info: what reflection needs (the bindings, the params structs' layout
    /// and which globals each entry point uses). Override constants are left unresolved.
    pub fn reflect(&self) -> Result<(naga::Module, naga::valid::ModuleInfo), ShaderError> {
        let source = self.source();
        let module = naga::front::wgsl::parse_str(&source).map_err(|e| ShaderError {
            variant: self.label(),
            message: e.emit_to_string(&source),
        })?;
        let info =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), self.capabilities())
                .validate(&module)
                .map_err(|e| ShaderError {
                    variant: self.label(),
                    message: e.emit_to_string(&source),
                })?;
        Ok((module, info))
    }

    /// Parses and validates the WGSL with naga, as wgpu would, with the capabilities
    /// this variant needs. Override constants keep their defaults here.
    pub fn validate(&self) -> Result<naga::Module, ShaderError> {
        let (module, info) = self.reflect()?;
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

/// Writes out the `//@` lines of attention_rows.wgsl for `rows` query rows per invocation
/// and a head_dim of `hd4` vec4s, and defines R and HD4. `//@ row code` becomes one line per
/// row ({r}), `//@ vec4 code` one per vec4 ({t}, and {d} = 4 t), `//@ row_vec4 code` one per
/// both (rows outer); `//@ for t` ... `//@ end` repeats the lines between per vec4.
pub fn attention_rows(template: &str, rows: u32, hd4: u32) -> String {
    let lines: Vec<&str> = template.lines().collect();
    let mut out = format!("const R: u32 = {rows}u;\nconst HD4: u32 = {hd4}u;\n");
    expand(&lines, rows, hd4, None, &mut out);
    out
}

/// Expands `lines` into `out`; `t` is the vec4 index of an enclosing `//@ for t` block.
fn expand(lines: &[&str], rows: u32, hd4: u32, t: Option<u32>, out: &mut String) {
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(rest) = trimmed.strip_prefix("//@ ") else {
            let text = match t {
                Some(t) => line.replace("{t}", &t.to_string()),
                None => line.to_string(),
            };
            out.push_str(&text);
            out.push('\n');
            continue;
        };
        if rest.trim() == "for t" {
            // The block runs to the matching `//@ end` (blocks do not nest).
            let len = lines[i..]
                .iter()
                .position(|l| l.trim() == "//@ end")
                .expect("attention_rows.wgsl: `//@ for t` without `//@ end`");
            for tv in 0..hd4 {
                expand(&lines[i..i + len], rows, hd4, Some(tv), out);
            }
            i += len + 1;
            continue;
        }
        let (kind, code) = rest.split_once(' ').unwrap_or((rest, ""));
        let emit = |out: &mut String, r: u32, t: u32| {
            let text = code
                .replace("{r}", &r.to_string())
                .replace("{t}", &t.to_string())
                .replace("{d}", &(4 * t).to_string());
            out.push_str(indent);
            out.push_str(&text);
            out.push('\n');
        };
        match (kind, t) {
            ("row", t) => (0..rows).for_each(|r| emit(out, r, t.unwrap_or(0))),
            ("vec4", None) => (0..hd4).for_each(|t| emit(out, 0, t)),
            ("row_vec4", None) => (0..rows).for_each(|r| (0..hd4).for_each(|t| emit(out, r, t))),
            (other, _) => panic!("attention_rows.wgsl: unknown or misplaced //@ {other}"),
        }
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

    /// The rows attention kernel written out for the register tiles its plans can choose
    /// (rows x head_dim vec4s up to 128, see the launcher) validates and translates.
    #[test]
    fn attention_rows_variants_validate_for_every_tile() {
        for (rows, hd4) in [
            (1, 1),
            (8, 1),
            (3, 7),
            (8, 16),
            (4, 32),
            (2, 50),
            (2, 64),
            (1, 64),
        ] {
            for precision in Precision::ALL {
                let v = Variant::attention_rows(precision, rows, hd4);
                v.validate().unwrap_or_else(|e| panic!("{e}"));
                assert!(v
                    .source()
                    .contains(&format!("var q{}_{} =", rows - 1, hd4 - 1)));
            }
        }
    }

    /// The browser's WGSL differs from naga's only by `enable subgroups;`, which leads the
    /// subgroup kernel's directives; naga 30 refuses it (when a naga release takes it, the
    /// two targets can become one).
    #[test]
    fn webgpu_sources_differ_from_naga_only_by_the_subgroups_directive() {
        for v in Variant::all() {
            let (naga_src, web) = (
                v.source_for(WgslTarget::Naga),
                v.source_for(WgslTarget::WebGpu),
            );
            if v.family.needs_subgroups() {
                assert_eq!(web, format!("enable subgroups;\n{naga_src}"));
                assert!(naga::front::wgsl::parse_str(&web).is_err(), "{}", v.label());
                assert!(v.webgpu_features().contains(&"subgroups"));
            } else {
                assert_eq!(web, naga_src, "{}", v.label());
            }
            assert_eq!(
                v.webgpu_features().contains(&"shader-f16"),
                v.precision == Precision::F16
            );
        }
    }

    #[test]
    fn broken_wgsl_is_reported_with_the_variant() {
        let v = Variant::new(Family::Matmul, Precision::F16);
        let source = v.source().replace("fn matmul(", "fn matmul(oops");
        assert!(naga::front::wgsl::parse_str(&source).is_err());
    }
}
