// Batched, tiled matrix multiply with a fused epilogue:
//   out[z, m, n] = act(sum_k a[z, m, k] * b[z / b_group, k, n] + bias[n]) + residual[z, m, n]
// b may be stored transposed ([n, k]). Storage is T (f32 or f16), accumulation is f32.
// Each workgroup computes a (WG_Y*TM) x (WG_X*TN) tile of out; each thread a TM x TN block
// strided by the workgroup size, so that reads of the B tile and writes of out are contiguous.

struct MatmulParams {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    trans_b: u32,
    b_group: u32,
    act: u32,
    // bit 0: add bias, bit 1: add residual
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<T>;
@group(0) @binding(2) var<storage, read> b: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read> residual: array<T>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override TILE_K: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;

// k-major tiles: a_tile[kk][r], b_tile[kk][c]
var<workgroup> a_tile: array<f32, WG_Y * TM * TILE_K>;
var<workgroup> b_tile: array<f32, WG_X * TN * TILE_K>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn matmul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tile_m = WG_Y * TM;
    let tile_n = WG_X * TN;
    let threads = WG_X * WG_Y;
    let z = wg.z;
    let row0 = wg.y * tile_m;
    let col0 = wg.x * tile_n;
    let a_base = z * p.m * p.k;
    let b_base = (z / p.b_group) * p.k * p.n;

    var acc: array<f32, 16>;
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        for (var i = li; i < tile_m * TILE_K; i += threads) {
            let r = i / TILE_K;
            let c = i % TILE_K;
            let gr = row0 + r;
            let gc = k0 + c;
            var v = 0.0;
            if gr < p.m && gc < p.k {
                v = f32(a[a_base + gr * p.k + gc]);
            }
            a_tile[c * tile_m + r] = v;
        }
        for (var i = li; i < TILE_K * tile_n; i += threads) {
            // Walk the tile in the order of b's memory layout, so loads are contiguous.
            var r = i / tile_n;
            var c = i % tile_n;
            if p.trans_b != 0u {
                c = i / TILE_K;
                r = i % TILE_K;
            }
            let gr = k0 + r;
            let gc = col0 + c;
            var v = 0.0;
            if gr < p.k && gc < p.n {
                if p.trans_b != 0u {
                    v = f32(b[b_base + gc * p.k + gr]);
                } else {
                    v = f32(b[b_base + gr * p.n + gc]);
                }
            }
            b_tile[r * tile_n + c] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var i = 0u; i < TM; i++) {
                av[i] = a_tile[kk * tile_m + lid.y + i * WG_Y];
            }
            for (var j = 0u; j < TN; j++) {
                bv[j] = b_tile[kk * tile_n + lid.x + j * WG_X];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i * TN + j] = fma(av[i], bv[j], acc[i * TN + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < TM; i++) {
        let r = row0 + lid.y + i * WG_Y;
        for (var j = 0u; j < TN; j++) {
            let c = col0 + lid.x + j * WG_X;
            if r < p.m && c < p.n {
                var y = acc[i * TN + j];
                if (p.flags & 1u) != 0u {
                    y += f32(bias[c]);
                }
                y = activate(y, p.act);
                let o = z * p.m * p.n + r * p.n + c;
                if (p.flags & 2u) != 0u {
                    y += f32(residual[o]);
                }
                out[o] = T(y);
            }
        }
    }
}
