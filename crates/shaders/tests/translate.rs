//! Every shader variant, with the override values the host's launchers set, translated by
//! naga to every language wgpu hands a driver: SPIR-V 1.3 (Vulkan), MSL 2.4 (Metal), HLSL
//! shader model 6.2 (DX12) and GLSL 4.50 core (GL; f32 variants without subgroups only, as
//! wgpu's GL backend offers neither shader-f16 nor subgroups). Overrides are resolved per
//! entry point first, as wgpu does when it makes a pipeline.
//!
//! Where Debian's validators are installed, the output is checked by them too: `spirv-val`
//! (spirv-tools) for SPIR-V and `glslangValidator` (glslang-tools) for GLSL. Without them the
//! test says that validation was skipped and why; under CI (CI=true) a missing validator
//! fails it. No validator for MSL or HLSL runs on Linux: those are checked by naga only.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use ceiling_shaders::{Family, Precision, Variant};

/// One set of override values (name, value), as a launcher passes them.
type Overrides = Vec<(&'static str, f64)>;

/// Workgroup memory the plans are sized against here (lavapipe's and llvmpipe's 32 KiB).
const WORKGROUP_BYTES: u32 = 32 * 1024;

/// Head dims the attention plans are made for: the small, odd, unaligned and largest.
const HEAD_DIMS: [u32; 8] = [1, 16, 30, 61, 64, 100, 128, 256];

/// The override sets the host's launchers use for `family` (crates/host/src/kernels/*):
/// every boolean and epilogue combination, the tilings autotuning tries, and the attention
/// plans' values over head dims from 1 to 256.
fn override_sets(family: Family) -> Vec<Overrides> {
    let b = |x: bool| x as u32 as f64;
    match family {
        // MatmulTiles::default(), and a smaller workgroup with a deeper k-step.
        Family::Matmul => vec![
            vec![("WG_X", 16.0), ("WG_Y", 16.0), ("TILE_K", 16.0)],
            vec![("WG_X", 8.0), ("WG_Y", 8.0), ("TILE_K", 32.0)],
        ],
        Family::MatmulVec4 => {
            let mut sets = Vec::new();
            // VEC4_CANDIDATES of kernels/matmul.rs with the default epilogue ...
            for (x, y, bk) in [
                (8, 8, 16),
                (8, 8, 32),
                (16, 8, 16),
                (8, 16, 16),
                (16, 16, 16),
            ] {
                sets.push(vec![
                    ("WG_X", x as f64),
                    ("WG_Y", y as f64),
                    ("BK", bk as f64),
                    ("TRANS_B", 0.0),
                    ("CHECKED", 1.0),
                    ("ACT", 0.0),
                    ("HAS_BIAS", 0.0),
                    ("HAS_RESIDUAL", 0.0),
                ]);
            }
            // ... and every epilogue, transposition and bounds form on the default tiles.
            for trans_b in [false, true] {
                for checked in [false, true] {
                    for act in 0..4 {
                        for bias in [false, true] {
                            for residual in [false, true] {
                                sets.push(vec![
                                    ("WG_X", 8.0),
                                    ("WG_Y", 8.0),
                                    ("BK", 16.0),
                                    ("TRANS_B", b(trans_b)),
                                    ("CHECKED", b(checked)),
                                    ("ACT", act as f64),
                                    ("HAS_BIAS", b(bias)),
                                    ("HAS_RESIDUAL", b(residual)),
                                ]);
                            }
                        }
                    }
                }
            }
            sets
        }
        // LmHeadPlan::choose: 8x8 tiles, else 8x4; b is always transposed.
        Family::LmHead => [8.0, 4.0]
            .into_iter()
            .flat_map(|wg_y| {
                [false, true].map(|checked| {
                    vec![
                        ("WG_X", 8.0),
                        ("WG_Y", wg_y),
                        ("BK", 16.0),
                        ("TRANS_B", 1.0),
                        ("CHECKED", b(checked)),
                    ]
                })
            })
            .collect(),
        Family::Norm | Family::Softmax => vec![vec![("WG", 128.0)]],
        Family::Rope | Family::Elementwise | Family::Reduce => vec![vec![("WG", 64.0)]],
        // The portable plan: BQ = 16, TPR = ceil(hd / DPT), BK from workgroup memory.
        Family::Attention => HEAD_DIMS
            .iter()
            .map(|&hd| {
                let tpr = hd.div_ceil(16);
                let per_key = 8 * hd + 4 * 16 * tpr + 4 * 16;
                let bk = (WORKGROUP_BYTES / per_key).min(32);
                vec![
                    ("BQ", 16.0),
                    ("TPR", tpr as f64),
                    ("BK", bk as f64),
                    ("HD", hd as f64),
                ]
            })
            .collect(),
        // The subgroup plan: WG = 64, one row per smallest subgroup (sizes 4 to 64), head
        // dims up to 32 per lane of the smallest subgroup.
        Family::AttentionSubgroup => [4u32, 8, 16, 32, 64]
            .into_iter()
            .flat_map(|sg| {
                HEAD_DIMS
                    .into_iter()
                    .filter(move |&hd| hd <= sg * 32)
                    .map(move |hd| {
                        let bk = (WORKGROUP_BYTES / (8 * hd)).min(32);
                        vec![
                            ("WG", 64.0),
                            ("BQ", (64 / sg) as f64),
                            ("BK", bk as f64),
                            ("HD", hd as f64),
                        ]
                    })
            })
            .collect(),
        // The rows plans (the autotuner's workgroups, with and without stats); BK for the
        // variant's head dim is set in `variants`.
        Family::AttentionRows => [8.0, 64.0]
            .into_iter()
            .flat_map(|wg| [false, true].map(|stats| vec![("WG", wg), ("STATS", b(stats))]))
            .collect(),
    }
}

/// Every variant with the override sets it is launched with.
fn variants() -> Vec<(Variant, Overrides)> {
    let mut out = Vec::new();
    for v in Variant::all() {
        if v.family == Family::AttentionRows {
            continue;
        }
        for set in override_sets(v.family) {
            out.push((v, set));
        }
    }
    // The rows kernel is written out per (rows, head_dim in vec4s): the default, the tiles
    // its plans choose for the head dims above (8 rows up to hd4 16, then 128 / hd4), and
    // odd ones.
    let mut tiles = vec![(8, 16), (3, 7), (1, 1), (5, 3)];
    for hd in HEAD_DIMS {
        let hd4 = hd.div_ceil(4);
        tiles.push(((128 / hd4).min(8), hd4));
    }
    tiles.sort();
    tiles.dedup();
    for precision in Precision::ALL {
        for &(rows, hd4) in &tiles {
            let v = Variant::attention_rows(precision, rows, hd4);
            let bk = (WORKGROUP_BYTES / (32 * hd4)).min(32) / 4 * 4;
            for mut set in override_sets(Family::AttentionRows) {
                set.push(("BK", bk as f64));
                out.push((v, set));
            }
        }
    }
    out
}

/// A backend wgpu translates WGSL for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Spirv,
    Msl,
    Hlsl,
    Glsl,
}

