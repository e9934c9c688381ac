//! GGUF files (llama.cpp's format, versions 2 and 3, little endian): a reader that trusts
//! nothing in the file, the dequantisers of the formats small models ship in (F32, F16, BF16,
//! Q4_0, Q4_1, Q8_0) and their reference quantisers, a loader of the llama architecture onto
//! [`ModelWeights`], and a writer (for tests, and for converting our weights to GGUF).
//!
//! GGUF lists a tensor's dims innermost first: a torch weight [out, in] has dims [in, out].
//! The bytes are therefore already row-major for the reversed dims, and quantised blocks run
//! along `dims[0]` (the rows of a weight).
//!
//! The reader is written against hostile input: every count and length read from the file is
//! checked against the bytes that remain before anything is allocated from it, and every
//! failure is a [`ModelError`] naming the file and the problem, never a panic.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use half::{bf16, f16};

use super::{
    FfnActivation, LayerWeights, Layout, Linear, LmHead, ModelConfig, ModelError, ModelWeights,
    Norm, NormKind, Position,
};

const MAGIC: &[u8; 4] = b"GGUF";
/// The data-section alignment when `general.alignment` is absent (GGUF's default).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (ggml's GGML_MAX_DIMS); more is a corrupt file.
pub const MAX_DIMS: usize = 4;
/// Deepest nesting of metadata arrays accepted, so that a hostile file cannot recurse deeply.
pub const MAX_ARRAY_DEPTH: usize = 4;
/// Values per block of the quantised formats (Q4_0, Q4_1, Q8_0).
pub const QK: usize = 32;

// ---------------------------------------------------------------------------------------------
// Metadata values and tensor types
// ---------------------------------------------------------------------------------------------

/// One metadata value, with the type the file stored it as (llama.cpp is strict about types,
/// so the writer must be able to choose them).
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// All elements of one type (the format stores one element type per array).
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    /// Any integer type holding a non-negative value (converters disagree on u32 vs u64 vs i32).
    pub fn as_u64(&self) -> Option<u64> {
        use GgufValue::*;
        match *self {
            U8(v) => Some(v.into()),
            U16(v) => Some(v.into()),
            U32(v) => Some(v.into()),
            U64(v) => Some(v),
            I8(v) => u64::try_from(v).ok(),
            I16(v) => u64::try_from(v).ok(),
            I32(v) => u64::try_from(v).ok(),
            I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Any numeric type, widened exactly (an F32 gives its exact binary value).
    pub fn as_f64(&self) -> Option<f64> {
        use GgufValue::*;
        match *self {
            U8(v) => Some(v.into()),
            I8(v) => Some(v.into()),
            U16(v) => Some(v.into()),
            I16(v) => Some(v.into()),
            U32(v) => Some(v.into()),
            I32(v) => Some(v.into()),
            F32(v) => Some(v.into()),
            U64(v) => Some(v as f64),
            I64(v) => Some(v as f64),
            F64(v) => Some(v),
            _ => None,
        }
    }

    /// The text of a string value (architecture names, tokens).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The elements of an array value (token lists, scores, merges).
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The format's type id of this value.
    pub fn type_id(&self) -> u32 {
        use GgufValue::*;
        match self {
            U8(_) => 0,
            I8(_) => 1,
            U16(_) => 2,
            I16(_) => 3,
            U32(_) => 4,
            I32(_) => 5,
            F32(_) => 6,
            Bool(_) => 7,
            String(_) => 8,
            Array(_) => 9,
            U64(_) => 10,
            I64(_) => 11,
            F64(_) => 12,
        }
    }
}

/// A ggml tensor type. Only the types this module can dequantise have their own variant; the
/// rest are kept as their id so that a file with, say, Q4_K tensors still opens and fails
/// only when such a tensor is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q8_0,
    Other(u32),
}

impl GgmlType {
    /// The types [`dequantize`] and [`quantize`] handle.
    pub const SUPPORTED: [GgmlType; 6] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q8_0,
    ];

    /// The type of a stored id; ids without their own variant become `Other`.
    pub fn from_id(id: u32) -> Self {
        match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            8 => GgmlType::Q8_0,
            30 => GgmlType::BF16,
            other => GgmlType::Other(other),
        }
    }

    /// The id the file stores.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q8_0 => 8,
            GgmlType::BF16 => 30,
            GgmlType::Other(id) => id,
        }
    }

    /// ggml's name of the type, for every id ggml defines (so errors can say "Q4_K").
    pub fn name(self) -> Option<&'static str> {
        Some(match self.id() {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            _ => return None,
        })
    }

    /// Whether this module can dequantise and quantise the type.
    pub fn is_supported(self) -> bool {
        !matches!(self, GgmlType::Other(_))
    }

    /// (values per block, bytes per block) of a supported type; None for the others.
    pub fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::BF16 => Some((1, 2)),
            GgmlType::Q4_0 => Some((QK, 2 + QK / 2)),
            GgmlType::Q4_1 => Some((QK, 4 + QK / 2)),
            GgmlType::Q8_0 => Some((QK, 2 + QK)),
            GgmlType::Other(_) => None,
        }
    }

    /// Bytes that `count` values take; None if the type is unsupported, `count` is not a whole
    /// number of blocks, or the size overflows.
    pub fn byte_len(self, count: usize) -> Option<usize> {
        let (per, bytes) = self.block()?;
        if !count.is_multiple_of(per) {
            return None;
        }
        (count / per).checked_mul(bytes)
    }

    fn supported_list() -> String {
        Self::SUPPORTED.map(|t| t.to_string()).join(", ")
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "type {}", self.id()),
        }
    }
}

/// The error for reading a tensor of a type this module cannot dequantise.
fn unsupported_type(dtype: GgmlType, tensor: &str) -> ModelError {
    let name = dtype.name().map(|n| format!(" ({n})")).unwrap_or_default();
    ModelError::Unsupported(format!(
        "unsupported ggml type {}{name} for tensor '{tensor}'; supported: {}",
        dtype.id(),
        GgmlType::supported_list()
    ))
}

