//! Data movement and element-wise kernels of the forward pass (shaders/elementwise.wgsl):
//! head split/merge, embeddings, add, multiply, and gathers of probe rows.

use ceiling_core::kernel::ShapeError;
use ceiling_shaders::{Family, Precision, Variant};

use super::bindings::{params, Binding, Kernel, Params};
use super::{check_tensor, row_grid};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const WG: u32 = 64;

params! {
    /// The params of `split_heads`.
    pub struct SplitHeadsParams {
        pub total: u32,
        pub n: u32,
        pub heads: u32,
        pub hd: u32,
        pub stride: u32,
        pub offset: u32,
        pub _pad0: u32,
        pub _pad1: u32,
    }
}

params! {
    /// The params of `merge_heads`.
    pub struct MergeHeadsParams {
        pub total: u32,
        pub n: u32,
        pub heads: u32,
        pub hd: u32,
    }
}

params! {
    /// The params of `embed`.
    pub struct EmbedParams {
        pub total: u32,
        pub n: u32,
        pub d: u32,
        /// bit 0: rows of the token table (else the input rows), bit 1: add positions.
        pub flags: u32,
    }
}

params! {
    /// The params of `add` and `mul`.
    pub struct BinaryParams {
        pub total: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

params! {
    /// The params of `gather_rows`.
    pub struct GatherRowsParams {
        pub total: u32,
        pub n: u32,
        pub probes: u32,
        pub d: u32,
        pub offset: u32,
        pub _pad0: u32,
        pub _pad1: u32,
        pub _pad2: u32,
    }
}

params! {
    /// The params of `gather_stats`.
    pub struct GatherStatsParams {
        pub total: u32,
        pub n: u32,
        pub probes: u32,
        pub offset: u32,
    }
}

// The storage bindings of elementwise.wgsl; each kernel binds the ones it uses.
const SRC: Binding = Binding::read(1, "src");
const SRC2: Binding = Binding::read(2, "src2");
const DST: Binding = Binding::read_write(3, "dst");
const IDX: Binding = Binding::read(4, "idx");
const STATS: Binding = Binding::read(5, "stats");
const DST_F32: Binding = Binding::read_write(6, "dst_f32");

pub static SPLIT_HEADS: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "split_heads",
    params: SplitHeadsParams::LAYOUT,
    bindings: &[Binding::uniform(0, "split_heads_params"), SRC, DST],
};

pub static MERGE_HEADS: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "merge_heads",
    params: MergeHeadsParams::LAYOUT,
    bindings: &[Binding::uniform(0, "merge_heads_params"), SRC, DST],
};

/// src: the token table or the input rows; src2: the position table; idx: the token ids.
pub static EMBED: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "embed",
    params: EmbedParams::LAYOUT,
    bindings: &[Binding::uniform(0, "embed_params"), SRC, SRC2, DST, IDX],
};

const BINARY_PARAMS: Binding = Binding::uniform(0, "binary_params");

pub static ADD: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "add",
    params: BinaryParams::LAYOUT,
    bindings: &[BINARY_PARAMS, SRC, SRC2, DST],
};

pub static MUL: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "mul",
    params: BinaryParams::LAYOUT,
    bindings: &[BINARY_PARAMS, SRC, SRC2, DST],
};

/// idx: the probe rows.
pub static GATHER_ROWS: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "gather_rows",
    params: GatherRowsParams::LAYOUT,
    bindings: &[Binding::uniform(0, "gather_rows_params"), SRC, DST, IDX],
};

/// idx: the probe rows.
pub static GATHER_STATS: Kernel = Kernel {
    families: &[Family::Elementwise],
    entry: "gather_stats",
    params: GatherStatsParams::LAYOUT,
    bindings: &[
        Binding::uniform(0, "gather_stats_params"),
        IDX,
        STATS,
        DST_F32,
    ],
};

/// A u32 array on the GPU: token ids or probe positions.
pub struct Indices {
    pub buffer: wgpu::Buffer,
    pub len: usize,
}