impl Target {
    const ALL: [Target; 4] = [Target::Spirv, Target::Msl, Target::Hlsl, Target::Glsl];

    fn name(self) -> &'static str {
        match self {
            Target::Spirv => "SPIR-V 1.3",
            Target::Msl => "MSL 2.4",
            Target::Hlsl => "HLSL SM 6.2",
            Target::Glsl => "GLSL 4.50 core",
        }
    }

    /// Whether wgpu would ever ask this backend for the variant: its GL backend has neither
    /// shader-f16 nor subgroups.
    fn allows(self, v: &Variant) -> bool {
        self != Target::Glsl || (v.precision == Precision::F32 && !v.family.needs_subgroups())
    }
}

/// The translated text (or SPIR-V words) of one entry point.
enum Output {
    Words(Vec<u32>),
    Text(String),
}

/// Bounds checks as wgpu makes them with ShaderRuntimeChecks::checked() (the host keeps
/// them; loop bounding and workgroup zeroing are off, as in `Gpu::pipeline`).
fn policies() -> naga::proc::BoundsCheckPolicies {
    use naga::proc::BoundsCheckPolicy::*;
    naga::proc::BoundsCheckPolicies {
        index: ReadZeroSkipWrite,
        buffer: ReadZeroSkipWrite,
        image_load: ReadZeroSkipWrite,
        binding_array: Unchecked,
    }
}

