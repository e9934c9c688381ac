// The language-model head without the logits: for rows x [m, k] of final hidden states and
// the output embedding e [n, k] (n = vocabulary), per row the log-sum-exp of the logits
// z = x e^T, the entropy of softmax(z), the most likely token, and the negative
// log-likelihood of a target token. The [m, n] logits are never stored.
//
// Two entry points:
// - `lm_head_partials`: the block product of matmul_tiles.wgsl (with TRANS_B) and an epilogue
//   that reduces each row's BN logits of the block to a partial (see `merge`) in workgroup
//   memory: one vec4 per row and block of columns, [blocks, m], instead of BN logits.
// - `lm_head_rows`: one invocation per row combines its blocks' partials (online
//   log-sum-exp), takes the target's logit as one dot product, and writes
//   (lse, nll, entropy, top1). A target of IGNORE (padding, a mask) gives nll 0 and top1 0.
// Storage is T (f32 or f16), all arithmetic f32.

struct LmHeadParams {
    m: u32,
    k: u32,
    n: u32,
    // First row of this launch in x, targets and out (rows are launched in chunks).
    row0: u32,
}

@group(0) @binding(0) var<uniform> p: LmHeadParams;
@group(0) @binding(1) var<storage, read> a: array<T4>;
@group(0) @binding(2) var<storage, read> b: array<T4>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> targets: array<u32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;

const IGNORE: u32 = 0xffffffffu;
// The column of a partial that has seen none: above every column index, and the bits of a
// finite f32 (f32 max), since WebGPU's WGSL refuses a NaN constant such as bitcast(IGNORE).
const NO_COLUMN: u32 = 0x7f7fffffu;
// Stands for -inf in a block with no column (finite, so that exp(lowest - max) is 0, not NaN).
const LOWEST: f32 = -3.0e38;

var<workgroup> row_partials: array<vec4<f32>, WG_Y * TM * WG_X>;

// A partial over some logits z is (m, s, w, argmax) with m = max z, s = sum exp(z - m),
// w = sum exp(z - m) (z - m): every term relative to the partial's own max, so that the
// entropy ln s - w / s never subtracts two large numbers (logits in the thousands would
// leave nothing of a small entropy). Merging two partials; ties keep the smaller index.
fn merge(u: vec4<f32>, v: vec4<f32>) -> vec4<f32> {
    let mx = max(u.x, v.x);
    let du = u.x - mx;
    let dv = v.x - mx;
    let eu = exp(du);
    let ev = exp(dv);
    var best = u.w;
    if v.x > u.x || (v.x == u.x && bitcast<u32>(v.w) < bitcast<u32>(u.w)) {
        best = v.w;
    }
    return vec4<f32>(
        mx,
        u.y * eu + v.y * ev,
        eu * (u.z + du * u.y) + ev * (v.z + dv * v.y),
        best,
    );
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn lm_head_partials(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let a_base = p.row0 * (p.k / 4u);
    let b_base = 0u;
    let acc = block_products(wg, lid, li, a_base, b_base);
    let col0 = wg.x * WG_X * TN4;
    // This invocation's 4 * TN4 columns of each of its TM rows, in increasing order.
    for (var i = 0u; i < TM; i++) {
        var part = vec4<f32>(LOWEST, 0.0, 0.0, bitcast<f32>(NO_COLUMN));
        for (var j = 0u; j < TN4; j++) {
            let c4 = col0 + lid.x + j * WG_X;
            let y = acc[i * TN4 + j];
            for (var q = 0u; q < 4u; q++) {
                let c = c4 * 4u + q;
                if !CHECKED || c < p.n {
                    part = merge(part, vec4<f32>(y[q], 1.0, 0.0, bitcast<f32>(c)));
                }
            }
        }
        row_partials[(lid.y * TM + i) * WG_X + lid.x] = part;
    }
    workgroupBarrier();
    // One invocation per row of the block merges the WG_X partials of that row.
    let rows = WG_Y * TM;
    for (var r = li; r < rows; r += WG_X * WG_Y) {
        let row = wg.y * rows + r;
        if row < p.m {
            var part = row_partials[r * WG_X];
            for (var x = 1u; x < WG_X; x++) {
                part = merge(part, row_partials[r * WG_X + x]);
            }
            partials[wg.x * p.m + row] = part;
        }
    }
}

@compute @workgroup_size(64, 1, 1)
fn lm_head_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if r >= p.m {
        return;
    }
    let blocks = (p.n + 4u * WG_X * TN4 - 1u) / (4u * WG_X * TN4);
    var part = partials[r];
    for (var c = 1u; c < blocks; c++) {
        part = merge(part, partials[c * p.m + r]);
    }
    let lse = part.x + log(part.y);
    let entropy = log(part.y) - part.z / part.y;
    let row = p.row0 + r;
    let t = targets[row];
    var nll = 0.0;
    var top1 = 0.0;
    if t != IGNORE {
        let k4 = p.k / 4u;
        var z = 0.0;
        for (var i = 0u; i < k4; i++) {
            z += dot(vec4<f32>(a[row * k4 + i]), vec4<f32>(b[t * k4 + i]));
        }
        nll = lse - z;
        top1 = select(0.0, 1.0, bitcast<u32>(part.w) == t);
    }
    out[row] = vec4<f32>(lse, nll, entropy, top1);
}
