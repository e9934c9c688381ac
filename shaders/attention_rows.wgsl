// Fused attention, one query row per invocation: flash style, one pass over K/V in tiles
// held in workgroup memory, online softmax, nothing of size n_q x n_kv in memory.
//
// A workgroup of WG invocations takes WG * R consecutive query rows of one (batch, head).
// Each invocation holds R rows' q and output accumulators (head_dim padded to HD4 vec4s)
// and computes whole dot products itself: no reduction across invocations, two barriers
// per K/V tile. Every invocation reads the same K/V element at the same time (a
// broadcast), four keys a step, and uses each one for its R rows; the accumulators are
// rescaled once per four keys.
// Parameters, bindings, the mask and RowSoftmax: attention_common.wgsl.

override WG: u32 = 8u;
override BK: u32 = 32u;
// Query rows per invocation: each K/V vec4 read from workgroup memory serves R rows.
override R: u32 = 8u;
// head_dim in vec4s; R * HD4 <= RHD4_MAX (the register arrays).
override HD4: u32 = 16u;
// Whether the per-row stats are written: without them only the softmax sum is kept.
override STATS: bool = true;
const RHD4_MAX: u32 = 128u;

var<workgroup> k_tile: array<vec4<f32>, BK * HD4>;
var<workgroup> v_tile: array<vec4<f32>, BK * HD4>;

// Elements d..d+3 of a row of q (which 0), k (1) or v (2) as f32, 0 past head_dim (the
// vec4 padding). One function for the three: WGSL cannot pass a storage buffer by pointer.
fn load4(which: u32, row: u32, d: u32) -> vec4<f32> {
    var x = vec4<f32>(0.0);
    for (var c = 0u; c < 4u; c++) {
        let e = row * p.head_dim + d + c;
        if d + c < p.head_dim {
            switch which {
                case 0u: { x[c] = f32(q[e]); }
                case 1u: { x[c] = f32(k[e]); }
                default: { x[c] = f32(v[e]); }
            }
        }
    }
    return x;
}

