// What the fused attention kernels share: parameters, bindings, the mask, and the per-row
// statistics. Prepended to attention.wgsl and attention_subgroup.wgsl.

struct Params {
    heads: u32,
    kv_heads: u32,
    n_q: u32,
    n_kv: u32,
    head_dim: u32,
    scale: f32,
    causal: u32,
    // bit 0: key mask present, bit 1: write stats
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
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

// Writes lse, n_eff = l^2 / q2 and H = ln l - t / l of a row from its running max m,
// l = sum e^(s-m), q2 = sum e^(2(s-m)) and t = sum e^(s-m) (s-m); a row that saw no key
// gets (-inf, 0, 0).
fn write_stats(q_row: u32, m: f32, l: f32, q2: f32, tt: f32) {
    if l > 0.0 {
        stats[q_row * 3u] = m + log(l);
        stats[q_row * 3u + 1u] = l * l / q2;
        stats[q_row * 3u + 2u] = log(l) - tt / l;
    } else {
        stats[q_row * 3u] = bitcast<f32>(0xff800000u);
        stats[q_row * 3u + 1u] = 0.0;
        stats[q_row * 3u + 2u] = 0.0;
    }
}