fn translate(
    target: Target,
    module: &naga::Module,
    info: &naga::valid::ModuleInfo,
    entry: &str,
) -> Result<Output, String> {
    let stage = naga::ShaderStage::Compute;
    match target {
        Target::Spirv => {
            let options = naga::back::spv::Options {
                lang_version: (1, 3),
                bounds_check_policies: policies(),
                zero_initialize_workgroup_memory:
                    naga::back::spv::ZeroInitializeWorkgroupMemoryMode::None,
                force_loop_bounding: false,
                ..Default::default()
            };
            let pipeline = naga::back::spv::PipelineOptions {
                shader_stage: stage,
                entry_point: entry.to_string(),
            };
            naga::back::spv::write_vec(module, info, &options, Some(&pipeline))
                .map(Output::Words)
                .map_err(|e| e.to_string())
        }
        Target::Msl => {
            let options = naga::back::msl::Options {
                lang_version: (2, 4),
                bounds_check_policies: policies(),
                zero_initialize_workgroup_memory: false,
                force_loop_bounding: false,
                ..Default::default()
            };
            let pipeline = naga::back::msl::PipelineOptions {
                entry_point: Some((stage, entry.to_string())),
                ..Default::default()
            };
            naga::back::msl::write_string(module, info, &options, &pipeline)
                .map(|(s, _)| Output::Text(s))
                .map_err(|e| e.to_string())
        }
        Target::Hlsl => {
            let options = naga::back::hlsl::Options {
                shader_model: naga::back::hlsl::ShaderModel::V6_2,
                zero_initialize_workgroup_memory: false,
                force_loop_bounding: false,
                ..Default::default()
            };
            let pipeline = naga::back::hlsl::PipelineOptions {
                entry_point: Some((stage, entry.to_string())),
            };
            let mut s = String::new();
            naga::back::hlsl::Writer::new(&mut s, &options, &pipeline)
                .write(module, info, None)
                .map(|_| Output::Text(s))
                .map_err(|e| e.to_string())
        }
        Target::Glsl => {
            let options = naga::back::glsl::Options {
                version: naga::back::glsl::Version::Desktop(450),
                zero_initialize_workgroup_memory: false,
                ..Default::default()
            };
            let pipeline = naga::back::glsl::PipelineOptions {
                shader_stage: stage,
                entry_point: entry.to_string(),
                multiview: None,
            };
            // wgpu's GL backend leaves buffer and index checks to GLSL (see wgpu-hal).
            let gl_policies = naga::proc::BoundsCheckPolicies {
                index: naga::proc::BoundsCheckPolicy::Unchecked,
                buffer: naga::proc::BoundsCheckPolicy::Unchecked,
                ..policies()
            };
            let mut s = String::new();
            naga::back::glsl::Writer::new(&mut s, module, info, &options, &pipeline, gl_policies)
                .and_then(|mut w| w.write().map(|_| ()))
                .map(|_| Output::Text(s))
                .map_err(|e| e.to_string())
        }
    }
}

/// An external validator, if installed.
struct Validator {
    program: &'static str,
    args: &'static [&'static str],
    package: &'static str,
}

impl Validator {
    fn for_target(target: Target) -> Option<Validator> {
        match target {
            // SPIR-V 1.3 is Vulkan 1.1's.
            Target::Spirv => Some(Validator {
                program: "spirv-val",
                args: &["--target-env", "vulkan1.1", "-"],
                package: "spirv-tools",
            }),
            Target::Glsl => Some(Validator {
                program: "glslangValidator",
                args: &["--stdin", "-S", "comp"],
                package: "glslang-tools",
            }),
            Target::Msl | Target::Hlsl => None,
        }
    }

