// Row softmax of scale * x with optional causal and key masks, one workgroup per row: the
// softmax of the unfused attention baseline. A fully masked row is written as zeros.

struct SoftmaxParams {
    rows: u32,
    cols: u32,
    scale: f32,
    causal: u32,
    // rows per (batch, head), for the causal mask
    q_len: u32,
    // rows per batch, for the key mask
    rows_per_batch: u32,
    has_key_mask: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: SoftmaxParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read> key_mask: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<T>;

override WG: u32 = 128u;
var<workgroup> partial: array<f32, WG>;

fn visible(row: u32, col: u32) -> bool {
    let i = row % p.q_len;
    // (col > i + cols - q_len, without underflow when q_len > cols: such rows see no key)
    if p.causal != 0u && col + p.q_len > i + p.cols {
        return false;
    }
    if p.has_key_mask != 0u {
        return key_mask[(row / p.rows_per_batch) * p.cols + col] != 0.0;
    }
    return true;
}

@compute @workgroup_size(WG)
fn softmax(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row = flat_workgroup(wg, nwg);
    if row >= p.rows {
        return;
    }
    let base = row * p.cols;
    // Pass 1: row max. -3.4e38 stands for "nothing visible" without producing inf - inf.
    var m = -3.4e38;
    for (var j = li; j < p.cols; j += WG) {
        if visible(row, j) {
            m = max(m, p.scale * f32(x[base + j]));
        }
    }
    partial[li] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            partial[li] = max(partial[li], partial[li + s]);
        }
        workgroupBarrier();
    }
    m = partial[0];
    workgroupBarrier();
    // Pass 2: sum of exponentials.
    var sum = 0.0;
    for (var j = li; j < p.cols; j += WG) {
        if visible(row, j) {
            sum += exp(p.scale * f32(x[base + j]) - m);
        }
    }
    partial[li] = sum;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if li < s {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    sum = partial[0];
    let inv = select(0.0, 1.0 / sum, sum > 0.0);
    for (var j = li; j < p.cols; j += WG) {
        var y = 0.0;
        if visible(row, j) {
            y = exp(p.scale * f32(x[base + j]) - m) * inv;
        }
        out[base + j] = T(y);
    }
}
