// Per-column moments across samples: x is [samples, cols] (e.g. cols = positions x dims);
// each invocation runs Welford's update down one column in f32, which stays stable where
// the naive sum of squares would cancel, on data shifted by the column's first sample so
// that a large common offset costs no precision. The host merges batches with Chan's
// formula in f64.

struct ColumnMomentsParams {
    samples: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: ColumnMomentsParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
// [cols] each
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> m2: array<f32>;

override WG: u32 = 64u;

@compute @workgroup_size(WG)
fn column_moments(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let c = gid.y * nwg.x * WG + gid.x;
    if c >= p.cols {
        return;
    }
    let pivot = f32(x[c]);
    var mu = 0.0;
    var acc = 0.0;
    for (var s = 0u; s < p.samples; s++) {
        let v = f32(x[s * p.cols + c]) - pivot;
        let delta = v - mu;
        mu += delta / f32(s + 1u);
        acc += delta * (v - mu);
    }
    mean[c] = pivot + mu;
    m2[c] = acc;
}