/// One tensor's header entry.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Innermost (fastest-varying) first, as the file stores them.
    pub dims: Vec<u64>,
    pub dtype: GgmlType,
    /// Relative to the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// The row-major shape, outermost first (dims reversed): [out, in] for a weight.
    pub fn shape(&self) -> Vec<usize> {
        // The parser checked that every dim fits a usize; saturate rather than trust it here.
        self.dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect()
    }

    /// Number of values (1 for a tensor without dims).
    pub fn element_count(&self) -> usize {
        self.dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .unwrap_or(usize::MAX)
    }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/// A parsed GGUF file held in memory (models here are ~100 MB), tensors read on demand.
#[derive(Clone)]
pub struct GgufFile {
    /// 2 or 3 (they differ only in v1's 32-bit counts, which are refused).
    pub version: u32,
    /// In file order, keys unique.
    pub metadata: Vec<(String, GgufValue)>,
    /// In file order, names unique; data bounds checked for the supported types.
    pub tensors: Vec<GgufTensorInfo>,
    name: String,
    alignment: u64,
    bytes: Vec<u8>,
    data_start: usize,
    index: HashMap<String, usize>,
}

impl fmt::Debug for GgufFile {
    // The bytes are left out: printing a 100 MB Vec helps nobody.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufFile")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("metadata_keys", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .field("alignment", &self.alignment)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

fn gguf_error(name: &str, message: impl Into<String>) -> ModelError {
    ModelError::Gguf {
        path: name.to_string(),
        message: message.into(),
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    name: &'a str,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn err(&self, message: impl Into<String>) -> ModelError {
        gguf_error(self.name, message)
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ModelError> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "file ends inside {what}: {n} bytes needed at byte {}, {} remain",
                self.pos,
                self.remaining()
            )));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: &str) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.fixed(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.fixed(what)?))
    }

    /// A u64 count of items of at least `min_bytes` each, refused unless that many items
    /// could fit in the bytes that remain (so no allocation trusts the file).
    fn count(&mut self, what: &str, min_bytes: usize) -> Result<usize, ModelError> {
        let at = self.pos;
        let n = self.u64(what)?;
        let need = n.checked_mul(min_bytes as u64);
        match need {
            Some(need) if need <= self.remaining() as u64 => Ok(n as usize),
            _ => Err(self.err(format!(
                "{what} {n} (at byte {at}) exceeds what the remaining {} bytes can hold",
                self.remaining()
            ))),
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ModelError> {
        let len = self.count(&format!("{what} length"), 1)?;
        let at = self.pos;
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(self.err(format!("{what} at byte {at} is not valid UTF-8: {e}"))),
        }
    }

    /// The value of metadata type `ty`; `depth` counts enclosing arrays.
    fn value(&mut self, ty: u32, depth: usize, key: &str) -> Result<GgufValue, ModelError> {
        use GgufValue as V;
        let what = format!("the value of '{key}'");
        Ok(match ty {
            0 => V::U8(u8::from_le_bytes(self.fixed(&what)?)),
            1 => V::I8(i8::from_le_bytes(self.fixed(&what)?)),
            2 => V::U16(u16::from_le_bytes(self.fixed(&what)?)),
            3 => V::I16(i16::from_le_bytes(self.fixed(&what)?)),
            4 => V::U32(u32::from_le_bytes(self.fixed(&what)?)),
            5 => V::I32(i32::from_le_bytes(self.fixed(&what)?)),
            6 => V::F32(f32::from_le_bytes(self.fixed(&what)?)),
            7 => {
                let at = self.pos;
                match self.fixed::<1>(&what)?[0] {
                    0 => V::Bool(false),
                    1 => V::Bool(true),
                    b => {
                        return Err(self.err(format!(
                            "bool value of '{key}' at byte {at} is {b}, not 0 or 1"
                        )))
                    }
                }
            }
            8 => V::String(self.string(&format!("the string value of '{key}'"))?),
            9 => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.err(format!(
                        "metadata '{key}' has arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
                    )));
                }
                let elem = self.u32(&format!("the array element type of '{key}'"))?;
                let min = value_min_bytes(elem).ok_or_else(|| {
                    self.err(format!(
                        "metadata '{key}' is an array of unknown value type {elem}"
                    ))
                })?;
                let n = self.count(&format!("array count of '{key}'"), min)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(elem, depth + 1, key)?);
                }
                V::Array(items)
            }
            10 => V::U64(u64::from_le_bytes(self.fixed(&what)?)),
            11 => V::I64(i64::from_le_bytes(self.fixed(&what)?)),
            12 => V::F64(f64::from_le_bytes(self.fixed(&what)?)),
            other => {
                return Err(self.err(format!(
                    "metadata '{key}' has unknown value type {other} (known: 0 to 12)"
                )))
            }
        })
    }
}

/// The fewest bytes a value of metadata type `ty` can take; None for unknown types.
fn value_min_bytes(ty: u32) -> Option<usize> {
    Some(match ty {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        8 | 10..=12 => 8,
        9 => 12,
        _ => return None,
    })
}

fn align_up(x: u64, alignment: u64) -> Option<u64> {
    Some(x.checked_add(alignment - 1)? / alignment * alignment)
}

