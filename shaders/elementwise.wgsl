// Small data-movement and element-wise kernels of the forward pass: head split/merge,
// embeddings, add, multiply, and gathers of probe rows. One invocation per output element,
// on a 2D grid of workgroups (see flat_workgroup). Arithmetic in f32, storage in T.

// Each kernel has its own params struct, all at binding 0 (no entry point uses two of them;
// the binding tables are in crates/host/src/kernels/elementwise.rs). `total` is the number of
// output elements, one invocation each.

// [batch, n, stride] (heads * hd columns from `offset`) -> [batch, heads, n, hd].
struct SplitHeadsParams {
    total: u32,
    n: u32,
    heads: u32,
    hd: u32,
    stride: u32,
    offset: u32,
    _pad0: u32,
    _pad1: u32,
}

// [batch, heads, n, hd] -> [batch, n, heads * hd].
struct MergeHeadsParams {
    total: u32,
    n: u32,
    heads: u32,
    hd: u32,
}

// Rows [batch * n, d]; flags bit 0: rows of the token table (else the input rows), bit 1:
// add the position embedding.
struct EmbedParams {
    total: u32,
    n: u32,
    d: u32,
    flags: u32,
}

// add and mul.
struct BinaryParams {
    total: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Rows idx[0..probes] of each sequence of n rows of d, written from `offset`.
struct GatherRowsParams {
    total: u32,
    n: u32,
    probes: u32,
    d: u32,
    offset: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Stats rows idx[0..probes] of each sequence of n rows, written from `offset`.
struct GatherStatsParams {
    total: u32,
    n: u32,
    probes: u32,
    offset: u32,
}

@group(0) @binding(0) var<uniform> split_heads_params: SplitHeadsParams;
@group(0) @binding(0) var<uniform> merge_heads_params: MergeHeadsParams;
@group(0) @binding(0) var<uniform> embed_params: EmbedParams;
@group(0) @binding(0) var<uniform> binary_params: BinaryParams;
@group(0) @binding(0) var<uniform> gather_rows_params: GatherRowsParams;
@group(0) @binding(0) var<uniform> gather_stats_params: GatherStatsParams;
@group(0) @binding(1) var<storage, read> src: array<T>;
@group(0) @binding(2) var<storage, read> src2: array<T>;
@group(0) @binding(3) var<storage, read_write> dst: array<T>;
@group(0) @binding(4) var<storage, read> idx: array<u32>;
@group(0) @binding(5) var<storage, read> stats: array<f32>;
@group(0) @binding(6) var<storage, read_write> dst_f32: array<f32>;

override WG: u32 = 64u;

fn element(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return flat_workgroup(wg, nwg) * WG + li;
}

// [batch, n, stride] (heads * hd columns from `offset`) -> [batch, heads, n, hd].
@compute @workgroup_size(WG)
fn split_heads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p = split_heads_params;
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.hd;
    let i = (o / p.hd) % p.n;
    let h = (o / (p.hd * p.n)) % p.heads;
    let bt = o / (p.hd * p.n * p.heads);
    dst[o] = src[(bt * p.n + i) * p.stride + p.offset + h * p.hd + t];
}

// [batch, heads, n, hd] -> [batch, n, heads * hd].
@compute @workgroup_size(WG)
fn merge_heads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p = merge_heads_params;
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.hd;
    let h = (o / p.hd) % p.heads;
    let i = (o / (p.hd * p.heads)) % p.n;
    let bt = o / (p.hd * p.heads * p.n);
    dst[o] = src[((bt * p.heads + h) * p.n + i) * p.hd + t];
}

// Rows [batch * n, d]: the token's embedding row (flag bit 0; else the input row itself)
// plus the learned position embedding (flag bit 1).
@compute @workgroup_size(WG)
fn embed(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p = embed_params;
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.d;
    let r = o / p.d;
    var v: f32;
    if (p.flags & 1u) != 0u {
        v = f32(src[idx[r] * p.d + t]);
    } else {
        v = f32(src[o]);
    }
    if (p.flags & 2u) != 0u {
        v += f32(src2[(r % p.n) * p.d + t]);
    }
    dst[o] = T(v);
}

@compute @workgroup_size(WG)
fn add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= binary_params.total {
        return;
    }
    dst[o] = T(f32(src[o]) + f32(src2[o]));
}

@compute @workgroup_size(WG)
fn mul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= binary_params.total {
        return;
    }
    dst[o] = T(f32(src[o]) * f32(src2[o]));
}

// Rows idx[0..probes] of each batch of src [batch, n, d] into dst[offset..] as
// [batch, probes, d].
@compute @workgroup_size(WG)
fn gather_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p = gather_rows_params;
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.d;
    let j = (o / p.d) % p.probes;
    let bt = o / (p.d * p.probes);
    dst[p.offset + o] = src[(bt * p.n + idx[j]) * p.d + t];
}

// n_eff and entropy of the attention stats [batch * heads, n, 3] (lse, n_eff, entropy) at
// rows idx[0..probes], into dst_f32[offset..] as [batch * heads, probes, 2].
@compute @workgroup_size(WG)
fn gather_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let p = gather_stats_params;
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let k = o % 2u;
    let j = (o / 2u) % p.probes;
    let bh = o / (2u * p.probes);
    dst_f32[p.offset + o] = stats[(bh * p.n + idx[j]) * 3u + 1u + k];
}
