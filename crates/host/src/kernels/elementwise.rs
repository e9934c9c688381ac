//! Data movement and element-wise kernels of the forward pass (shaders/elementwise.wgsl):
//! head split/merge, embeddings, add, multiply, and gathers of probe rows.

use ceiling_core::kernel::ShapeError;
use ceiling_shaders::{Family, Precision, Variant};

use super::{check_tensor, row_grid, words};
use crate::error::{HostError, Result};
use crate::gpu::Gpu;
use crate::tensor::Tensor;

const WG: u32 = 64;

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

fn launch(
    gpu: &Gpu,
    entry: &'static str,
    precision: Precision,
    params: [u32; 8],
    bindings: &[(u32, wgpu::BufferBinding<'_>)],
) -> Result<()> {
    for (_, b) in bindings {
        let size = b.size.map_or(b.buffer.size(), |s| s.get());
        if size > gpu.max_binding() {
            return Err(HostError::Limit {
                what: format!("a binding of {entry}"),
                need: size,
                max: gpu.max_binding(),
                fix: "run fewer samples per batch",
            });
        }
    }
    let pipeline = gpu.pipeline(
        Variant::new(Family::Elementwise, precision),
        entry,
        &[("WG", WG)],
    )?;
    let groups = (params[0] as usize).div_ceil(WG as usize);
    gpu.dispatch(
        &pipeline,
        &words(&params),
        bindings,
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
    launch(
        gpu,
        "split_heads",
        p,
        [
            t,
            n as u32,
            heads as u32,
            hd as u32,
            stride as u32,
            offset as u32,
            0,
            0,
        ],
        &[(1, x.binding()), (3, out.binding())],
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
    launch(
        gpu,
        "merge_heads",
        p,
        [t, n as u32, heads as u32, hd as u32, 0, 0, 0, 0],
        &[(1, x.binding()), (3, out.binding())],
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
    launch(
        gpu,
        "embed",
        p,
        [t, n as u32, d as u32, flags, 0, 0, 0, 0],
        &[
            (1, src.binding()),
            (2, positions.unwrap_or(&dummy).binding()),
            (3, out.binding()),
            (4, ids.buffer.as_entire_buffer_binding()),
        ],
    )
}

fn binary(gpu: &Gpu, entry: &'static str, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    let p = out.precision;
    check_tensor("a", a, out.len, p)?;
    check_tensor("b", b, out.len, p)?;
    let t = total(entry, out.len)?;
    launch(
        gpu,
        entry,
        p,
        [t, 0, 0, 0, 0, 0, 0, 0],
        &[(1, a.binding()), (2, b.binding()), (3, out.binding())],
    )
}

/// out = a + b (out must be a third tensor).
pub fn add(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(gpu, "add", a, b, out)
}

/// out = a * b element-wise (out must be a third tensor).
pub fn mul(gpu: &Gpu, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<()> {
    binary(gpu, "mul", a, b, out)
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
    launch(
        gpu,
        "gather_rows",
        p,
        [
            t,
            n as u32,
            probes.len as u32,
            d as u32,
            offset as u32,
            0,
            0,
            0,
        ],
        &[
            (1, x.binding()),
            (3, out.binding()),
            (4, probes.buffer.as_entire_buffer_binding()),
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
    launch(
        gpu,
        "gather_stats",
        Precision::F32,
        [t, n as u32, probes.len as u32, 0, offset as u32, 0, 0, 0],
        &[
            (4, probes.buffer.as_entire_buffer_binding()),
            (5, stats.binding()),
            (6, out.binding()),
        ],
    )
}
