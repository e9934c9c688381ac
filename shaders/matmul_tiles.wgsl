// The register-tiled vec4 block product shared by the vec4 matmul (matmul_vec4.wgsl) and the
// language-model head (lm_head.wgsl): a workgroup of WG_X x WG_Y invocations computes a
// BM x BN block of a b (or a b^T), BM = WG_Y * TM rows and BN = WG_X * 4 * TN4 columns, over
// k in stages of BK held in workgroup memory. Invocation (x, y) owns the TM consecutive rows
// y*TM.. and the TN4 vec4 columns x, x + WG_X, ...: neighbouring invocations read and write
// neighbouring vec4s. Per k step it loads TM/4 + TN4 vec4s from workgroup memory for
// 4 * TM * TN4 FMAs.
//
// The including file declares `p` (with fields m, k, n), and `a` and `b` as array<T4>.
// Every override is declared here, before any other global: naga 30 panics resolving the
// overrides of a module that declares more after such globals.
// Everything that would be a branch per element is a pipeline constant: TRANS_B (b stored
// [n, k]) and CHECKED. The unchecked form (no bounds tests at all) is only launched on shapes
// the block divides; the checked form tests rows, vec4 columns and vec4 k-steps (k and n are
// multiples of 4, so a vec4 is wholly in or out).

override WG_X: u32 = 8u;
override WG_Y: u32 = 8u;
override BK: u32 = 16u;
override TRANS_B: bool = false;
override CHECKED: bool = true;
// The vec4 matmul's epilogue (matmul_vec4.wgsl); unused by the LM head.
override ACT: u32 = 0u;
override HAS_BIAS: bool = false;
override HAS_RESIDUAL: bool = false;
// Register tile: TM rows by TN4 vec4 columns per invocation (TM a multiple of 4).
const TM: u32 = 16u;
const TN4: u32 = 2u;

// k-major tiles: a_tile[kk][r] (scalars, read as vec4 over 4 rows), b_tile[kk][c4].
var<workgroup> a_tile: array<vec4<f32>, BK * WG_Y * TM / 4u>;
var<workgroup> b_tile: array<vec4<f32>, BK * WG_X * TN4>;

// This invocation's TM x TN4 vec4 part of the workgroup's block (wg.x, wg.y) of a b, with
// a starting at vec4 a_base and b at vec4 b_base. Called from uniform control flow.
fn block_products(
    wg: vec3<u32>,
    lid: vec3<u32>,
    li: u32,
    a_base: u32,
    b_base: u32,
) -> array<vec4<f32>, TM * TN4> {
    let bm = WG_Y * TM;
    let bm4 = bm / 4u;
    let bn4 = WG_X * TN4;
    let bk4 = BK / 4u;
    let threads = WG_X * WG_Y;
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let row0 = wg.y * bm;
    let col0 = wg.x * bn4;
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
    return acc;
}
