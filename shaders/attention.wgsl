// Fused attention, flash style: one pass over K/V in tiles held in workgroup memory with an
// online softmax; nothing of size n_q x n_kv is ever written to memory.
//
// A workgroup takes BQ query rows of one (batch, head). Each row is shared by TPR threads;
// thread `lane` of a row holds dims lane, lane + TPR, ... of q and of its output (at most
// DPT = 16 each, so head_dim <= 16 * TPR). Per K/V tile, the threads of a row write partial
// dot products, reduce them to scores in workgroup memory, and update the row's running
// softmax (RowSoftmax, with the sums that give n_eff and the entropy at the end).
// Parameters, bindings and the mask: attention_common.wgsl.

override BQ: u32 = 16u;
override TPR: u32 = 4u;
override BK: u32 = 16u;
override HD: u32 = 64u;
const DPT: u32 = 16u;

var<workgroup> k_tile: array<f32, BK * HD>;
var<workgroup> v_tile: array<f32, BK * HD>;
var<workgroup> partials: array<f32, BQ * BK * TPR>;
var<workgroup> scores: array<f32, BQ * BK>;

@compute @workgroup_size(BQ * TPR)
fn attention(
    @builtin(workgroup_id) wg_in: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // The grid may be split over several dispatches: the offsets of this one.
    let wg = wg_in + vec3<u32>(p.tile_base, p.head_base, p.batch_base);
    let threads = BQ * TPR;
    let r = li / TPR;
    let lane = li % TPR;
    let h = wg.y;
    let b = wg.z;
    let i = wg.x * BQ + r;
    let q_row = (b * p.heads + h) * p.n_q + i;
    let kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
    let kv_base = kv_head * p.n_kv * HD;

    var qr: array<f32, DPT>;
    var o: array<f32, DPT>;
    for (var t = 0u; t < DPT; t++) {
        let d = lane + t * TPR;
        if i < p.n_q && d < HD {
            qr[t] = f32(q[q_row * HD + d]) * p.scale;
        }
    }
    var row = row_softmax();

    // Keys past the last visible one of the block's last row are never needed.
    var kv_end = p.n_kv;
    if p.causal != 0u {
        kv_end = min(p.n_kv, min(wg.x * BQ + BQ, p.n_q) + p.n_kv - p.n_q);
    }
    for (var j0 = 0u; j0 < kv_end; j0 += BK) {
        for (var e = li; e < BK * HD; e += threads) {
            let j = j0 + e / HD;
            var kv = 0.0;
            var vv = 0.0;
            if j < p.n_kv {
                kv = f32(k[kv_base + j0 * HD + e]);
                vv = f32(v[kv_base + j0 * HD + e]);
            }
            k_tile[e] = kv;
            v_tile[e] = vv;
        }
        workgroupBarrier();
        for (var j = 0u; j < BK; j++) {
            var s = 0.0;
            for (var t = 0u; t < DPT; t++) {
                let d = lane + t * TPR;
                if d < HD {
                    s = fma(qr[t], k_tile[j * HD + d], s);
                }
            }
            partials[(r * BK + j) * TPR + lane] = s;
        }
        workgroupBarrier();
        for (var j = lane; j < BK; j += TPR) {
            var s = 0.0;
            for (var x = 0u; x < TPR; x++) {
                s += partials[(r * BK + j) * TPR + x];
            }
            scores[r * BK + j] = s;
        }
        workgroupBarrier();
        var tile_max = NEG_BIG;
        for (var j = 0u; j < BK; j++) {
            if key_visible(b, i, j0 + j) {
                tile_max = max(tile_max, scores[r * BK + j]);
            }
        }
        if tile_max > NEG_BIG {
            let c = rescale(&row, max(row.m, tile_max));
            for (var t = 0u; t < DPT; t++) {
                o[t] *= c;
            }
            for (var j = 0u; j < BK; j++) {
                if key_visible(b, i, j0 + j) {
                    let pj = accumulate(&row, scores[r * BK + j]);
                    for (var t = 0u; t < DPT; t++) {
                        let d = lane + t * TPR;
                        if d < HD {
                            o[t] = fma(pj, v_tile[j * HD + d], o[t]);
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }

    if i >= p.n_q {
        return;
    }
    let inv = normaliser(row);
    for (var t = 0u; t < DPT; t++) {
        let d = lane + t * TPR;
        if d < HD {
            out[q_row * HD + d] = T(o[t] * inv);
        }
    }
    if (p.flags & 2u) != 0u && lane == 0u {
        write_stats(q_row, row);
    }
}
