// Small data-movement and element-wise kernels of the forward pass: head split/merge,
// embeddings, add, multiply, and gathers of probe rows. One invocation per output element,
// on a 2D grid of workgroups (see flat_workgroup). Arithmetic in f32, storage in T.

struct Params {
    total: u32,
    a: u32,
    b: u32,
    c: u32,
    d: u32,
    e: u32,
    f: u32,
    g: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
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
// a = n, b = heads, c = hd, d = stride, e = offset.
@compute @workgroup_size(WG)
fn split_heads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.c;
    let i = (o / p.c) % p.a;
    let h = (o / (p.c * p.a)) % p.b;
    let bt = o / (p.c * p.a * p.b);
    dst[o] = src[(bt * p.a + i) * p.d + p.e + h * p.c + t];
}

// [batch, heads, n, hd] -> [batch, n, heads * hd]. a = n, b = heads, c = hd.
@compute @workgroup_size(WG)
fn merge_heads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.c;
    let h = (o / p.c) % p.b;
    let i = (o / (p.c * p.b)) % p.a;
    let bt = o / (p.c * p.b * p.a);
    dst[o] = src[((bt * p.b + h) * p.a + i) * p.c + t];
}

// Rows [batch * n, d]: the token's embedding row (flag bit 0; else the input row itself)
// plus the learned position embedding (flag bit 1). a = n, b = d, c = flags.
@compute @workgroup_size(WG)
fn embed(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.b;
    let r = o / p.b;
    var v: f32;
    if (p.c & 1u) != 0u {
        v = f32(src[idx[r] * p.b + t]);
    } else {
        v = f32(src[o]);
    }
    if (p.c & 2u) != 0u {
        v += f32(src2[(r % p.a) * p.b + t]);
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
    if o >= p.total {
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
    if o >= p.total {
        return;
    }
    dst[o] = T(f32(src[o]) * f32(src2[o]));
}

// Rows idx[0..probes] of each batch of src [batch, n, d] into dst[offset..] as
// [batch, probes, d]. a = n, b = probes, c = d, d = offset.
@compute @workgroup_size(WG)
fn gather_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let t = o % p.c;
    let j = (o / p.c) % p.b;
    let bt = o / (p.c * p.b);
    dst[p.d + o] = src[(bt * p.a + idx[j]) * p.c + t];
}

// n_eff and entropy of the attention stats [batch * heads, n, 3] (lse, n_eff, entropy) at
// rows idx[0..probes], into dst_f32[offset..] as [batch * heads, probes, 2].
// a = n, b = probes, d = offset.
@compute @workgroup_size(WG)
fn gather_stats(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let o = element(wg, nwg, li);
    if o >= p.total {
        return;
    }
    let k = o % 2u;
    let j = (o / 2u) % p.b;
    let bh = o / (2u * p.b);
    dst_f32[p.d + o] = stats[(bh * p.a + idx[j]) * 3u + 1u + k];
}