impl GgufFile {
    /// Reads and parses the whole file.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(bytes, &path.display().to_string())
    }

    /// Parses a file's bytes; `name` (usually the path) names the file in errors. Checks the
    /// header, metadata and tensor table completely, and that every supported tensor's data
    /// lies inside the file, so that reading tensors later cannot fail on bounds.
    pub fn parse(bytes: Vec<u8>, name: &str) -> Result<Self, ModelError> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
            name,
        };
        let magic = r.take(4, "the magic")?;
        if magic != MAGIC {
            return Err(r.err(format!(
                "bad magic {:?}: expected \"GGUF\"",
                String::from_utf8_lossy(magic)
            )));
        }
        let version = r.u32("the version")?;
        match version {
            2 | 3 => {}
            v if matches!(v.swap_bytes(), 2 | 3) => {
                return Err(r.err(format!(
                    "big-endian GGUF (version {}) is not supported",
                    v.swap_bytes()
                )))
            }
            v => {
                return Err(r.err(format!(
                    "GGUF version {v} is not supported: only versions 2 and 3 are"
                )))
            }
        }
        let tensor_count = r.u64("the tensor count")?;
        let kv_count = r.u64("the metadata key-value count")?;
        // Each tensor info takes at least 24 bytes, each key-value at least 13.
        let (room, at) = (r.remaining() as u64, r.pos);
        if tensor_count.checked_mul(24).is_none_or(|b| b > room) {
            return Err(r.err(format!(
                "tensor count {tensor_count} exceeds what the remaining {room} bytes (from byte \
                 {at}) can hold"
            )));
        }
        if kv_count.checked_mul(13).is_none_or(|b| b > room) {
            return Err(r.err(format!(
                "metadata key-value count {kv_count} exceeds what the remaining {room} bytes \
                 (from byte {at}) can hold"
            )));
        }
        let (tensor_count, kv_count) = (tensor_count as usize, kv_count as usize);

        let mut metadata = Vec::with_capacity(kv_count);
        let mut keys = HashSet::with_capacity(kv_count);
        for _ in 0..kv_count {
            let key = r.string("a metadata key")?;
            let ty = r.u32(&format!("the value type of '{key}'"))?;
            let value = r.value(ty, 0, &key)?;
            if !keys.insert(key.clone()) {
                return Err(r.err(format!("duplicate metadata key '{key}'")));
            }
            metadata.push((key, value));
        }

        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => match v.as_u64() {
                Some(a) if a.is_power_of_two() && a <= u32::MAX as u64 => a,
                _ => {
                    return Err(r.err(format!(
                        "general.alignment {v:?} is not a power of two that fits a u32"
                    )))
                }
            },
        };

        let mut tensors: Vec<GgufTensorInfo> = Vec::with_capacity(tensor_count);
        let mut index = HashMap::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = r.string("a tensor name")?;
            let n_dims = r.u32(&format!("the dimension count of tensor '{name}'"))?;
            if n_dims as usize > MAX_DIMS {
                return Err(r.err(format!(
                    "tensor '{name}' has {n_dims} dimensions; at most {MAX_DIMS} are supported"
                )));
            }
            let mut dims = Vec::with_capacity(n_dims as usize);
            for _ in 0..n_dims {
                dims.push(r.u64(&format!("the dims of tensor '{name}'"))?);
            }
            let dtype = GgmlType::from_id(r.u32(&format!("the type of tensor '{name}'"))?);
            let offset = r.u64(&format!("the offset of tensor '{name}'"))?;
            let count = dims
                .iter()
                .try_fold(1u64, |n, &d| n.checked_mul(d))
                .filter(|&n| n <= i64::MAX as u64)
                .and_then(|n| usize::try_from(n).ok());
            let dims_fit = dims
                .iter()
                .all(|&d| d <= i64::MAX as u64 && usize::try_from(d).is_ok());
            if count.is_none() || !dims_fit {
                return Err(r.err(format!(
                    "tensor '{name}' dims {dims:?} overflow: their product does not fit 63 bits"
                )));
            }
            if index.contains_key(&name) {
                return Err(r.err(format!("duplicate tensor name '{name}'")));
            }
            if !offset.is_multiple_of(alignment) {
                return Err(r.err(format!(
                    "tensor '{name}' offset {offset} is not a multiple of the alignment \
                     {alignment}"
                )));
            }
            if let Some((per, _)) = dtype.block() {
                let row = dims.first().copied().unwrap_or(1);
                if !row.is_multiple_of(per as u64) {
                    return Err(r.err(format!(
                        "tensor '{name}' of type {dtype} has rows of {row} values, not a \
                         multiple of its block size {per}"
                    )));
                }
            }
            index.insert(name.clone(), tensors.len());
            tensors.push(GgufTensorInfo {
                name,
                dims,
                dtype,
                offset,
            });
        }

        let infos_end = r.pos as u64;
        let data_start = align_up(infos_end, alignment)
            .and_then(|s| usize::try_from(s).ok())
            .ok_or_else(|| r.err("the data section start overflows"))?;
        let data_len = bytes.len().saturating_sub(data_start) as u64;
        for t in &tensors {
            if !t.dtype.is_supported() {
                // Size unknown until someone reads it (and fails): its start must lie inside.
                if t.offset > data_len {
                    return Err(r.err(format!(
                        "tensor '{}' ({}) offset {} is past the end of the file: the data \
                         section holds {data_len} bytes",
                        t.name, t.dtype, t.offset
                    )));
                }
                continue;
            }
            // Rows were checked to be whole blocks, so only overflow makes this None.
            let size = t
                .dtype
                .byte_len(t.element_count())
                .ok_or_else(|| r.err(format!("tensor '{}' data size overflows", t.name)))?;
            if t.offset
                .checked_add(size as u64)
                .is_none_or(|end| end > data_len)
            {
                return Err(r.err(format!(
                    "tensor '{}' ({}, {size} bytes at data offset {}) runs past the end of the \
                     file: the data section holds {data_len} bytes",
                    t.name, t.dtype, t.offset
                )));
            }
        }
        Ok(Self {
            version,
            metadata,
            tensors,
            name: name.to_string(),
            alignment,
            bytes,
            data_start,
            index,
        })
    }

    /// The name errors give the file (its path when opened from disk).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data-section alignment (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Byte offset of the data section in the file.
    pub fn data_start(&self) -> usize {
        self.data_start
    }

    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A tensor's header entry by name.
    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }

    /// The stored bytes of a tensor of a supported type.
    pub fn tensor_data(&self, name: &str) -> Result<&[u8], ModelError> {
        let info = self
            .tensor(name)
            .ok_or_else(|| ModelError::Missing(name.to_string()))?;
        let size = info
            .dtype
            .byte_len(info.element_count())
            .ok_or_else(|| unsupported_type(info.dtype, name))?;
        usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.data_start))
            .and_then(|start| self.bytes.get(start..start.checked_add(size)?))
            .ok_or_else(|| {
                gguf_error(
                    &self.name,
                    format!("tensor '{name}' data lies outside the file"),
                )
            })
    }

    /// A tensor's values as f32, row-major for [`GgufTensorInfo::shape`]; refuses NaN and
    /// infinity (ModelError::NonFinite) as the safetensors loader does.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let info = self
            .tensor(name)
            .ok_or_else(|| ModelError::Missing(name.to_string()))?;
        if !info.dtype.is_supported() {
            return Err(unsupported_type(info.dtype, name));
        }
        let values = dequantize(info.dtype, self.tensor_data(name)?, info.element_count())?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite(name.to_string()));
        }
        Ok(values)
    }
}