    fn installed(&self) -> bool {
        Command::new(self.program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
    }

    /// Runs the validator on `bytes` (on stdin); Err with what it printed if it refuses.
    fn check(&self, bytes: &[u8]) -> Result<(), String> {
        let mut child = Command::new(self.program)
            .args(self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.program))?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(bytes)
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} refused it:\n{}{}",
                self.program,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

fn capabilities(v: &Variant) -> naga::valid::Capabilities {
    let mut caps = naga::valid::Capabilities::empty();
    if v.precision == Precision::F16 {
        caps |= naga::valid::Capabilities::SHADER_FLOAT16;
    }
    if v.family.needs_subgroups() {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    caps
}

#[test]
fn every_variant_translates_to_every_backend_and_validates() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let mut validators = BTreeMap::new();
    for target in Target::ALL {
        match Validator::for_target(target) {
            Some(v) if v.installed() => {
                validators.insert(target, v);
            }
            Some(v) => {
                let why = format!(
                    "{} output NOT validated: `{}` is not installed (Debian: `apt-get install \
                     -y {}`)",
                    target.name(),
                    v.program,
                    v.package
                );
                assert!(!ci, "{why}; under CI it must be");
                eprintln!("{why}");
            }
            None => eprintln!(
                "{} output is checked by naga only: no validator for it runs here",
                target.name()
            ),
        }
    }

    // (target) -> (translated, validated) counts, and every failure.
    let mut counts: BTreeMap<Target, (usize, usize)> = BTreeMap::new();
    let mut failures = Vec::new();
    let all = variants();
    for (v, overrides) in &all {
        let label = format!("{} {overrides:?}", v.label());
        let source = v.source();
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
        let info =
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities(v))
                .validate(&module)
                .unwrap_or_else(|e| panic!("{label}: {}", e.emit_to_string(&source)));
        let mut constants = naga::back::PipelineConstants::default();
        for &(name, value) in overrides {
            constants.insert(name.to_string(), value);
        }
        for ep in &module.entry_points {
            let entry = ep.name.as_str();
            // As wgpu does per pipeline: this entry point only, overrides resolved.
            let resolved = std::panic::catch_unwind(|| {
                naga::back::pipeline_constants::process_overrides(
                    &module,
                    &info,
                    Some((naga::ShaderStage::Compute, entry)),
                    &constants,
                )
                .map(|(m, i)| (m.into_owned(), i.into_owned()))
                .map_err(|e| e.to_string())
            });
            let (m, i) = match resolved {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => {
                    failures.push(format!("{label} / {entry}: overrides: {e}"));
                    continue;
                }
                Err(_) => {
                    failures.push(format!(
                        "{label} / {entry}: naga panicked resolving the overrides (is an \
                         override declared after a global that uses overrides?)"
                    ));
                    continue;
                }
            };
            for target in Target::ALL.into_iter().filter(|t| t.allows(v)) {
                let what = format!("{label} / {entry} -> {}", target.name());
                let count = counts.entry(target).or_default();
                let output = match translate(target, &m, &i, entry) {
                    Ok(o) => o,
                    Err(e) => {
                        failures.push(format!("{what}: naga: {e}"));
                        continue;
                    }
                };
                count.0 += 1;
                if let Some(validator) = validators.get(&target) {
                    let bytes = match &output {
                        Output::Words(w) => w.iter().flat_map(|x| x.to_le_bytes()).collect(),
                        Output::Text(s) => s.as_bytes().to_vec(),
                    };
                    match validator.check(&bytes) {
                        Ok(()) => count.1 += 1,
                        Err(e) => failures.push(format!("{what}: {e}")),
                    }
                }
            }
        }
    }
    eprintln!("{} variant x override sets", all.len());
    for (target, (translated, validated)) in &counts {
        eprintln!(
            "{:15} {translated} entry points translated, {validated} validated",
            target.name()
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // Every family reached every backend it may run on.
    for target in Target::ALL {
        assert!(counts.get(&target).is_some_and(|c| c.0 > 0), "{target:?}");
    }
}