impl Indices {
    pub fn upload(gpu: &Gpu, what: &str, data: &[u32]) -> Indices {
        // Bindings need at least 4 bytes.
        let padded: Vec<u32> = if data.is_empty() {
            vec![0]
        } else {
            data.to_vec()
        };
        // Created unmapped and written through the queue: a buffer the device cannot
        // allocate is an error reported with the next results (wgpu's create_buffer_init
        // panics on it instead).
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: (padded.len() as u64).saturating_mul(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue
            .write_buffer(&buffer, 0, bytemuck::cast_slice(&padded));
        Indices {
            buffer,
            len: data.len(),
        }
    }
}

fn invalid(m: String) -> HostError {
    ShapeError::Invalid(m).into()
}

/// Dispatches one invocation per output element (`total` of them) of `kernel`.
fn launch<P: Params>(
    gpu: &Gpu,
    kernel: &'static Kernel,
    precision: Precision,
    total: u32,
    params: &P,
    buffers: &[wgpu::BufferBinding<'_>],
) -> Result<()> {
    for b in buffers {
        let size = b.size.map_or(b.buffer.size(), |s| s.get());
        if size > gpu.max_binding() {
            return Err(HostError::Limit {
                what: format!("a binding of {}", kernel.entry),
                need: size,
                max: gpu.max_binding(),
                fix: "run fewer samples per batch",
            });
        }
    }
    let pipeline = kernel.pipeline(
        gpu,
        Variant::new(Family::Elementwise, precision),
        &[("WG", WG)],
    )?;
    let groups = (total as usize).div_ceil(WG as usize);
    pipeline.dispatch(
        gpu,
        params,
        buffers,
        row_grid(groups, gpu.limits.max_compute_workgroups_per_dimension),
    )
}

fn total(what: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| invalid(format!("{what}: {n} elements exceed 2^32 per call")))
}

/// x [batch, n, stride], columns offset..offset + heads * hd -> out [batch, heads, n, hd].
#[allow(clippy::too_many_arguments)]
pub fn split_heads(
    gpu: &Gpu,
    x: &Tensor,
    batch: usize,
    n: usize,
    heads: usize,
    hd: usize,
    stride: usize,
    offset: usize,
    out: &Tensor,
) -> Result<()> {
    let p = out.precision;
    if offset + heads * hd > stride {
        return Err(invalid(format!(
            "split_heads: columns {offset}..{} exceed the row of {stride}",
            offset + heads * hd
        )));
    }
    check_tensor("x", x, batch * n * stride, p)?;
    check_tensor("out", out, batch * heads * n * hd, p)?;
    let t = total("split_heads", out.len)?;
    let params = SplitHeadsParams {
        total: t,
        n: n as u32,
        heads: heads as u32,
        hd: hd as u32,
        stride: stride as u32,
        offset: offset as u32,
        ..Default::default()
    };
    launch(
        gpu,
        &SPLIT_HEADS,
        p,
        t,
        &params,
        &[x.binding(), out.binding()],
    )
}

/// x [batch, heads, n, hd] -> out [batch, n, heads * hd].
pub fn merge_heads(
    gpu: &Gpu,
    x: &Tensor,
    batch: usize,
    n: usize,
    heads: usize,
    hd: usize,
    out: &Tensor,
) -> Result<()> {
    let p = out.precision;
    check_tensor("x", x, batch * heads * n * hd, p)?;
    check_tensor("out", out, batch * heads * n * hd, p)?;
    let t = total("merge_heads", out.len)?;
    let params = MergeHeadsParams {
        total: t,
        n: n as u32,
        heads: heads as u32,
        hd: hd as u32,
    };
    launch(
        gpu,
        &MERGE_HEADS,
        p,
        t,
        &params,
        &[x.binding(), out.binding()],
    )
}

/// Where the rows of [`embed`] come from.
pub enum EmbedSource<'a> {
    /// Rows of `table` [vocab, d] picked by `ids` [rows].
    Tokens { table: &'a Tensor, ids: &'a Indices },
    /// The input rows [rows, d] themselves.
    Vectors(&'a Tensor),
}

/// out [rows, d] = source row + positions[row % n] (when given, [>= n, d]).
pub fn embed(
    gpu: &Gpu,
    source: EmbedSource<'_>,
    positions: Option<&Tensor>,
    n: usize,
    d: usize,
    out: &Tensor,
) -> Result<()> {
    let p = out.precision;
    if d == 0 || n == 0 || !out.len.is_multiple_of(n * d) {
        return Err(invalid(format!(
            "embed: {} output elements do not form sequences of {n} rows of {d}",
            out.len
        )));
    }
    let rows = out.len / d;
    let dummy_ids;
    let (src, ids, tokens) = match source {
        EmbedSource::Tokens { table, ids } => {
            if !table.len.is_multiple_of(d) || table.precision != p {
                return Err(invalid(format!(
                    "embed: the token table ({} elements at {}) is not [vocab, {d}] at {p}",
                    table.len, table.precision
                )));
            }
            if ids.len != rows {
                return Err(invalid(format!("embed: {} ids for {rows} rows", ids.len)));
            }
            (table, ids, 1u32)
        }
        EmbedSource::Vectors(x) => {
            check_tensor("x", x, out.len, p)?;
            dummy_ids = Indices::upload(gpu, "unused", &[]);
            (x, &dummy_ids, 0)
        }
    };
    if let Some(pos) = positions {
        if pos.len < n * d || pos.precision != p {
            return Err(invalid(format!(
                "embed: position table of {} elements at {} cannot cover {n} positions of {d} at {p}",
                pos.len, pos.precision
            )));
        }
    }
    let flags = tokens | (positions.is_some() as u32) << 1;
    let t = total("embed", out.len)?;
    let dummy = gpu.unused_input(p)?;
    let params = EmbedParams {
        total: t,
        n: n as u32,
        d: d as u32,
        flags,
    };
    launch(
        gpu,
        &EMBED,
        p,
        t,
        &params,
        &[
            src.binding(),
            positions.unwrap_or(&dummy).binding(),
            out.binding(),
            ids.buffer.as_entire_buffer_binding(),
        ],
    )
}

fn binary(gpu: &Gpu, kernel: &'static Kernel, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    let p = out.precision;
    check_tensor("a", a, out.len, p)?;
    check_tensor("b", b, out.len, p)?;
    let t = total(kernel.entry, out.len)?;
    let params = BinaryParams {
        total: t,
        ..Default::default()
    };
    launch(
        gpu,
        kernel,
        p,
        t,
        &params,
        &[a.binding(), b.binding(), out.binding()],
    )
}

/// out = a + b (out must be a third tensor).
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(gpu, &ADD, a, b, out)
}

