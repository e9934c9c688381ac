//! Tensor files of `ceiling kernel`: safetensors inputs read, checked and converted to
//! f32 (names, shapes, dtypes, finiteness, the f16 range), and outputs written atomically
//! with the metadata that says what produced them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ceiling_shaders::Precision;
use safetensors::{Dtype, SafeTensors};

/// One input tensor, converted to f32, with its shape and the file it came from.
pub struct Loaded {
    pub name: &'static str,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
    pub file: PathBuf,
}

impl Loaded {
    /// Checks the rank; `dims` names the expected axes for the message.
    pub fn rank(&self, dims: &[&str]) -> Result<()> {
        if self.shape.len() != dims.len() {
            bail!(
                "tensor `{}` in {}: expected rank {} [{}], got shape {:?}",
                self.name,
                self.file.display(),
                dims.len(),
                dims.join(", "),
                self.shape
            );
        }
        Ok(())
    }

    /// The name and values, as `ceiling_host::cases::run` takes them.
    pub fn named(&self) -> (&'static str, Vec<f32>) {
        (self.name, self.data.clone())
    }

    pub fn at_least_rank_1(&self) -> Result<()> {
        if self.shape.is_empty() {
            bail!(
                "tensor `{}` in {}: expected rank >= 1 [..., cols], got a scalar",
                self.name,
                self.file.display()
            );
        }
        Ok(())
    }
}

/// Checks that dim `i` of `t` equals dim `j` of `other` (both called `what`).
pub fn same_dim(t: &Loaded, i: usize, other: &Loaded, j: usize, what: &str) -> Result<()> {
    if t.shape[i] != other.shape[j] {
        bail!(
            "tensor `{}` has {what} {} (shape {:?}) but `{}` has {what} {} (shape {:?}): they must agree",
            t.name,
            t.shape[i],
            t.shape,
            other.name,
            other.shape[j],
            other.shape
        );
    }
    Ok(())
}

/// The tensors of an input file, read and checked.
pub struct Input {
    path: PathBuf,
    tensors: HashMap<&'static str, Loaded>,
}

impl Input {
    /// Reads `required` and `optional` tensors; any other name in the file is an error, so
    /// that a misspelt optional tensor is never silently ignored.
    /// Values are checked at the storage `precision` (a mask is always stored as f32).
    pub fn read(
        path: &Path,
        required: &[&'static str],
        optional: &[&'static str],
        precision: Precision,
    ) -> Result<Input> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        if let Some(name) = duplicate_name(&bytes) {
            bail!(
                "{} names tensor `{name}` twice: which one is meant is ambiguous; write each \
                 tensor once",
                path.display()
            );
        }
        let st = SafeTensors::deserialize(&bytes).with_context(|| {
            format!(
                "{} is not a valid safetensors file (truncated or corrupt?)",
                path.display()
            )
        })?;
        let mut names = st.names();
        names.sort();
        let expected = || {
            let mut s = required.join(", ");
            if !optional.is_empty() {
                s += &format!(" (optional: {})", optional.join(", "));
            }
            s
        };
        for name in &names {
            if !required.contains(name) && !optional.contains(name) {
                bail!(
                    "unexpected tensor `{name}` in {}: this kernel reads {}",
                    path.display(),
                    expected()
                );
            }
        }
        let mut tensors = HashMap::new();
        for &name in required.iter().chain(optional) {
            let view = match st.tensor(name) {
                Ok(view) => view,
                Err(_) if optional.contains(&name) => continue,
                Err(_) => bail!(
                    "missing tensor `{name}` in {} (it has: {}); this kernel reads {}",
                    path.display(),
                    names.join(", "),
                    expected()
                ),
            };
            let loaded = load(name, &view, path, name == "mask", precision)?;
            tensors.insert(name, loaded);
        }
        Ok(Input {
            path: path.to_path_buf(),
            tensors,
        })
    }

    pub fn take(&mut self, name: &str) -> Result<Loaded> {
        match self.tensors.remove(name) {
            Some(t) => Ok(t),
            None => bail!("missing tensor `{name}` in {}", self.path.display()),
        }
    }

    pub fn take_optional(&mut self, name: &str) -> Result<Option<Loaded>> {
        Ok(self.tensors.remove(name))
    }
}

/// The first tensor name a safetensors header holds twice (its JSON object would keep only
/// the last silently). None for a well-formed header, or one too broken to read (the
/// safetensors reader then names the problem).
fn duplicate_name(bytes: &[u8]) -> Option<String> {
    use serde::de::{Deserializer, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a safetensors header")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut seen = std::collections::HashSet::new();
            let mut twice = None;
            while let Some(key) = map.next_key::<String>()? {
                map.next_value::<serde::de::IgnoredAny>()?;
                if !seen.insert(key.clone()) && twice.is_none() {
                    twice = Some(key);
                }
            }
            Ok(twice)
        }
    }
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let header = bytes.get(8..8usize.checked_add(usize::try_from(len).ok()?)?)?;
    serde_json::Deserializer::from_slice(header)
        .deserialize_map(Keys)
        .ok()
        .flatten()
}

