// Register-tiled matmul on vec4 loads and stores, with the fused epilogue of matmul.wgsl:
//   out[z, m, n] = act(sum_k a[z, m, k] * b[z / b_group, k, n] + bias[n]) + residual[z, m, n]
// for shapes with k % 4 == 0 and n % 4 == 0 (every row of a, b and out starts on a vec4).
// Storage is T (f32 or f16), accumulation is f32.
//
// A workgroup of WG_X x WG_Y invocations computes a BM x BN block of out, BM = WG_Y * TM
// rows and BN = WG_X * 4 * TN4 columns, over k in stages of BK held in workgroup memory.
// Invocation (x, y) owns the TM consecutive rows y*TM.. and the TN4 vec4 columns x,
// x + WG_X, ...: neighbouring invocations read and write neighbouring vec4s. Per k step it
// loads TM/4 + TN4 vec4s from workgroup memory for 4 * TM * TN4 FMAs.
//
// Everything that would be a branch per element is a pipeline constant: TRANS_B (b stored
// [n, k]), the epilogue, and CHECKED. The unchecked form (no bounds tests at all) is only
// launched on shapes the block divides; the checked form tests rows, vec4 columns and
// vec4 k-steps (k and n are multiples of 4, so a vec4 is wholly in or out).

struct Params {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    b_group: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<T4>;
@group(0) @binding(2) var<storage, read> b: array<T4>;
@group(0) @binding(3) var<storage, read> bias: array<T4>;
@group(0) @binding(4) var<storage, read> residual: array<T4>;
@group(0) @binding(5) var<storage, read_write> out: array<T4>;

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
override BK: u32 = 16u;
override TRANS_B: bool = false;
override CHECKED: bool = true;
override ACT: u32 = 0u;
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;
// Register tile: TM rows by TN4 vec4 columns per invocation (TM a multiple of 4).
const TM: u32 = 16u;
const TN4: u32 = 2u;

// k-major tiles: a_tile[kk][r] (scalars, read as vec4 over 4 rows), b_tile[kk][c4].
var<workgroup> a_tile: array<vec4<f32>, BK * WG_Y * TM / 4u>;
var<workgroup> b_tile: array<vec4<f32>, BK * WG_X * TN4>;

fn activate4(x: vec4<f32>) -> vec4<f32> {
    if ACT == 0u {
        return x;
    }
    return vec4<f32>(activate(x.x, ACT), activate(x.y, ACT), activate(x.z, ACT), activate(x.w, ACT));
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let bm = WG_Y * TM;
    let bm4 = bm / 4u;
    let bn4 = WG_X * TN4;
    let bk4 = BK / 4u;
    let threads = WG_X * WG_Y;
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let z = wg.z;
    let row0 = wg.y * bm;
    let col0 = wg.x * bn4;
    let a_base = z * p.m * k4;
    let b_base = (z / p.b_group) * p.k * n4;

    var acc: array<vec4<f32>, TM * TN4>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        let kq0 = k0 / 4u;
        // a: BM rows x BK/4 vec4s along k, each scattered into 4 k-rows of a_tile.
        for (var e = li; e < bm * bk4; e += threads) {
            let r = e / bk4;
            let c = e % bk4;
            var v = vec4<f32>(0.0);
            if !CHECKED || (row0 + r < p.m && kq0 + c < k4) {
                v = vec4<f32>(a[a_base + (row0 + r) * k4 + kq0 + c]);
            }
            let at = (c * 4u) * bm4 + r / 4u;
            let q = r % 4u;
            a_tile[at][q] = v.x;
            a_tile[at + bm4][q] = v.y;
            a_tile[at + 2u * bm4][q] = v.z;
            a_tile[at + 3u * bm4][q] = v.w;
        }
        if TRANS_B {
            // b is [n, k]: BN columns x BK/4 vec4s along k, scattered like a.
            for (var e = li; e < bn4 * 4u * bk4; e += threads) {
                let c = e / bk4;
                let kc = e % bk4;
                var v = vec4<f32>(0.0);
                if !CHECKED || (col0 * 4u + c < p.n && kq0 + kc < k4) {
                    v = vec4<f32>(b[b_base + (col0 * 4u + c) * k4 + kq0 + kc]);
                }
                let bt = (kc * 4u) * bn4 + c / 4u;
                let q = c % 4u;
                b_tile[bt][q] = v.x;
                b_tile[bt + bn4][q] = v.y;
                b_tile[bt + 2u * bn4][q] = v.z;
                b_tile[bt + 3u * bn4][q] = v.w;
            }
        } else {
            // b is [k, n]: BK rows x BN/4 vec4s, copied as they are.
            for (var e = li; e < BK * bn4; e += threads) {
                let r = e / bn4;
                let c = e % bn4;
                var v = vec4<f32>(0.0);
                if !CHECKED || (k0 + r < p.k && col0 + c < n4) {
                    v = vec4<f32>(b[b_base + (k0 + r) * n4 + col0 + c]);
                }
                b_tile[e] = v;
            }
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<vec4<f32>, TM / 4u>;
            var bv: array<vec4<f32>, TN4>;
            for (var i = 0u; i < TM / 4u; i++) {
                av[i] = a_tile[kk * bm4 + lid.y * (TM / 4u) + i];
            }
            for (var j = 0u; j < TN4; j++) {
                bv[j] = b_tile[kk * bn4 + lid.x + j * WG_X];
            }
            for (var i = 0u; i < TM; i++) {
                let ai = vec4<f32>(av[i / 4u][i % 4u]);
                for (var j = 0u; j < TN4; j++) {
                    acc[i * TN4 + j] = fma(ai, bv[j], acc[i * TN4 + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < TM; i++) {
        let r = row0 + lid.y * TM + i;
        for (var j = 0u; j < TN4; j++) {
            let c4 = col0 + lid.x + j * WG_X;
            if !CHECKED || (r < p.m && c4 < n4) {
                var y = acc[i * TN4 + j];
                if HAS_BIAS {
                    y += vec4<f32>(bias[c4]);
                }
                y = activate4(y);
                let o = (z * p.m + r) * n4 + c4;
                if HAS_RESIDUAL {
                    y += vec4<f32>(residual[o]);
                }
                out[o] = T4(y);
            }
        }
    }
}