/// out = a * b element-wise (out must be a third tensor).
pub fn mul(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(gpu, &MUL, a, b, out)
}

/// Rows `probes` of each sequence of x [batch, n, d] into out[offset..] as [batch, probes, d].
#[allow(clippy::too_many_arguments)]
pub fn gather_rows(
    gpu: &Gpu,
    x: &Tensor,
    batch: usize,
    n: usize,
    d: usize,
    probes: &Indices,
    out: &Tensor,
    offset: usize,
) -> Result<()> {
    let p = out.precision;
    check_tensor("x", x, batch * n * d, p)?;
    let len = batch * probes.len * d;
    if offset + len > out.len || out.precision != p {
        return Err(invalid(format!(
            "gather_rows: {len} rows' elements at offset {offset} exceed the output of {}",
            out.len
        )));
    }
    let t = total("gather_rows", len)?;
    let params = GatherRowsParams {
        total: t,
        n: n as u32,
        probes: probes.len as u32,
        d: d as u32,
        offset: offset as u32,
        ..Default::default()
    };
    launch(
        gpu,
        &GATHER_ROWS,
        p,
        t,
        &params,
        &[
            x.binding(),
            out.binding(),
            probes.buffer.as_entire_buffer_binding(),
        ],
    )
}

/// n_eff and entropy of attention stats [batch_heads, n, 3] (f32, from
/// `kernels::attention`) at rows `probes`, into out[offset..] as [batch_heads, probes, 2].
pub fn gather_stats(
    gpu: &Gpu,
    stats: &Tensor,
    batch_heads: usize,
    n: usize,
    probes: &Indices,
    out: &Tensor,
    offset: usize,
) -> Result<()> {
    check_tensor("stats", stats, batch_heads * n * 3, Precision::F32)?;
    let len = batch_heads * probes.len * 2;
    if offset + len > out.len || out.precision != Precision::F32 {
        return Err(invalid(format!(
            "gather_stats: {len} values at offset {offset} exceed the f32 output of {}",
            out.len
        )));
    }
    let t = total("gather_stats", len)?;
    // The pipeline's T is irrelevant here: only f32 buffers are touched.
    let params = GatherStatsParams {
        total: t,
        n: n as u32,
        probes: probes.len as u32,
        offset: offset as u32,
    };
    launch(
        gpu,
        &GATHER_STATS,
        Precision::F32,
        t,
        &params,
        &[
            probes.buffer.as_entire_buffer_binding(),
            stats.binding(),
            out.binding(),
        ],
    )
}
