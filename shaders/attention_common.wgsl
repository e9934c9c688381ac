// What the fused attention kernels share: parameters, bindings, the mask, and the per-row
// statistics. Prepended to attention.wgsl, attention_rows.wgsl and attention_subgroup.wgsl.

struct AttentionParams {
    heads: u32,
    kv_heads: u32,
    n_q: u32,
    n_kv: u32,
    head_dim: u32,
    scale: f32,
    causal: u32,
    // bit 0: key mask present, bit 1: write stats
    flags: u32,
    // Offsets of this dispatch in the grid (query tiles, heads, batch), which is split when
    // a dimension exceeds the adapter's workgroups per dimension.
    tile_base: u32,
    head_base: u32,
    batch_base: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q: array<T>;
@group(0) @binding(2) var<storage, read> k: array<T>;
@group(0) @binding(3) var<storage, read> v: array<T>;
@group(0) @binding(4) var<storage, read> key_mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;
// per query row: lse, n_eff, entropy
@group(0) @binding(6) var<storage, read_write> stats: array<f32>;

// A finite stand-in for -inf: keeps the online update free of inf - inf.
const NEG_BIG: f32 = -3.0e38;

// Whether query i of batch b sees key j: in range, causal (queries aligned to the end of
// the keys), and not masked.
fn key_visible(b: u32, i: u32, j: u32) -> bool {
    if j >= p.n_kv || i >= p.n_q {
        return false;
    }
    if p.causal != 0u && j + p.n_q > i + p.n_kv {
        return false;
    }
    if (p.flags & 1u) != 0u {
        return key_mask[b * p.n_kv + j] != 0.0;
    }
    return true;
}

// The running softmax of one query row: max m, l = sum e^(s-m), and for the attention
// spread q2 = sum e^(2(s-m)) and tt = sum e^(s-m) (s-m). At the end n_eff = l^2 / q2 and
// H = ln l - tt / l.
struct RowSoftmax {
    m: f32,
    l: f32,
    q2: f32,
    tt: f32,
}

fn row_softmax() -> RowSoftmax {
    return RowSoftmax(NEG_BIG, 0.0, 0.0, 0.0);
}

// Moves the running max up to m_new; returns the factor e^(m - m_new) by which the output
// accumulator must be scaled.
fn rescale(r: ptr<function, RowSoftmax>, m_new: f32) -> f32 {
    let c = exp((*r).m - m_new);
    // With nothing seen yet (l == 0) tt stays 0; (m - m_new) * l would be 0 * huge.
    (*r).tt = select(0.0, c * ((*r).tt + ((*r).m - m_new) * (*r).l), (*r).l > 0.0);
    (*r).l *= c;
    (*r).q2 *= c * c;
    (*r).m = m_new;
    return c;
}

// Adds a key of score s <= m; returns its weight e^(s - m).
fn accumulate(r: ptr<function, RowSoftmax>, s: f32) -> f32 {
    let z = s - (*r).m;
    let w = exp(z);
    (*r).l += w;
    (*r).q2 += w * w;
    (*r).tt += w * z;
    return w;
}

// Adds four keys of scores s <= m where visible; returns their weights e^(s - m), 0 for
// hidden keys (which then add nothing).
fn accumulate4(r: ptr<function, RowSoftmax>, s: vec4<f32>, visible: vec4<bool>) -> vec4<f32> {
    let z = select(vec4<f32>(0.0), s - (*r).m, visible);
    let w = select(vec4<f32>(0.0), exp(z), visible);
    (*r).l += dot(w, vec4<f32>(1.0));
    (*r).q2 += dot(w, w);
    (*r).tt += dot(w, z);
    return w;
}

// 1 / l, or 0 for a row that saw no key (its output is then 0, never NaN).
fn normaliser(r: RowSoftmax) -> f32 {
    return select(0.0, 1.0 / r.l, r.l > 0.0);
}

// Writes lse, n_eff and the entropy of a row; a row that saw no key gets (-inf, 0, 0).
fn write_stats(q_row: u32, r: RowSoftmax) {
    if r.l > 0.0 {
        stats[q_row * 3u] = r.m + log(r.l);
        stats[q_row * 3u + 1u] = r.l * r.l / r.q2;
        stats[q_row * 3u + 2u] = log(r.l) - r.tt / r.l;
    } else {
        // -inf, made at run time: as a constant expression (bitcast<f32>(0xff800000u))
        // browsers' WGSL compiler (Tint) refuses it, infinity being unrepresentable there.
        var neg_inf_bits = 0xff800000u;
        stats[q_row * 3u] = bitcast<f32>(neg_inf_bits);
        stats[q_row * 3u + 1u] = 0.0;
        stats[q_row * 3u + 2u] = 0.0;
    }
}
