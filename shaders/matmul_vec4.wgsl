// Register-tiled matmul on vec4 loads and stores, with the fused epilogue of matmul.wgsl:
//   out[z, m, n] = act(sum_k a[z, m, k] * b[z / b_group, k, n] + bias[n]) + residual[z, m, n]
// for shapes with k % 4 == 0 and n % 4 == 0 (every row of a, b and out starts on a vec4).
// Storage is T (f32 or f16), accumulation is f32. The block product is matmul_tiles.wgsl's,
// prepended to this file; the epilogue is a pipeline constant (ACT, HAS_BIAS, HAS_RESIDUAL).

struct MatmulVec4Params {
    batch: u32,
    m: u32,
    k: u32,
    n: u32,
    b_group: u32,
}

@group(0) @binding(0) var<uniform> p: MatmulVec4Params;
@group(0) @binding(1) var<storage, read> a: array<T4>;
@group(0) @binding(2) var<storage, read> b: array<T4>;
@group(0) @binding(3) var<storage, read> bias: array<T4>;
@group(0) @binding(4) var<storage, read> residual: array<T4>;
@group(0) @binding(5) var<storage, read_write> out: array<T4>;

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
    let z = wg.z;
    let a_base = z * p.m * (p.k / 4u);
    let b_base = (z / p.b_group) * p.k * (p.n / 4u);
    let acc = block_products(wg, lid, li, a_base, b_base);
    let n4 = p.n / 4u;
    let row0 = wg.y * WG_Y * TM;
    let col0 = wg.x * WG_X * TN4;

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