// ---------------------------------------------------------------------------------------------
// Dequantisation and quantisation
// ---------------------------------------------------------------------------------------------

fn f16_at(b: &[u8], i: usize) -> f32 {
    f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// `count` values of type `dtype` from their stored bytes (exactly as many bytes as the type
/// needs). Non-finite results are returned as they are; [`GgufFile::tensor_f32`] refuses them.
pub fn dequantize(dtype: GgmlType, bytes: &[u8], count: usize) -> Result<Vec<f32>, ModelError> {
    if !dtype.is_supported() {
        return Err(unsupported_type(dtype, "(dequantize input)"));
    }
    let want = dtype.byte_len(count).ok_or_else(|| ModelError::Shape {
        tensor: "(dequantize input)".into(),
        expected: format!("a multiple of {QK} values for {dtype}"),
        got: format!("{count} values"),
    })?;
    if bytes.len() != want {
        return Err(ModelError::Shape {
            tensor: "(dequantize input)".into(),
            expected: format!("{want} bytes for {count} {dtype} values"),
            got: format!("{} bytes", bytes.len()),
        });
    }
    let mut out = Vec::with_capacity(count);
    match dtype {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        GgmlType::F16 => out.extend(bytes.chunks_exact(2).map(|c| f16_at(c, 0))),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        GgmlType::Q4_0 => {
            for b in bytes.chunks_exact(18) {
                let d = f16_at(b, 0);
                let qs = &b[2..];
                out.extend(qs.iter().map(|&q| ((q & 0xF) as i32 - 8) as f32 * d));
                out.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
            }
        }
        GgmlType::Q4_1 => {
            for b in bytes.chunks_exact(20) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                let qs = &b[4..];
                out.extend(qs.iter().map(|&q| (q & 0xF) as f32 * d + m));
                out.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
            }
        }
        GgmlType::Q8_0 => {
            for b in bytes.chunks_exact(34) {
                let d = f16_at(b, 0);
                out.extend(b[2..].iter().map(|&q| q as i8 as f32 * d));
            }
        }
        GgmlType::Other(_) => unreachable!("checked above"),
    }
    Ok(out)
}

/// `values` stored as `dtype`, following llama.cpp's reference quantisers bit for bit (so that
/// files we write quantise as llama.cpp's would). Quantised types need a whole number of
/// blocks of 32 values. Scales are stored as f16: blocks whose scale exceeds f16's range
/// dequantise to infinity (the writer refuses such tensors).
pub fn quantize(dtype: GgmlType, values: &[f32]) -> Result<Vec<u8>, ModelError> {
    if !dtype.is_supported() {
        return Err(unsupported_type(dtype, "(quantize input)"));
    }
    let len = dtype
        .byte_len(values.len())
        .ok_or_else(|| ModelError::Shape {
            tensor: "(quantize input)".into(),
            expected: format!("a multiple of {QK} values for {dtype}"),
            got: format!("{} values", values.len()),
        })?;
    let mut out = Vec::with_capacity(len);
    match dtype {
        GgmlType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        GgmlType::F16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&f16::from_f32(v).to_le_bytes())),
        GgmlType::BF16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16::from_f32(v).to_le_bytes())),
        GgmlType::Q4_0 => {
            // quantize_row_q4_0_ref: the value of largest magnitude maps to -8.
            for x in values.chunks_exact(QK) {
                let (mut amax, mut max) = (0.0f32, 0.0f32);
                for &v in x {
                    if amax < v.abs() {
                        amax = v.abs();
                        max = v;
                    }
                }
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                let q = |v: f32| ((v * id + 8.5) as i8).clamp(0, 15) as u8;
                for j in 0..QK / 2 {
                    out.push(q(x[j]) | (q(x[j + QK / 2]) << 4));
                }
            }
        }
        GgmlType::Q4_1 => {
            // quantize_row_q4_1_ref: min and (max - min) / 15.
            for x in values.chunks_exact(QK) {
                let (mut min, mut max) = (f32::MAX, -f32::MAX);
                for &v in x {
                    if v < min {
                        min = v;
                    }
                    if v > max {
                        max = v;
                    }
                }
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                let q = |v: f32| (((v - min) * id + 0.5) as i8).clamp(0, 15) as u8;
                for j in 0..QK / 2 {
                    out.push(q(x[j]) | (q(x[j + QK / 2]) << 4));
                }
            }
        }
        GgmlType::Q8_0 => {
            // quantize_row_q8_0_ref: amax / 127, round half away from zero.
            for x in values.chunks_exact(QK) {
                let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
            }
        }
        GgmlType::Other(_) => unreachable!("checked above"),
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Q/K row order
// ---------------------------------------------------------------------------------------------

fn permute_check(w: &[f32], rows: usize, in_dim: usize, n_head: usize) -> Result<(), ModelError> {
    if n_head == 0 || !rows.is_multiple_of(2 * n_head) || rows.checked_mul(in_dim) != Some(w.len())
    {
        return Err(ModelError::Shape {
            tensor: "(q/k rows to permute)".into(),
            expected: format!("[{rows}, {in_dim}] with rows a multiple of 2 x {n_head} heads"),
            got: format!("{} values", w.len()),
        });
    }
    Ok(())
}

