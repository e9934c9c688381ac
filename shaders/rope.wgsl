// Rotary position embedding (GPT-NeoX / Llama "rotate half"), in place on x laid out as
// [rows, seq, head_dim]: the pair (i, i + half) of the row at position p is rotated by the
// angle p * base^(-2i / rot_dim). The host supplies cos and sin per (position, i) computed
// in f64, so that large positions keep full f32 accuracy (an f32 pow/multiply would not).
// One invocation per pair; dims from rot_dim to head_dim stay as they are.

struct RopeParams {
    rows: u32,
    seq: u32,
    head_dim: u32,
    half: u32,
}

@group(0) @binding(0) var<uniform> p: RopeParams;
@group(0) @binding(1) var<storage, read_write> x: array<T>;
// [seq, half, 2]: cos, sin
@group(0) @binding(2) var<storage, read> table: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn rope(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let idx = flat_workgroup(wg, nwg) * WG + li;
    if idx >= p.rows * p.seq * p.half {
        return;
    }
    let r = idx / p.half;
    let i = idx % p.half;
    let pos = r % p.seq;
    let c = table[(pos * p.half + i) * 2u];
    let s = table[(pos * p.half + i) * 2u + 1u];
    let base = r * p.head_dim;
    let a = f32(x[base + i]);
    let b = f32(x[base + i + p.half]);
    x[base + i] = T(a * c - b * s);
    x[base + i + p.half] = T(a * s + b * c);
}