/// Converts one tensor to f32, refusing empty tensors, unsupported dtypes, NaN/Inf, and
/// values that become infinite when stored at `precision` (f16 beyond +-65504).
/// A mask may also be BOOL or integer (PyTorch masks usually are).
fn load(
    name: &'static str,
    view: &safetensors::tensor::TensorView<'_>,
    path: &Path,
    is_mask: bool,
    precision: Precision,
) -> Result<Loaded> {
    let shape = view.shape().to_vec();
    let where_ = || format!("tensor `{name}` in {}", path.display());
    if shape.contains(&0) {
        bail!("{} is empty (shape {shape:?})", where_());
    }
    let d = view.data();
    let data: Vec<f32> = match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        Dtype::BOOL | Dtype::U8 if is_mask => d.iter().map(|&b| b as f32).collect(),
        Dtype::I32 if is_mask => d
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        Dtype::I64 if is_mask => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        other => bail!(
            "{} has dtype {other:?}, which is not supported: use F32, F16, BF16 or F64{}",
            where_(),
            if is_mask {
                " (or BOOL, U8, I32, I64 for a mask)"
            } else {
                ""
            }
        ),
    };
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        bail!(
            "{} has {} at index {:?}: kernels take finite inputs only",
            where_(),
            if data[i].is_nan() {
                "NaN"
            } else {
                "infinity (or a value beyond f32 range)"
            },
            unravel(i, &shape)
        );
    }
    if precision == Precision::F16 && !is_mask {
        if let Some(i) = data
            .iter()
            .position(|&v| half::f16::from_f32(v).is_infinite())
        {
            bail!(
                "{} has {:e} at index {:?}, beyond the f16 range (+-{F16_MAX}) that --f16 \
                 stores: drop --f16 to run in f32, or scale the input into that range",
                where_(),
                data[i],
                unravel(i, &shape)
            );
        }
    }
    Ok(Loaded {
        name,
        shape,
        data,
        file: path.to_path_buf(),
    })
}

/// The multi-dimensional index of flat element `i` (row-major).
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        idx[k] = i % d;
        i /= d;
    }
    idx
}

/// One output tensor, already encoded as little-endian bytes.
pub struct Output {
    name: String,
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Vec<u8>,
}

/// The largest finite f16.
const F16_MAX: f32 = 65504.0;

impl Output {
    /// A kernel result stored at the storage `precision`: finite inputs must give finite
    /// results, so an infinity or NaN here is an overflow of that precision, refused with
    /// its index instead of being written.
    pub fn result(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
        precision: Precision,
    ) -> Result<Self> {
        let name = name.into();
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            let (range, fix) = match precision {
                Precision::F16 => (
                    format!("the f16 range (+-{F16_MAX}) that --f16 stores"),
                    "drop --f16 to run in f32, or scale the inputs down",
                ),
                Precision::F32 => (
                    format!("the f32 range (+-{:e})", f32::MAX),
                    "scale the inputs down",
                ),
            };
            bail!(
                "output `{name}` has {:e} at index {:?}: the result exceeds {range}; nothing \
                 was written: {fix}",
                data[i],
                unravel(i, &shape)
            );
        }
        Ok(Self::new(name, shape, data, precision))
    }

    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: Vec<f32>,
        precision: Precision,
    ) -> Self {
        let (dtype, bytes) = match precision {
            Precision::F32 => (
                Dtype::F32,
                data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Precision::F16 => (
                Dtype::F16,
                data.iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
            ),
        };
        Output {
            name: name.into(),
            shape,
            dtype,
            bytes,
        }
    }
}

/// Serialises `outputs` with `metadata` and writes them to `output` (the path `flag` gave)
/// atomically (`files::write_atomic`), so a reader never sees a half-written file.
pub fn write_atomic(
    output: &Path,
    flag: &str,
    outputs: &[Output],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let views = outputs
        .iter()
        .map(|o| {
            let view = safetensors::tensor::TensorView::new(o.dtype, o.shape.clone(), &o.bytes)
                .with_context(|| format!("encoding output tensor `{}`", o.name))?;
            Ok((o.name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).context("encoding the output")?;
    ceiling_core::files::write_atomic(output, &bytes).map_err(|e| {
        anyhow::anyhow!(
            "writing {}: {e}; nothing was written (free space, or choose another {flag})",
            output.display()
        )
    })
}