/// Moves rows `from(hf_row)` -> `to(gguf_row)` or back; `forward` is HF -> GGUF.
fn permute_rows(
    w: &[f32],
    rows: usize,
    in_dim: usize,
    n_head: usize,
    forward: bool,
) -> Result<Vec<f32>, ModelError> {
    permute_check(w, rows, in_dim, n_head)?;
    let hd = rows / n_head;
    let mut out = vec![0.0; w.len()];
    for h in 0..n_head {
        for half in 0..2 {
            for i in 0..hd / 2 {
                let hf = h * hd + half * (hd / 2) + i;
                let gg = h * hd + 2 * i + half;
                let (src, dst) = if forward { (hf, gg) } else { (gg, hf) };
                out[dst * in_dim..][..in_dim].copy_from_slice(&w[src * in_dim..][..in_dim]);
            }
        }
    }
    Ok(out)
}

/// Q or K [rows, in_dim] from Hugging Face's rotate-half row order to the interleaved pairs
/// llama.cpp's converter writes (`reshape(n_head, 2, hd/2, in).swapaxes(1, 2)`): GGUF row
/// `h*hd + 2*i + half` is HF row `h*hd + half*(hd/2) + i`. `n_head` is the head count for Q
/// and the kv-head count for K.
pub fn permute_rows_for_gguf(
    w: &[f32],
    rows: usize,
    in_dim: usize,
    n_head: usize,
) -> Result<Vec<f32>, ModelError> {
    permute_rows(w, rows, in_dim, n_head, true)
}

/// The inverse of [`permute_rows_for_gguf`]: GGUF's Q/K rows back to HF order, which our
/// rotary (NeoX rotate-half) expects.
pub fn unpermute_rows_from_gguf(
    w: &[f32],
    rows: usize,
    in_dim: usize,
    n_head: usize,
) -> Result<Vec<f32>, ModelError> {
    permute_rows(w, rows, in_dim, n_head, false)
}

// ---------------------------------------------------------------------------------------------
// Llama loader
// ---------------------------------------------------------------------------------------------

/// Per-block tensors of the llama layout, in the order llama.cpp writes them.
const LLAMA_BLOCK_TENSORS: [&str; 9] = [
    "attn_norm.weight",
    "attn_q.weight",
    "attn_k.weight",
    "attn_v.weight",
    "attn_output.weight",
    "ffn_norm.weight",
    "ffn_gate.weight",
    "ffn_up.weight",
    "ffn_down.weight",
];

/// A metadata number written as F32 by converters that started from a decimal (1e-6 in a
/// config.json): the shortest decimal that rounds to the f32, as f64. This gives back 1e-6
/// rather than 9.99999997e-7, so that our configs round-trip through GGUF.
fn decimal_f64(v: &GgufValue) -> Option<f64> {
    match v {
        GgufValue::F32(x) => x.to_string().parse().ok(),
        other => other.as_f64(),
    }
}

