// Layer norm and RMS norm over the last dimension, one workgroup per row.
// Two passes over the row (mean, then centred sum of squares) for stability in f32.

struct NormParams {
    rows: u32,
    cols: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> gamma: array<T>;
@group(0) @binding(3) var<storage, read> beta: array<T>;
@group(0) @binding(4) var<storage, read_write> out: array<T>;

override WG: u32 = 128u;
var<workgroup> partial: array<f32, WG>;

// Sum of v over the workgroup; every invocation gets the result.
fn workgroup_sum(v: f32, li: u32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn layer_norm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = flat_workgroup(wg, nwg);
    // Uniform control flow: every invocation of the workgroup takes the same branch.
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var s = 0.0;
    for (var j = li; j < p.cols; j += WG) {
        s += f32(x[base + j]);
    }
    let mean = workgroup_sum(s, li) / f32(p.cols);
    var q = 0.0;
    for (var j = li; j < p.cols; j += WG) {
        let d = f32(x[base + j]) - mean;
        q += d * d;
    }
    let inv = inverseSqrt(workgroup_sum(q, li) / f32(p.cols) + p.eps);
    for (var j = li; j < p.cols; j += WG) {
        out[base + j] = T((f32(x[base + j]) - mean) * inv * f32(gamma[j]) + f32(beta[j]));
    }
}

@compute @workgroup_size(WG)
fn rms_norm(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = flat_workgroup(wg, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    var q = 0.0;
    for (var j = li; j < p.cols; j += WG) {
        let v = f32(x[base + j]);
        q += v * v;
    }
    let inv = inverseSqrt(workgroup_sum(q, li) / f32(p.cols) + p.eps);
    for (var j = li; j < p.cols; j += WG) {
        out[base + j] = T(f32(x[base + j]) * inv * f32(gamma[j]));
    }
}
