// Fused attention, whole query rows per invocation: flash style, one pass over K/V in tiles
// held in workgroup memory, online softmax, nothing of size n_q x n_kv in memory.
//
// A workgroup of WG invocations takes WG * R consecutive query rows of one (batch, head);
// invocation li holds rows li, li + WG, ..., each with its q and output accumulator as
// head_dim / 4 (rounded up) vec4s, and computes whole dot products itself: no reduction
// across invocations, two barriers per K/V tile. Every invocation reads the same K/V
// element at the same time (a broadcast), four keys a step, and uses each one for its R
// rows; each row's accumulator is rescaled once per four keys.
//
// R and the head dim in vec4s (HD4) are not override constants: the lines marked `//@` are
// written out once per row and per vec4 by `ceiling_shaders::attention_rows` when a pipeline
// is made for a plan (`//@ row` and `//@ vec4` repeat one line, `//@ for t` ... `//@ end`
// a block; each K/V vec4 is loaded just before the rows use it). Straight-line code with one variable per value is what lets a compiler
// keep them in registers: as loops over arrays (even with constant bounds), Mesa's lavapipe
// kept the arrays in memory and ran 1.45x slower (BENCH_NOTES.md).
// Parameters, bindings, the mask and RowSoftmax: attention_common.wgsl.

override WG: u32 = 8u;
override BK: u32 = 32u;
// Whether the per-row stats are written: without them only the softmax sum is kept.
override STATS: bool = true;

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

// Which of 4 keys exist (index below `end`) and pass the key mask: the same for every row.
fn key_ok(b: u32, j: vec4<u32>, end: u32) -> vec4<bool> {
    var ok = j < vec4<u32>(end);
    if (p.flags & 1u) != 0u {
        let m = b * p.n_kv;
        let last = m + p.n_kv - 1u;
        ok = ok & vec4<bool>(
            key_mask[min(m + j.x, last)] != 0.0,
            key_mask[min(m + j.y, last)] != 0.0,
            key_mask[min(m + j.z, last)] != 0.0,
            key_mask[min(m + j.w, last)] != 0.0,
        );
    }
    return ok;
}

// Whether query row i exists and, under a causal mask, sees keys j (j + n_q <= i + n_kv, as
// in key_visible): vector compares, no branches.
fn causal_ok(i: u32, j: vec4<u32>) -> vec4<bool> {
    let causal = vec4<bool>(p.causal == 0u) | (j + p.n_q <= vec4<u32>(i + p.n_kv));
    return causal & vec4<bool>(i < p.n_q);
}

// Moves a row's running softmax past 4 keys of scores s (hidden where !visible): returns
// the weights e^(s - m) (0 for hidden keys) and sets c to the factor by which the row's
// accumulator must be scaled first (1 when no visible key raises the max).
fn step4(row: ptr<function, RowSoftmax>, s: vec4<f32>, visible: vec4<bool>, c: ptr<function, f32>) -> vec4<f32> {
    let sm = select(vec4<f32>(NEG_BIG), s, visible);
    let top = max(max(sm.x, sm.y), max(sm.z, sm.w));
    let m_new = max((*row).m, top);
    if STATS {
        *c = rescale(row, m_new);
        return accumulate4(row, s, visible);
    }
    *c = exp((*row).m - m_new);
    (*row).m = m_new;
    let w = select(vec4<f32>(0.0), exp(s - m_new), visible);
    (*row).l = fma((*row).l, *c, dot(w, vec4<f32>(1.0)));
    return w;
}

// Writes a row's output (and stats), dropping the vec4 padding past head_dim.
fn store4(q_row: u32, d: u32, y: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        if d + c < p.head_dim {
            out[q_row * p.head_dim + d + c] = T(y[c]);
        }
    }
}

@compute @workgroup_size(WG)
fn attention(
    @builtin(workgroup_id) wg_in: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // The grid may be split over several dispatches: the offsets of this one.
    let wg = wg_in + vec3<u32>(p.tile_base, p.head_base, p.batch_base);
    let h = wg.y;
    let b = wg.z;
    let first = wg.x * WG * R;
    let head_row0 = (b * p.heads + h) * p.n_q;
    let kv_head = b * p.kv_heads + h / (p.heads / p.kv_heads);
    let kv_row0 = kv_head * p.n_kv;

    // Per row r: its index, running softmax, q and output accumulator.
    //@ row let i{r} = first + li + {r}u * WG;
    //@ row var row{r} = row_softmax();
    //@ row_vec4 var q{r}_{t} = vec4<f32>(0.0);
    //@ row_vec4 var o{r}_{t} = vec4<f32>(0.0);
    //@ row_vec4 if i{r} < p.n_q { q{r}_{t} = p.scale * load4(0u, head_row0 + i{r}, {d}u); }

    // Keys past the last visible one of the block's last row are never needed.
    var kv_end = p.n_kv;
    if p.causal != 0u {
        kv_end = min(p.n_kv, min(first + WG * R, p.n_q) + p.n_kv - p.n_q);
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
            let jj = vec4<u32>(j0 + j) + vec4<u32>(0u, 1u, 2u, 3u);
            let ok = key_ok(b, jj, j0 + keys);
            // Scores of the 4 keys for every row, then each row's softmax step, then the
            // weighted V rows into each row's accumulator.
            //@ row var s{r} = vec4<f32>(0.0);
            //@ for t
            {
                let k0 = k_tile[j * HD4 + {t}u];
                let k1 = k_tile[(j + 1u) * HD4 + {t}u];
                let k2 = k_tile[(j + 2u) * HD4 + {t}u];
                let k3 = k_tile[(j + 3u) * HD4 + {t}u];
                //@ row s{r} += vec4<f32>(dot(q{r}_{t}, k0), dot(q{r}_{t}, k1), dot(q{r}_{t}, k2), dot(q{r}_{t}, k3));
            }
            //@ end
            //@ row var c{r} = 1.0;
            //@ row let w{r} = step4(&row{r}, s{r}, ok & causal_ok(i{r}, jj), &c{r});
            //@ for t
            {
                let v0 = v_tile[j * HD4 + {t}u];
                let v1 = v_tile[(j + 1u) * HD4 + {t}u];
                let v2 = v_tile[(j + 2u) * HD4 + {t}u];
                let v3 = v_tile[(j + 3u) * HD4 + {t}u];
                //@ row o{r}_{t} = fma(vec4<f32>(w{r}.w), v3, fma(vec4<f32>(w{r}.z), v2, fma(vec4<f32>(w{r}.y), v1, fma(vec4<f32>(w{r}.x), v0, o{r}_{t} * c{r}))));
            }
            //@ end
        }
        workgroupBarrier();
    }

    //@ row let inv{r} = normaliser(row{r});
    //@ row_vec4 if i{r} < p.n_q { store4(head_row0 + i{r}, {d}u, o{r}_{t} * inv{r}); }
    //@ row if i{r} < p.n_q && (p.flags & 2u) != 0u { write_stats(head_row0 + i{r}, row{r}); }
}