/// Llama-architecture weights (llama.cpp's tensor names) in our layout, Q/K rows back in HF
/// order. Refuses what our forward pass would get wrong: biases, mixtures of experts, rope
/// scaling, partial rotary, and any tensor outside the llama layout.
pub fn load_llama(file: &GgufFile) -> Result<ModelWeights, ModelError> {
    let path = file.name();
    let arch = file
        .get("general.architecture")
        .ok_or_else(|| ModelError::Config(format!("{path}: no general.architecture metadata")))?;
    let arch = arch.as_str().ok_or_else(|| {
        ModelError::Config(format!("{path}: general.architecture is not a string"))
    })?;
    if arch != "llama" {
        return Err(ModelError::Unsupported(format!(
            "{path}: architecture '{arch}' is not supported; only llama is"
        )));
    }
    let opt_usize = |key: &str| -> Result<Option<usize>, ModelError> {
        match file.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    ModelError::Config(format!(
                        "{path}: metadata '{key}' is {v:?}, not a non-negative integer"
                    ))
                }),
        }
    };
    let req_usize = |key: &str| -> Result<usize, ModelError> {
        opt_usize(key)?
            .ok_or_else(|| ModelError::Config(format!("{path}: metadata '{key}' is missing")))
    };
    let opt_f64 = |key: &str, default: f64| -> Result<f64, ModelError> {
        match file.get(key) {
            None => Ok(default),
            Some(v) => decimal_f64(v).ok_or_else(|| {
                ModelError::Config(format!("{path}: metadata '{key}' is {v:?}, not a number"))
            }),
        }
    };
    let d = req_usize("llama.embedding_length")?;
    let layers = req_usize("llama.block_count")?;
    let ff = req_usize("llama.feed_forward_length")?;
    let heads = req_usize("llama.attention.head_count")?;
    let kv_heads = opt_usize("llama.attention.head_count_kv")?.unwrap_or(heads);
    let base = opt_f64("llama.rope.freq_base", 10000.0)?;
    let eps = opt_f64("llama.attention.layer_norm_rms_epsilon", 1e-5)?;
    if opt_usize("llama.expert_count")?.unwrap_or(0) > 0 {
        return Err(ModelError::Unsupported(format!(
            "{path}: a mixture of experts (llama.expert_count); dense llama only is supported"
        )));
    }
    if let Some(s) = file.get("llama.rope.scaling.type") {
        if s.as_str() != Some("none") {
            return Err(ModelError::Unsupported(format!(
                "{path}: llama.rope.scaling.type is {s:?}; only plain rotary positions are \
                 supported"
            )));
        }
    }
    if let Some(t) = file.tensors.iter().find(|t| t.name.ends_with(".bias")) {
        return Err(ModelError::Unsupported(format!(
            "{path}: tensor '{}' is a bias; only llama layers without biases are supported",
            t.name
        )));
    }
    // Anything else (rope_freqs.weight, MoE or other architectures' tensors) would be ignored
    // silently by the loading below and give a wrong model: refuse it.
    let expected = |name: &str| {
        if matches!(
            name,
            "token_embd.weight" | "output_norm.weight" | "output.weight"
        ) {
            return true;
        }
        let Some((i, suffix)) = name.strip_prefix("blk.").and_then(|s| s.split_once('.')) else {
            return false;
        };
        i.parse::<usize>().is_ok_and(|i| i < layers) && LLAMA_BLOCK_TENSORS.contains(&suffix)
    };
    if let Some(t) = file.tensors.iter().find(|t| !expected(&t.name)) {
        return Err(ModelError::Unsupported(format!(
            "{path}: tensor '{}' is not part of the llama layout this loader reads",
            t.name
        )));
    }

    let embd = file
        .tensor("token_embd.weight")
        .ok_or_else(|| ModelError::Missing("token_embd.weight".into()))?;
    let vocab = match embd.shape()[..] {
        [vocab, _] => vocab,
        _ => {
            return Err(ModelError::Shape {
                tensor: "token_embd.weight".into(),
                expected: format!("[vocab, {d}]"),
                got: format!("{:?}", embd.shape()),
            })
        }
    };
    if let Some(v) = opt_usize("llama.vocab_size")? {
        if v != vocab {
            return Err(ModelError::Shape {
                tensor: "token_embd.weight".into(),
                expected: format!("[{v}, {d}] (llama.vocab_size {v})"),
                got: format!("{:?}", embd.shape()),
            });
        }
    }
    let config = ModelConfig {
        ff_dim: ff,
        norm_eps: eps,
        position: Position::Rotary { base },
        ..ModelConfig::llama_like(layers, d, heads, kv_heads, vocab)
    };
    config.validate()?;
    let hd = config.head_dim();
    if let Some(rd) = opt_usize("llama.rope.dimension_count")? {
        if rd != hd {
            return Err(ModelError::Unsupported(format!(
                "{path}: llama.rope.dimension_count {rd} differs from head_dim {hd}: partial \
                 rotary embeddings are not supported"
            )));
        }
    }

    let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, ModelError> {
        let info = file
            .tensor(name)
            .ok_or_else(|| ModelError::Missing(name.to_string()))?;
        if info.shape() != shape {
            return Err(ModelError::Shape {
                tensor: name.to_string(),
                expected: format!("{shape:?}"),
                got: format!("{:?}", info.shape()),
            });
        }
        file.tensor_f32(name)
    };
    let linear = |name: &str, out_dim: usize, in_dim: usize| -> Result<Linear, ModelError> {
        Ok(Linear {
            weight: get(name, &[out_dim, in_dim])?,
            bias: None,
            out_dim,
            in_dim,
        })
    };
    let rms = |name: &str| -> Result<Norm, ModelError> {
        Ok(Norm {
            gamma: get(name, &[d])?,
            beta: None,
        })
    };
    let (q_rows, kv_rows) = (heads * hd, kv_heads * hd);
    let mut blocks = Vec::new();
    for i in 0..layers {
        let p = |s: &str| format!("blk.{i}.{s}");
        let mut q = linear(&p("attn_q.weight"), q_rows, d)?;
        q.weight = unpermute_rows_from_gguf(&q.weight, q_rows, d, heads)?;
        let mut k = linear(&p("attn_k.weight"), kv_rows, d)?;
        k.weight = unpermute_rows_from_gguf(&k.weight, kv_rows, d, kv_heads)?;
        blocks.push(LayerWeights {
            attn_norm: rms(&p("attn_norm.weight"))?,
            q,
            k,
            v: linear(&p("attn_v.weight"), kv_rows, d)?,
            o: linear(&p("attn_output.weight"), d, q_rows)?,
            ffn_norm: rms(&p("ffn_norm.weight"))?,
            up: linear(&p("ffn_up.weight"), ff, d)?,
            gate: Some(linear(&p("ffn_gate.weight"), ff, d)?),
            down: linear(&p("ffn_down.weight"), d, ff)?,
        });
    }
    let lm_head = match file.tensor("output.weight") {
        Some(_) => LmHead::Separate(get("output.weight", &[vocab, d])?),
        None => LmHead::Tied,
    };
    let weights = ModelWeights {
        token_embedding: Some(get("token_embd.weight", &[vocab, d])?),
        position_embedding: None,
        embed_norm: None,
        layers: blocks,
        final_norm: Some(rms("output_norm.weight")?),
        lm_head,
        config,
    };
    weights.validate()?;
    Ok(weights)
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

struct WrittenTensor {
    name: String,
    dims: Vec<u64>,
    dtype: GgmlType,
    bytes: Vec<u8>,
}

/// Builds a GGUF v3 file in memory: metadata, then tensors quantised on the way in.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, GgufValue)>,
    tensors: Vec<WrittenTensor>,
}

