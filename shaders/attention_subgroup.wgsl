// Fused attention with subgroup reductions: the same algorithm and bindings as
// attention.wgsl, but each query row belongs to one whole subgroup, and the dot products
// q.k_j are reduced with subgroupAdd instead of through workgroup memory.
//
// Correct for any subgroup size: subgroups are numbered with a workgroup atomic (no
// assumption on how invocations map to subgroups), lane `x` of a subgroup of size `sg`
// holds dims x, x + sg, ... (at most DPT), and when subgroups are larger than the host
// planned for (BQ = WG / smallest subgroup size), the rows are taken in several rounds.
// Parameters, bindings and the mask: attention_common.wgsl.

override WG: u32 = 64u;
override BQ: u32 = 8u;
override BK: u32 = 16u;
override HD: u32 = 64u;
const DPT: u32 = 32u;
const MAX_BK: u32 = 32u;

var<workgroup> k_tile: array<f32, BK * HD>;
var<workgroup> v_tile: array<f32, BK * HD>;
var<workgroup> subgroup_counter: atomic<u32>;
var<workgroup> subgroup_count: u32;

@compute @workgroup_size(WG)
fn attention(
    @builtin(workgroup_id) wg_in: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) sg_size: u32,
) {
    // The grid may be split over several dispatches: the offsets of this one.
    let wg = wg_in + vec3<u32>(p.tile_base, p.head_base, p.batch_base);
    if li == 0u {
        atomicStore(&subgroup_counter, 0u);
    }
    workgroupBarrier();
    var mine = 0u;
    // The first active invocation of each subgroup takes a number for it.
    if subgroupBroadcastFirst(li) == li {
        mine = atomicAdd(&subgroup_counter, 1u);
    }
    let sg = subgroupBroadcastFirst(mine);
    workgroupBarrier();
    if li == 0u {
        subgroup_count = atomicLoad(&subgroup_counter);
    }
    let n_sg = workgroupUniformLoad(&subgroup_count);

    let h = wg.y;
    let b = wg.z;
    let kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
    let kv_base = kv_head * p.n_kv * HD;
    var kv_end = p.n_kv;
    if p.causal != 0u {
        kv_end = min(p.n_kv, min(wg.x * BQ + BQ, p.n_q) + p.n_kv - p.n_q);
    }

    let rounds = (BQ + n_sg - 1u) / n_sg;
    for (var round = 0u; round < rounds; round++) {
        let r = round * n_sg + sg;
        let i = select(p.n_q, wg.x * BQ + r, r < BQ);
        let q_row = (b * p.heads + h) * p.n_q + i;
        var qr: array<f32, DPT>;
        var o: array<f32, DPT>;
        for (var t = 0u; t < DPT; t++) {
            let d = lane + t * sg_size;
            if i < p.n_q && d < HD {
                qr[t] = f32(q[q_row * HD + d]) * p.scale;
            }
        }
        var row = row_softmax();
        for (var j0 = 0u; j0 < kv_end; j0 += BK) {
            for (var e = li; e < BK * HD; e += WG) {
                var kv = 0.0;
                var vv = 0.0;
                if j0 + e / HD < p.n_kv {
                    kv = f32(k[kv_base + j0 * HD + e]);
                    vv = f32(v[kv_base + j0 * HD + e]);
                }
                k_tile[e] = kv;
                v_tile[e] = vv;
            }
            workgroupBarrier();
            var sc: array<f32, MAX_BK>;
            var tile_max = NEG_BIG;
            for (var j = 0u; j < BK; j++) {
                var part = 0.0;
                for (var t = 0u; t < DPT; t++) {
                    let d = lane + t * sg_size;
                    if d < HD {
                        part = fma(qr[t], k_tile[j * HD + d], part);
                    }
                }
                let s = subgroupAdd(part);
                sc[j] = s;
                if key_visible(b, i, j0 + j) {
                    tile_max = max(tile_max, s);
                }
            }
            if tile_max > NEG_BIG {
                let c = rescale(&row, max(row.m, tile_max));
                for (var t = 0u; t < DPT; t++) {
                    o[t] *= c;
                }
                for (var j = 0u; j < BK; j++) {
                    if key_visible(b, i, j0 + j) {
                        let pj = accumulate(&row, sc[j]);
                        for (var t = 0u; t < DPT; t++) {
                            let d = lane + t * sg_size;
                            if d < HD {
                                o[t] = fma(pj, v_tile[j * HD + d], o[t]);
                            }
                        }
                    }
                }
            }
            workgroupBarrier();
        }
        if i < p.n_q {
            let inv = normaliser(row);
            for (var t = 0u; t < DPT; t++) {
                let d = lane + t * sg_size;
                if d < HD {
                    out[q_row * HD + d] = T(o[t] * inv);
                }
            }
            if (p.flags & 2u) != 0u && lane == 0u {
                write_stats(q_row, row);
            }
        }
    }
}