@compute @workgroup_size(WG)
fn attention(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let h = wg.y;
    let b = wg.z;
    // Rows i0, i0 + WG, ..., i0 + (R-1) WG: the workgroup's WG * R rows are contiguous.
    let i0 = wg.x * WG * R + li;
    let head_row0 = (b * p.heads + h) * p.n_q;
    let kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
    let kv_row0 = kv_head * p.n_kv;

    var qr: array<vec4<f32>, RHD4_MAX>;
    var o: array<vec4<f32>, RHD4_MAX>;
    var rows: array<RowSoftmax, 8>;
    for (var r = 0u; r < R; r++) {
        rows[r] = row_softmax();
        let i = i0 + r * WG;
        if i < p.n_q {
            for (var t = 0u; t < HD4; t++) {
                qr[r * HD4 + t] = p.scale * load4(0u, head_row0 + i, 4u * t);
            }
        }
    }

    // Keys past the last visible one of the block's last row are never needed.
    var kv_end = p.n_kv;
    if p.causal != 0u {
        kv_end = min(p.n_kv, min(wg.x * WG * R + WG * R, p.n_q) + p.n_kv - p.n_q);
    }
    for (var j0 = 0u; j0 < kv_end; j0 += BK) {
        for (var e = li; e < BK * HD4; e += WG) {
            let j = j0 + e / HD4;
            let d = 4u * (e % HD4);
            var kv = vec4<f32>(0.0);
            var vv = vec4<f32>(0.0);
            if j < p.n_kv {
                kv = load4(1u, kv_row0 + j, d);
                vv = load4(2u, kv_row0 + j, d);
            }
            k_tile[e] = kv;
            v_tile[e] = vv;
        }
        workgroupBarrier();
        let keys = min(BK, kv_end - j0);
        for (var j = 0u; j < keys; j += 4u) {
            // Scores of 4 keys for each of the R rows.
            var s: array<vec4<f32>, 8>;
            for (var t = 0u; t < HD4; t++) {
                let k0 = k_tile[j * HD4 + t];
                let k1 = k_tile[(j + 1u) * HD4 + t];
                let k2 = k_tile[(j + 2u) * HD4 + t];
                let k3 = k_tile[(j + 3u) * HD4 + t];
                for (var r = 0u; r < R; r++) {
                    let qt = qr[r * HD4 + t];
                    s[r] += vec4<f32>(dot(qt, k0), dot(qt, k1), dot(qt, k2), dot(qt, k3));
                }
            }
            var w: array<vec4<f32>, 8>;
            var c: array<f32, 8>;
            // Which of the 4 keys exist and pass the key mask (the same for every row),
            // then per row the causal limit: vector compares, no branches.
            let jj = vec4<u32>(j0 + j) + vec4<u32>(0u, 1u, 2u, 3u);
            var key_ok = jj < vec4<u32>(j0 + keys);
            if (p.flags & 1u) != 0u {
                let m = b * p.n_kv;
                let last = m + p.n_kv - 1u;
                key_ok = key_ok & vec4<bool>(
                    key_mask[min(m + jj.x, last)] != 0.0,
                    key_mask[min(m + jj.y, last)] != 0.0,
                    key_mask[min(m + jj.z, last)] != 0.0,
                    key_mask[min(m + jj.w, last)] != 0.0,
                );
            }
            for (var r = 0u; r < R; r++) {
                let i = i0 + r * WG;
                // Causal: query i sees key j iff j + n_q <= i + n_kv (see key_visible).
                let causal_ok = vec4<bool>(p.causal == 0u) | (jj + p.n_q <= vec4<u32>(i + p.n_kv));
                let visible = key_ok & causal_ok & vec4<bool>(i < p.n_q);
                let sm = select(vec4<f32>(NEG_BIG), s[r], visible);
                let top = max(max(sm.x, sm.y), max(sm.z, sm.w));
                // A row that sees none of the 4 keys keeps its state: c = 1, w = 0.
                var row = rows[r];
                if STATS {
                    c[r] = rescale(&row, max(row.m, top));
                    w[r] = accumulate4(&row, s[r], visible);
                } else {
                    let m_new = max(row.m, top);
                    c[r] = exp(row.m - m_new);
                    row.m = m_new;
                    w[r] = select(vec4<f32>(0.0), exp(s[r] - m_new), visible);
                    row.l = fma(row.l, c[r], dot(w[r], vec4<f32>(1.0)));
                }
                rows[r] = row;
            }
            for (var t = 0u; t < HD4; t++) {
                let v0 = v_tile[j * HD4 + t];
                let v1 = v_tile[(j + 1u) * HD4 + t];
                let v2 = v_tile[(j + 2u) * HD4 + t];
                let v3 = v_tile[(j + 3u) * HD4 + t];
                for (var r = 0u; r < R; r++) {
                    var acc = o[r * HD4 + t] * c[r];
                    acc = fma(vec4<f32>(w[r].x), v0, acc);
                    acc = fma(vec4<f32>(w[r].y), v1, acc);
                    acc = fma(vec4<f32>(w[r].z), v2, acc);
                    o[r * HD4 + t] = fma(vec4<f32>(w[r].w), v3, acc);
                }
            }
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < R; r++) {
        let i = i0 + r * WG;
        if i >= p.n_q {
            break;
        }
        let q_row = head_row0 + i;
        let inv = normaliser(rows[r]);
        for (var t = 0u; t < HD4; t++) {
            let y = o[r * HD4 + t] * inv;
            let d = 4u * t;
            for (var e = 0u; e < 4u; e++) {
                if d + e < p.head_dim {
                    out[q_row * p.head_dim + d + e] = T(y[e]);
                }
            }
        }
        if (p.flags & 2u) != 0u {
            write_stats(q_row, rows[r]);
        }
    }
}