fn check_array(v: &GgufValue, depth: usize) -> Result<(), String> {
    let GgufValue::Array(items) = v else {
        return Ok(());
    };
    if depth >= MAX_ARRAY_DEPTH {
        return Err(format!(
            "arrays nested deeper than {MAX_ARRAY_DEPTH} levels"
        ));
    }
    if let Some(first) = items.first() {
        if let Some(other) = items.iter().find(|i| i.type_id() != first.type_id()) {
            return Err(format!(
                "an array mixes value types {} and {}; GGUF arrays hold one type",
                first.type_id(),
                other.type_id()
            ));
        }
    }
    items.iter().try_for_each(|i| check_array(i, depth + 1))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A value's payload (without its type id).
fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
    use GgufValue::*;
    match v {
        U8(x) => out.push(*x),
        I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Bool(x) => out.push(u8::from(*x)),
        String(s) => put_str(out, s),
        Array(items) => {
            // An empty array's element type is not recoverable; u8 is as good as any.
            let ty = items.first().map_or(0, GgufValue::type_id);
            out.extend_from_slice(&ty.to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            items.iter().for_each(|i| put_value(out, i));
        }
        U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

impl GgufWriter {
    /// An empty file (no metadata, no tensors).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets a metadata key (replacing an earlier value, so callers can override what
    /// [`llama_writer`] wrote). Refuses arrays mixing types or nested too deeply, and a
    /// `general.alignment` that is not a power-of-two U32, since the file could not hold them.
    pub fn meta(&mut self, key: &str, value: GgufValue) -> Result<&mut Self, ModelError> {
        let bad = |m: String| ModelError::Unsupported(format!("GGUF metadata '{key}': {m}"));
        check_array(&value, 0).map_err(bad)?;
        if key == "general.alignment" && !matches!(value, GgufValue::U32(a) if a.is_power_of_two())
        {
            return Err(bad(format!("must be a power-of-two U32, got {value:?}")));
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        Ok(self)
    }

    fn alignment(&self) -> u64 {
        match self.metadata.iter().find(|(k, _)| k == "general.alignment") {
            Some((_, GgufValue::U32(a))) => u64::from(*a),
            _ => DEFAULT_ALIGNMENT,
        }
    }

    /// Checks name and shape; returns the dims (innermost first) and the value count.
    fn check_tensor(
        &self,
        name: &str,
        shape: &[usize],
        dtype: GgmlType,
    ) -> Result<(Vec<u64>, usize), ModelError> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(ModelError::Unsupported(format!(
                "GGUF tensor '{name}' is written twice"
            )));
        }
        if shape.len() > MAX_DIMS {
            return Err(ModelError::Unsupported(format!(
                "GGUF tensor '{name}' has {} dimensions; at most {MAX_DIMS}",
                shape.len()
            )));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| ModelError::Shape {
                tensor: name.to_string(),
                expected: "a size that fits in memory".into(),
                got: format!("{shape:?}"),
            })?;
        if let Some((per, _)) = dtype.block() {
            let row = shape.last().copied().unwrap_or(1);
            if !row.is_multiple_of(per) {
                return Err(ModelError::Unsupported(format!(
                    "GGUF tensor '{name}' {shape:?}: {dtype} needs rows of a multiple of {per} \
                     values"
                )));
            }
        }
        Ok((shape.iter().rev().map(|&d| d as u64).collect(), count))
    }

    /// Adds a tensor given row-major (outermost first) `shape`, stored as `dtype`. Refuses
    /// non-finite values, and values whose quantised scales overflow f16.
    pub fn tensor(
        &mut self,
        name: &str,
        shape_row_major: &[usize],
        values: &[f32],
        dtype: GgmlType,
    ) -> Result<&mut Self, ModelError> {
        if !dtype.is_supported() {
            return Err(unsupported_type(dtype, name));
        }
        let (dims, count) = self.check_tensor(name, shape_row_major, dtype)?;
        if count != values.len() {
            return Err(ModelError::Shape {
                tensor: name.to_string(),
                expected: format!("{shape_row_major:?} ({count} values)"),
                got: format!("{} values", values.len()),
            });
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(ModelError::NonFinite(name.to_string()));
        }
        let bytes = quantize(dtype, values)?;
        if dequantize(dtype, &bytes, count)?
            .iter()
            .any(|v| !v.is_finite())
        {
            return Err(ModelError::Unsupported(format!(
                "GGUF tensor '{name}': its values overflow the range of {dtype}"
            )));
        }
        self.tensors.push(WrittenTensor {
            name: name.to_string(),
            dims,
            dtype,
            bytes,
        });
        Ok(self)
    }

    /// Adds a tensor from its stored bytes as they are (hand-built blocks, or types this
    /// module cannot quantise). For supported types the byte count must match the shape;
    /// for the others it is the caller's word.
    pub fn tensor_raw(
        &mut self,
        name: &str,
        shape_row_major: &[usize],
        dtype: GgmlType,
        bytes: &[u8],
    ) -> Result<&mut Self, ModelError> {
        let (dims, count) = self.check_tensor(name, shape_row_major, dtype)?;
        if let Some(want) = dtype.byte_len(count) {
            if want != bytes.len() {
                return Err(ModelError::Shape {
                    tensor: name.to_string(),
                    expected: format!("{want} bytes for {shape_row_major:?} as {dtype}"),
                    got: format!("{} bytes", bytes.len()),
                });
            }
        }
        self.tensors.push(WrittenTensor {
            name: name.to_string(),
            dims,
            dtype,
            bytes: bytes.to_vec(),
        });
        Ok(self)
    }

    /// The file: GGUF v3, every tensor's data aligned (and padded, as llama.cpp pads).
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = self.alignment() as usize;
        let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(align), 0);
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in &self.metadata {
            put_str(&mut out, key);
            out.extend_from_slice(&value.type_id().to_le_bytes());
            put_value(&mut out, value);
        }
        let mut offset = 0usize;
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            t.dims
                .iter()
                .for_each(|d| out.extend_from_slice(&d.to_le_bytes()));
            out.extend_from_slice(&t.dtype.id().to_le_bytes());
            out.extend_from_slice(&(offset as u64).to_le_bytes());
            offset = (offset + t.bytes.len()).next_multiple_of(align);
        }
        pad(&mut out);
        for t in &self.tensors {
            out.extend_from_slice(&t.bytes);
            pad(&mut out);
        }
        out
    }
}

/// A writer holding llama-shaped `weights` as llama.cpp lays them out: the `llama.*`
/// hyperparameters, Q and K rows permuted as the converter does, norms in F32 (as llama.cpp
/// keeps them), matrices as `dtype`, `output.weight` only for a separate head. No tokenizer
/// or `llama.context_length` metadata: callers that want llama.cpp to run the file add them
/// with [`GgufWriter::meta`] before [`GgufWriter::to_bytes`].
pub fn llama_writer(weights: &ModelWeights, dtype: GgmlType) -> Result<GgufWriter, ModelError> {
    weights.validate()?;
    let c = &weights.config;
    let refuse = |what: &str| {
        Err(ModelError::Unsupported(format!(
            "cannot write these weights as a llama GGUF: {what}"
        )))
    };
    if !dtype.is_supported() {
        return Err(unsupported_type(dtype, "(llama matrices)"));
    }
    if c.norm != NormKind::RmsNorm {
        return refuse("llama uses RMS norm, these weights layer norm");
    }
    if c.activation != FfnActivation::SwiGlu {
        return refuse("llama uses a SwiGLU feed-forward");
    }
    if c.layout != Layout::PreNorm || weights.embed_norm.is_some() {
        return refuse("llama is pre-norm");
    }
    let Position::Rotary { base } = c.position else {
        return refuse("llama uses rotary positions");
    };
    if weights.position_embedding.is_some() {
        return refuse("llama has no learned positions");
    }
    if !c.causal {
        return refuse("llama is causal");
    }
    let has_bias = weights.layers.iter().any(|l| {
        [&l.q, &l.k, &l.v, &l.o, &l.up, &l.down]
            .into_iter()
            .chain(l.gate.as_ref())
            .any(|lin| lin.bias.is_some())
            || l.attn_norm.beta.is_some()
            || l.ffn_norm.beta.is_some()
    });
    if c.bias || has_bias {
        return refuse("llama layers have no biases");
    }
    let (Some(embedding), Some(final_norm)) = (&weights.token_embedding, &weights.final_norm)
    else {
        return refuse("llama needs a token embedding and a final norm");
    };
    if final_norm.beta.is_some() {
        return refuse("llama's final norm has no bias");
    }
    let u32_of = |name: &str, v: usize| {
        u32::try_from(v).map(GgufValue::U32).map_err(|_| {
            ModelError::Unsupported(format!("{name} {v} does not fit GGUF's u32 field"))
        })
    };
    let (d, hd) = (c.d_model, c.head_dim());
    let mut w = GgufWriter::new();
    w.meta("general.architecture", GgufValue::String("llama".into()))?;
    w.meta("llama.vocab_size", u32_of("vocab", c.vocab)?)?;
    w.meta("llama.embedding_length", u32_of("d_model", d)?)?;
    w.meta("llama.block_count", u32_of("layers", c.layers)?)?;
    w.meta("llama.feed_forward_length", u32_of("ff_dim", c.ff_dim)?)?;
    w.meta("llama.attention.head_count", u32_of("heads", c.heads)?)?;
    w.meta(
        "llama.attention.head_count_kv",
        u32_of("kv_heads", c.kv_heads)?,
    )?;
    w.meta("llama.rope.dimension_count", u32_of("head_dim", hd)?)?;
    w.meta("llama.rope.freq_base", GgufValue::F32(base as f32))?;
    w.meta(
        "llama.attention.layer_norm_rms_epsilon",
        GgufValue::F32(c.norm_eps as f32),
    )?;
    let f32t = GgmlType::F32;
    w.tensor("token_embd.weight", &[c.vocab, d], embedding, dtype)?;
    w.tensor("output_norm.weight", &[d], &final_norm.gamma, f32t)?;
    match &weights.lm_head {
        LmHead::Separate(e) => {
            w.tensor("output.weight", &[c.vocab, d], e, dtype)?;
        }
        LmHead::Tied => {}
        LmHead::None => return refuse("llama has a language-model head"),
    }
    for (i, l) in weights.layers.iter().enumerate() {
        let p = |s: &str| format!("blk.{i}.{s}");
        let lin = |w: &mut GgufWriter, name: &str, l: &Linear| {
            w.tensor(&p(name), &[l.out_dim, l.in_dim], &l.weight, dtype)
                .map(|_| ())
        };
        let Some(gate) = &l.gate else {
            return refuse("llama's feed-forward has a gate");
        };
        let q = permute_rows_for_gguf(&l.q.weight, l.q.out_dim, l.q.in_dim, c.heads)?;
        let k = permute_rows_for_gguf(&l.k.weight, l.k.out_dim, l.k.in_dim, c.kv_heads)?;
        w.tensor(&p("attn_norm.weight"), &[d], &l.attn_norm.gamma, f32t)?;
        w.tensor(&p("attn_q.weight"), &[l.q.out_dim, l.q.in_dim], &q, dtype)?;
        w.tensor(&p("attn_k.weight"), &[l.k.out_dim, l.k.in_dim], &k, dtype)?;
        lin(&mut w, "attn_v.weight", &l.v)?;
        lin(&mut w, "attn_output.weight", &l.o)?;
        w.tensor(&p("ffn_norm.weight"), &[d], &l.ffn_norm.gamma, f32t)?;
        lin(&mut w, "ffn_gate.weight", gate)?;
        lin(&mut w, "ffn_up.weight", &l.up)?;
        lin(&mut w, "ffn_down.weight", &l.down)?;
    }
    Ok(w)
}

/// [`llama_writer`]'s file as bytes.
pub fn write_llama(weights: &ModelWeights, dtype: GgmlType) -> Result<Vec<u8>, ModelError> {
    Ok(llama_writer(weights, dtype)?.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_the_converter_and_inverts() {
        // One head of 4 rows (hd 4, pairs (0, 2) and (1, 3) in HF order): the converter's
        // reshape(1, 2, 2, 1).swapaxes(1, 2) orders the rows 0, 2, 1, 3.
        let hf = [10.0, 11.0, 12.0, 13.0];
        assert_eq!(
            permute_rows_for_gguf(&hf, 4, 1, 1).unwrap(),
            [10.0, 12.0, 11.0, 13.0]
        );
        // Several heads and columns: both directions invert each other.
        let (rows, in_dim, n_head) = (24, 3, 3);
        let w: Vec<f32> = (0..rows * in_dim).map(|i| i as f32).collect();
        let g = permute_rows_for_gguf(&w, rows, in_dim, n_head).unwrap();
        assert_ne!(g, w);
        assert_eq!(
            unpermute_rows_from_gguf(&g, rows, in_dim, n_head).unwrap(),
            w
        );
        let u = unpermute_rows_from_gguf(&w, rows, in_dim, n_head).unwrap();
        assert_eq!(permute_rows_for_gguf(&u, rows, in_dim, n_head).unwrap(), w);
        // Head 1, second half, i = 2 (HF row 8 + 4 + 2 = 14) lands at GGUF row 8 + 4 + 1 = 13.
        assert_eq!(g[13 * in_dim..14 * in_dim], w[14 * in_dim..15 * in_dim]);
        // Shapes that do not split into heads of pairs are errors, not panics.
        assert!(permute_rows_for_gguf(&w, rows, in_dim, 5).is_err());
        assert!(permute_rows_for_gguf(&w, rows, in_dim, 0).is_err());
        assert!(permute_rows_for_gguf(&w[1..], rows, in_dim, n_head).is_err());
    }

    #[test]
    fn value_min_bytes_covers_every_type() {
        for ty in 0..=12 {
            assert!(value_min_bytes(ty).is_some(), "type {ty}");
        }
        assert_eq!(value_min_bytes(13), None);
    }
}
