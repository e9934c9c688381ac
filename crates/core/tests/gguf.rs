//! GGUF: known blocks dequantise exactly, quantisers stay within their error bounds, llama
//! weights round-trip through the writer and loader, and hostile files are errors, never
//! panics or huge allocations.

use std::panic::{catch_unwind, AssertUnwindSafe};

use ceiling_core::model::gguf::{
    dequantize, llama_writer, load_llama, permute_rows_for_gguf, quantize,
    unpermute_rows_from_gguf, write_llama, GgmlType, GgufFile, GgufValue, GgufWriter,
};
use ceiling_core::model::{LmHead, ModelConfig, ModelError, ModelWeights, Position};
use half::{bf16, f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use GgmlType::{Other, BF16, F16, F32, Q4_0, Q4_1, Q8_0};

// ---------------------------------------------------------------------------------------------
// Known blocks
// ---------------------------------------------------------------------------------------------

/// Two Q4_0 blocks: d = 0.5 with nibbles j / 15 - j, and d = -2 with every byte 0x8F.
fn q4_0_blocks() -> (Vec<u8>, Vec<f32>) {
    let mut bytes = vec![0x00, 0x38]; // f16 0.5
    bytes.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    bytes.extend([0x00, 0xC0]); // f16 -2.0
    bytes.extend([0x8F; 16]);
    let mut want = vec![0.0f32; 64];
    for j in 0..16 {
        want[j] = (j as f32 - 8.0) * 0.5;
        want[j + 16] = (7.0 - j as f32) * 0.5;
        want[32 + j] = -14.0; // (15 - 8) * -2
        want[48 + j] = 0.0; // (8 - 8) * -2
    }
    (bytes, want)
}

/// Two Q4_1 blocks: d = 0.25, m = -1 with nibbles 15 - j / j; d = 2, m = 0.5 with 0x3C.
fn q4_1_blocks() -> (Vec<u8>, Vec<f32>) {
    let mut bytes = vec![0x00, 0x34, 0x00, 0xBC]; // f16 0.25, -1.0
    bytes.extend((0..16u8).map(|j| (15 - j) | (j << 4)));
    bytes.extend([0x00, 0x40, 0x00, 0x38]); // f16 2.0, 0.5
    bytes.extend([0x3C; 16]);
    let mut want = vec![0.0f32; 64];
    for j in 0..16 {
        want[j] = (15 - j) as f32 * 0.25 - 1.0;
        want[j + 16] = j as f32 * 0.25 - 1.0;
        want[32 + j] = 12.0 * 2.0 + 0.5;
        want[48 + j] = 3.0 * 2.0 + 0.5;
    }
    (bytes, want)
}

/// Two Q8_0 blocks: d = 0.5 with q = 8j - 128 (the last 127); d = 0 (all zero).
fn q8_0_blocks() -> (Vec<u8>, Vec<f32>) {
    let mut q: Vec<i8> = (0..32).map(|j| (8 * j - 128) as i8).collect();
    q[31] = 127;
    let mut bytes = vec![0x00, 0x38];
    bytes.extend(q.iter().map(|&v| v as u8));
    bytes.extend([0u8; 34]);
    let mut want: Vec<f32> = q.iter().map(|&v| v as f32 * 0.5).collect();
    want.extend([0.0; 32]);
    (bytes, want)
}

#[test]
fn known_blocks_dequantise_exactly() {
    let (b, want) = q4_0_blocks();
    let got = dequantize(Q4_0, &b, 64).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        (got[0], got[1], got[15], got[16], got[31]),
        (-4.0, -3.5, 3.5, 3.5, -4.0)
    );

    let (b, want) = q4_1_blocks();
    let got = dequantize(Q4_1, &b, 64).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        (got[0], got[15], got[16], got[31]),
        (2.75, -1.0, -1.0, 2.75)
    );
    assert_eq!((got[32], got[63]), (24.5, 6.5));

    let (b, want) = q8_0_blocks();
    let got = dequantize(Q8_0, &b, 64).unwrap();
    assert_eq!(got, want);
    assert_eq!(
        (got[0], got[1], got[31], got[40]),
        (-64.0, -60.0, 63.5, 0.0)
    );

    let f16s = [0x3C00u16, 0xC100, 0x7BFF, 0x0001];
    let bytes: Vec<u8> = f16s.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        dequantize(F16, &bytes, 4).unwrap(),
        [1.0, -2.5, 65504.0, 5.960_464_5e-8]
    );
    let bf16s = [0x3F80u16, 0xC049, 0x7F7F];
    let bytes: Vec<u8> = bf16s.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(
        dequantize(BF16, &bytes, 3).unwrap(),
        [1.0, -3.140625, bf16::MAX.to_f32()]
    );
}

#[test]
fn dequantize_refuses_wrong_sizes_and_types() {
    let (b, _) = q8_0_blocks();
    assert!(dequantize(Q8_0, &b, 32).is_err(), "two blocks for one");
    assert!(dequantize(Q8_0, &b[..33], 32).is_err(), "a short block");
    assert!(dequantize(Q8_0, &b[..34], 31).is_err(), "not whole blocks");
    assert!(dequantize(F32, &[0; 7], 2).is_err());
    let e = dequantize(Other(12), &[0; 144], 256)
        .unwrap_err()
        .to_string();
    assert!(e.contains("12 (Q4_K)"), "{e}");
    assert!(quantize(Q4_0, &[0.0; 33]).is_err());
    assert!(quantize(Other(6), &[0.0; 32]).is_err());
    assert_eq!(quantize(F16, &[1.0; 3]).unwrap().len(), 6);
}

#[test]
fn raw_blocks_written_to_a_file_read_back_exactly() {
    let (b40, w40) = q4_0_blocks();
    let (b41, w41) = q4_1_blocks();
    let (b80, w80) = q8_0_blocks();
    let mut w = GgufWriter::new();
    w.tensor_raw("q4_0", &[2, 32], Q4_0, &b40).unwrap();
    w.tensor_raw("q4_1", &[2, 32], Q4_1, &b41).unwrap();
    w.tensor_raw("q8_0", &[2, 32], Q8_0, &b80).unwrap();
    assert!(
        w.tensor_raw("short", &[2, 32], Q8_0, &b80[..40]).is_err(),
        "bytes must match the shape"
    );
    let f = GgufFile::parse(w.to_bytes(), "raw.gguf").unwrap();
    assert_eq!(f.version, 3);
    assert_eq!(f.data_start() % 32, 0);
    for (name, dtype, bytes, want) in [
        ("q4_0", Q4_0, &b40, &w40),
        ("q4_1", Q4_1, &b41, &w41),
        ("q8_0", Q8_0, &b80, &w80),
    ] {
        let info = f.tensor(name).unwrap();
        assert_eq!(info.dtype, dtype);
        assert_eq!(info.dims, [32, 2], "dims are innermost first");
        assert_eq!(info.shape(), [2, 32]);
        assert_eq!(info.offset % 32, 0);
        assert_eq!(f.tensor_data(name).unwrap(), &bytes[..]);
        assert_eq!(&f.tensor_f32(name).unwrap(), want);
    }
}

// ---------------------------------------------------------------------------------------------
// Quantisers
// ---------------------------------------------------------------------------------------------

#[test]
fn quantisers_match_llama_cpp_on_known_blocks() {
    // x = j - 16. Q8_0: d = 16/127, q = round(x * 127/16).
    let x: Vec<f32> = (0..32).map(|j| j as f32 - 16.0).collect();
    let b = quantize(Q8_0, &x).unwrap();
    assert_eq!(&b[..2], f16::from_f32(16.0 / 127.0).to_le_bytes());
    assert_eq!(
        (b[2] as i8, b[3] as i8, b[18] as i8, b[33] as i8),
        (-127, -119, 0, 119)
    );

    // Q4_0: max-magnitude -16 gives d = 2, q = trunc(x/2 + 8.5) capped at 15: x = -1 gives
    // 8 (rounding x/2 = -0.5 away from zero, then adding 8, would give 7), x = 1 gives 9,
    // x = 15 gives 16 -> 15.
    let b = quantize(Q4_0, &x).unwrap();
    assert_eq!(&b[..2], [0x00, 0x40]);
    assert_eq!((b[2], b[3], b[17]), (0x80, 0x91, 0xF8));

    // Q4_1: min 0, max 15, so d = 1, m = 0 and q = trunc(x + 0.5): j + 0.5 rounds up.
    let mut x = vec![0.0f32; 32];
    for j in 0..16 {
        x[j] = j as f32;
        x[j + 16] = if j < 15 { j as f32 + 0.5 } else { 0.0 };
    }
    let b = quantize(Q4_1, &x).unwrap();
    assert_eq!(&b[..4], [0x00, 0x3C, 0x00, 0x00]);
    let want: Vec<u8> = (0..16u8)
        .map(|j| if j < 15 { j | ((j + 1) << 4) } else { 0x0F })
        .collect();
    assert_eq!(&b[4..], &want[..]);
}

/// Blocks of varied scale, plus the awkward ones: zeros, constants, one spike, one sign.
fn test_values(seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v = Vec::new();
    for b in 0..64 {
        let scale = 10f32.powi(rng.random_range(-4..4));
        for j in 0..32 {
            v.push(match b {
                0 => 0.0,
                1 => 0.75,
                2 => {
                    if j == 5 {
                        100.0
                    } else {
                        rng.random_range(-0.01..0.01)
                    }
                }
                3 => -rng.random_range(0.5..1.5),
                _ => scale * rng.random_range(-1.0f32..1.0),
            });
        }
    }
    v
}

#[test]
fn quantise_dequantise_stays_within_the_format_bounds() {
    let x = test_values(11);
    let f16_of = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]).to_f32();

    // Q8_0: |err| <= d/2 from rounding, plus the scale's rounding to f16 times |q| <= 127.
    let y = dequantize(Q8_0, &quantize(Q8_0, &x).unwrap(), x.len()).unwrap();
    let bytes = quantize(Q8_0, &x).unwrap();
    for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
        let d = xb.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 127.0;
        let d16 = f16_of(&bytes[b * 34..]);
        let bound = d / 2.0 + 127.0 * (d - d16).abs() + 1e-4 * d;
        for (a, c) in xb.iter().zip(yb) {
            assert!(
                (a - c).abs() <= bound,
                "Q8_0 block {b}: {a} -> {c}, bound {bound}"
            );
        }
    }

    // Q4_0: d = max / -8 and |err| <= |d|/2 except where x/d rounds past 7.5 to the capped
    // q = 15 (values of the other sign near the max): there |err| = |x - 7d| <= |d|.
    let bytes = quantize(Q4_0, &x).unwrap();
    let y = dequantize(Q4_0, &bytes, x.len()).unwrap();
    for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
        let max = xb
            .iter()
            .fold(0.0f32, |m, &v| if m.abs() < v.abs() { v } else { m });
        let d = max / -8.0;
        let d16 = f16_of(&bytes[b * 18..]);
        let slack = 8.0 * (d - d16).abs() + 1e-4 * d.abs();
        for (a, c) in xb.iter().zip(yb) {
            let err = (a - c).abs();
            assert!(err <= d.abs() + slack, "Q4_0 block {b}: {a} -> {c}");
            if d != 0.0 && a / d < 7.499 {
                assert!(err <= d.abs() / 2.0 + slack, "Q4_0 block {b}: {a} -> {c}");
            }
        }
    }

    // Q4_1: |err| <= d/2 plus the f16 rounding of d (times q <= 15) and of the min.
    let bytes = quantize(Q4_1, &x).unwrap();
    let y = dequantize(Q4_1, &bytes, x.len()).unwrap();
    for (b, (xb, yb)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
        let min = xb.iter().copied().fold(f32::MAX, f32::min);
        let max = xb.iter().copied().fold(-f32::MAX, f32::max);
        let d = (max - min) / 15.0;
        let (d16, m16) = (f16_of(&bytes[b * 20..]), f16_of(&bytes[b * 20 + 2..]));
        let bound =
            d / 2.0 + 15.0 * (d - d16).abs() + (min - m16).abs() + 1e-5 * (max.abs() + min.abs());
        for (a, c) in xb.iter().zip(yb) {
            assert!(
                (a - c).abs() <= bound,
                "Q4_1 block {b}: {a} -> {c}, bound {bound}"
            );
        }
    }
    // The constant and zero blocks come back exactly (d = 0).
    assert!(y[..64].iter().zip(&x[..64]).all(|(a, b)| a == b));
}

#[test]
fn float_formats_round_trip_representable_values_exactly() {
    let x = test_values(5);
    let as_f16: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    let as_bf16: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
    let rt = |t, v: &[f32]| dequantize(t, &quantize(t, v).unwrap(), v.len()).unwrap();
    assert_eq!(rt(F32, &x), x);
    assert_eq!(rt(F16, &as_f16), as_f16);
    assert_eq!(rt(BF16, &as_bf16), as_bf16);
    let specials = [
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,
        6.103_515_6e-5,
        5.960_464_5e-8,
    ];
    assert_eq!(rt(F16, &specials), specials);
}

// ---------------------------------------------------------------------------------------------
// Llama files
// ---------------------------------------------------------------------------------------------

fn llama_config() -> ModelConfig {
    let mut c = ModelConfig::llama_like(2, 64, 4, 2, 96);
    c.ff_dim = 192;
    c
}

fn llama_weights(seed: u64) -> ModelWeights {
    ModelWeights::random(&llama_config(), seed).unwrap()
}

fn parse(bytes: Vec<u8>) -> GgufFile {
    GgufFile::parse(bytes, "test.gguf").unwrap()
}

#[test]
fn llama_f32_round_trips_exactly_tied_and_separate() {
    let w = llama_weights(3);
    assert_eq!(w.lm_head, LmHead::Tied);
    let f = parse(write_llama(&w, F32).unwrap());
    assert_eq!(
        f.get("general.architecture").and_then(GgufValue::as_str),
        Some("llama")
    );
    assert_eq!(
        f.get("llama.attention.head_count_kv")
            .and_then(GgufValue::as_u64),
        Some(2)
    );
    assert!(f.tensor("output.weight").is_none());
    assert_eq!(f.tensor("blk.0.attn_k.weight").unwrap().dims, [64, 32]);
    assert_eq!(f.tensor("output_norm.weight").unwrap().dtype, F32);
    // On disk Q and K are in the converter's interleaved order, not ours.
    let q = &w.layers[1].q.weight;
    let on_disk = f.tensor_f32("blk.1.attn_q.weight").unwrap();
    assert_ne!(&on_disk, q);
    assert_eq!(on_disk, permute_rows_for_gguf(q, 64, 64, 4).unwrap());
    let k = &w.layers[0].k.weight;
    let on_disk = f.tensor_f32("blk.0.attn_k.weight").unwrap();
    assert_eq!(on_disk, permute_rows_for_gguf(k, 32, 64, 2).unwrap());
    assert_eq!(load_llama(&f).unwrap(), w);

    let mut w = llama_weights(4);
    let head: Vec<f32> = w
        .token_embedding
        .as_ref()
        .unwrap()
        .iter()
        .rev()
        .map(|v| 0.5 * v)
        .collect();
    w.lm_head = LmHead::Separate(head);
    // Llama 3's base and a different eps: both come back as the decimals they were.
    w.config.norm_eps = 1e-5;
    w.config.position = Position::Rotary { base: 500000.0 };
    let f = parse(write_llama(&w, F32).unwrap());
    assert_eq!(f.tensor("output.weight").unwrap().shape(), [96, 64]);
    assert_eq!(load_llama(&f).unwrap(), w);

    // A feed-forward width that is not whole blocks is fine in F32.
    let w = ModelWeights::random(&ModelConfig::llama_like(1, 32, 2, 1, 10), 1).unwrap();
    assert_eq!(w.config.ff_dim, 85);
    assert_eq!(
        load_llama(&parse(write_llama(&w, F32).unwrap())).unwrap(),
        w
    );
    assert!(
        write_llama(&w, Q8_0).is_err(),
        "rows of 85 are not whole blocks"
    );
}

#[test]
fn llama_quantised_round_trips_through_the_quantisers() {
    let w = llama_weights(9);
    let rt = |t: GgmlType, v: &[f32]| dequantize(t, &quantize(t, v).unwrap(), v.len()).unwrap();
    for dtype in [F16, BF16, Q4_0, Q4_1, Q8_0] {
        let f = parse(write_llama(&w, dtype).unwrap());
        assert_eq!(f.tensor("blk.0.ffn_down.weight").unwrap().dtype, dtype);
        assert_eq!(f.tensor("blk.0.ffn_norm.weight").unwrap().dtype, F32);
        let back = load_llama(&f).unwrap();
        assert_eq!(back.config, w.config);
        assert_eq!(back.final_norm, w.final_norm, "norms stay F32");
        assert_eq!(back.layers[1].attn_norm, w.layers[1].attn_norm);
        assert_eq!(
            back.token_embedding.as_deref().unwrap(),
            rt(dtype, w.token_embedding.as_deref().unwrap())
        );
        for (l, b) in w.layers.iter().zip(&back.layers) {
            let q = permute_rows_for_gguf(&l.q.weight, 64, 64, 4).unwrap();
            let q = unpermute_rows_from_gguf(&rt(dtype, &q), 64, 64, 4).unwrap();
            assert_eq!(b.q.weight, q, "{dtype}");
            let k = permute_rows_for_gguf(&l.k.weight, 32, 64, 2).unwrap();
            let k = unpermute_rows_from_gguf(&rt(dtype, &k), 32, 64, 2).unwrap();
            assert_eq!(b.k.weight, k, "{dtype}");
            assert_eq!(b.v.weight, rt(dtype, &l.v.weight));
            assert_eq!(b.down.weight, rt(dtype, &l.down.weight));
            let gate = &l.gate.as_ref().unwrap().weight;
            assert_eq!(b.gate.as_ref().unwrap().weight, rt(dtype, gate));
        }
    }
}

#[test]
fn writer_refuses_non_llama_weights() {
    let gpt2 = ModelWeights::random(&ModelConfig::gpt2_like(1, 32, 2, 16), 1).unwrap();
    let e = write_llama(&gpt2, F32).unwrap_err();
    assert!(matches!(e, ModelError::Unsupported(_)), "{e}");
    let mut c = llama_config();
    c.bias = true;
    let e = write_llama(&ModelWeights::random(&c, 1).unwrap(), F32).unwrap_err();
    assert!(e.to_string().contains("bias"), "{e}");
    let mut c = llama_config();
    c.position = Position::None;
    let e = write_llama(&ModelWeights::random(&c, 1).unwrap(), F32).unwrap_err();
    assert!(e.to_string().contains("rotary"), "{e}");
    assert!(write_llama(&llama_weights(1), Other(12)).is_err());
}

/// The llama file of `llama_weights(1)` after `edit`.
fn edited(edit: impl FnOnce(&mut GgufWriter)) -> Result<ModelWeights, ModelError> {
    let mut w = llama_writer(&llama_weights(1), F32).unwrap();
    edit(&mut w);
    load_llama(&GgufFile::parse(w.to_bytes(), "edited.gguf").unwrap())
}

fn meta(key: &'static str, v: GgufValue) -> impl FnOnce(&mut GgufWriter) {
    move |w| {
        w.meta(key, v).unwrap();
    }
}

#[test]
fn loader_refuses_what_it_cannot_run() {
    let e = edited(meta(
        "general.architecture",
        GgufValue::String("gpt2".into()),
    ))
    .unwrap_err();
    let m = e.to_string();
    assert!(matches!(e, ModelError::Unsupported(_)), "{m}");
    assert!(
        m.contains("'gpt2'") && m.contains("llama") && m.contains("edited.gguf"),
        "{m}"
    );

    let e = edited(meta("llama.rope.dimension_count", GgufValue::U32(8))).unwrap_err();
    assert!(
        matches!(e, ModelError::Unsupported(ref m) if m.contains("dimension_count")),
        "{e}"
    );

    let e = edited(|w| {
        w.tensor("blk.0.attn_q.bias", &[64], &[0.0; 64], F32)
            .unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(e, ModelError::Unsupported(ref m) if m.contains("attn_q.bias")),
        "{e}"
    );

    let e = edited(|w| {
        w.tensor("rope_freqs.weight", &[8], &[1.0; 8], F32).unwrap();
    })
    .unwrap_err();
    assert!(
        matches!(e, ModelError::Unsupported(ref m) if m.contains("rope_freqs")),
        "{e}"
    );

    let e = edited(meta("llama.expert_count", GgufValue::U32(8))).unwrap_err();
    assert!(matches!(e, ModelError::Unsupported(_)), "{e}");

    let e = edited(meta("llama.block_count", GgufValue::U32(3))).unwrap_err();
    assert!(
        matches!(e, ModelError::Missing(ref t) if t.starts_with("blk.2.")),
        "{e}"
    );

    let e = edited(meta("llama.feed_forward_length", GgufValue::U32(160))).unwrap_err();
    assert!(
        matches!(e, ModelError::Shape { ref tensor, .. } if tensor.contains("ffn_")),
        "{e}"
    );

    let e = edited(meta("llama.attention.head_count_kv", GgufValue::U32(4))).unwrap_err();
    assert!(matches!(e, ModelError::Shape { ref tensor, .. } if tensor == "blk.0.attn_k.weight"));

    let e = edited(meta("llama.block_count", GgufValue::I32(-1))).unwrap_err();
    assert!(
        matches!(e, ModelError::Config(ref m) if m.contains("block_count")),
        "{e}"
    );

    // Integer metadata of another width than the writer's is taken.
    let mut w = llama_writer(&llama_weights(1), F32).unwrap();
    w.meta("llama.rope.dimension_count", GgufValue::U64(16))
        .unwrap();
    assert!(load_llama(&parse(w.to_bytes())).is_ok());
}

#[test]
fn non_finite_and_unsupported_tensors_fail_when_read() {
    let mut w = GgufWriter::new();
    w.tensor_raw("nan", &[2], F32, &[0, 0, 0x80, 0x3F, 0, 0, 0xC0, 0x7F])
        .unwrap();
    let mut inf_block = vec![0x00, 0x7C]; // f16 infinity as the scale
    inf_block.extend([1u8; 32]);
    w.tensor_raw("inf", &[32], Q8_0, &inf_block).unwrap();
    w.tensor_raw("q4k", &[256], Other(12), &[0; 144]).unwrap();
    w.tensor("fine", &[2], &[1.0, 2.0], F16).unwrap();
    assert!(matches!(
        w.tensor("bad", &[1], &[f32::NAN], F32),
        Err(ModelError::NonFinite(_))
    ));
    assert!(
        w.tensor("big", &[32], &[1e9; 32], Q8_0).is_err(),
        "scale overflows f16"
    );
    let f = parse(w.to_bytes());
    assert_eq!(f.tensor_f32("fine").unwrap(), [1.0, 2.0]);
    assert!(matches!(f.tensor_f32("nan"), Err(ModelError::NonFinite(ref t)) if t == "nan"));
    assert!(matches!(f.tensor_f32("inf"), Err(ModelError::NonFinite(ref t)) if t == "inf"));
    let e = f.tensor_f32("q4k").unwrap_err().to_string();
    assert!(
        e.contains("unsupported ggml type 12 (Q4_K)") && e.contains("'q4k'") && e.contains("Q8_0"),
        "{e}"
    );
    assert!(matches!(
        f.tensor_f32("absent"),
        Err(ModelError::Missing(_))
    ));
    assert_eq!(f.tensor("q4k").unwrap().dtype.to_string(), "Q4_K");
    assert_eq!(Other(99).to_string(), "type 99");
}

// ---------------------------------------------------------------------------------------------
// Metadata and files
// ---------------------------------------------------------------------------------------------

fn all_values() -> Vec<(&'static str, GgufValue)> {
    use GgufValue::*;
    vec![
        ("u8", U8(200)),
        ("i8", I8(-5)),
        ("u16", U16(60000)),
        ("i16", I16(-30000)),
        ("u32", U32(4_000_000_000)),
        ("i32", I32(-7)),
        ("f32", F32(1.5)),
        ("bool", Bool(true)),
        ("string", String("héllo ✓".into())),
        (
            "strings",
            Array(vec![String("a".into()), String("".into())]),
        ),
        ("nested", Array(vec![Array(vec![U8(1)]), Array(vec![])])),
        ("empty", Array(vec![])),
        ("u64", U64(u64::MAX)),
        ("i64", I64(i64::MIN)),
        ("f64", F64(-0.1)),
    ]
}

#[test]
fn metadata_of_every_type_round_trips() {
    let mut w = GgufWriter::new();
    for (k, v) in all_values() {
        w.meta(k, v).unwrap();
    }
    let f = parse(w.to_bytes());
    let want: Vec<(String, GgufValue)> = all_values()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(f.metadata, want);
    assert_eq!(f.get("u8").unwrap().as_u64(), Some(200));
    assert_eq!(f.get("i8").unwrap().as_u64(), None);
    assert_eq!(f.get("i8").unwrap().as_f64(), Some(-5.0));
    assert_eq!(f.get("f32").unwrap().as_u64(), None);
    assert_eq!(f.get("string").unwrap().as_str(), Some("héllo ✓"));
    assert_eq!(f.get("strings").unwrap().as_array().unwrap().len(), 2);
    assert_eq!(GgufValue::I64(3).as_u64(), Some(3));
    assert_eq!(GgufValue::Bool(true).as_f64(), None);
    assert!(f.get("absent").is_none());

    let mut w = GgufWriter::new();
    let mixed = GgufValue::Array(vec![GgufValue::U8(1), GgufValue::I8(1)]);
    assert!(w.meta("mixed", mixed).is_err());
    let mut deep = GgufValue::U8(0);
    for _ in 0..5 {
        deep = GgufValue::Array(vec![deep]);
    }
    assert!(w.meta("deep", deep).is_err());
    assert!(w.meta("general.alignment", GgufValue::U32(48)).is_err());
    // A different alignment is honoured by writer and reader.
    w.meta("general.alignment", GgufValue::U32(64)).unwrap();
    w.tensor("a", &[3], &[1.0, 2.0, 3.0], F32).unwrap();
    // 127/256 quantises exactly: d = 2^-8, q = 127.
    w.tensor("b", &[2, 32], &[127.0 / 256.0; 64], Q8_0).unwrap();
    let f = parse(w.to_bytes());
    assert_eq!(f.alignment(), 64);
    assert_eq!(
        (f.data_start() % 64, f.tensor("b").unwrap().offset),
        (0, 64)
    );
    assert_eq!(f.tensor_f32("b").unwrap(), [127.0 / 256.0; 64]);
}

#[test]
fn version_2_opens_and_files_open_from_disk() {
    let mut bytes = write_llama(&llama_weights(2), Q8_0).unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let f = parse(bytes.clone());
    assert_eq!(f.version, 2);
    assert!(load_llama(&f).is_ok());

    let path = std::env::temp_dir().join(format!("ceiling-gguf-{}.gguf", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let opened = GgufFile::open(&path);
    std::fs::remove_file(&path).unwrap();
    let opened = opened.unwrap();
    assert_eq!(opened.name(), path.display().to_string());
    assert_eq!(opened.tensors, f.tensors);
    let e = GgufFile::open(&path).unwrap_err();
    assert!(matches!(e, ModelError::Io { .. }), "{e}");
}

// ---------------------------------------------------------------------------------------------
// Hostile files
// ---------------------------------------------------------------------------------------------

/// A small file with metadata of several types and two tensors, the last of which ends the
/// file exactly (32 bytes of F32), so that every proper prefix lacks something.
fn small_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    for (k, v) in all_values() {
        w.meta(k, v).unwrap();
    }
    w.tensor("q", &[1, 32], &[0.25; 32], Q8_0).unwrap();
    w.tensor("f", &[2, 4], &[1.0; 8], F32).unwrap();
    w.to_bytes()
}

/// A llama file small enough to parse thousands of times.
fn tiny_llama() -> Vec<u8> {
    let mut c = ModelConfig::llama_like(1, 32, 2, 1, 8);
    c.ff_dim = 32;
    write_llama(&ModelWeights::random(&c, 1).unwrap(), Q8_0).unwrap()
}

/// Parses and, if that succeeds, reads every tensor and tries the llama loader: none of it
/// may panic.
fn exercise(bytes: Vec<u8>) -> bool {
    match GgufFile::parse(bytes, "fuzz.gguf") {
        Err(_) => false,
        Ok(f) => {
            for t in &f.tensors {
                let _ = (t.shape(), t.element_count());
                let _ = f.tensor_f32(&t.name);
            }
            let _ = load_llama(&f);
            true
        }
    }
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = small_file();
    let f = parse(bytes.clone());
    let last = f.tensor("f").unwrap();
    assert_eq!(f.data_start() + last.offset as usize + 32, bytes.len());
    for len in 0..bytes.len() {
        let r = GgufFile::parse(bytes[..len].to_vec(), "cut.gguf");
        match r {
            Err(ModelError::Gguf { path, .. }) => assert_eq!(path, "cut.gguf"),
            other => panic!("prefix of {len} bytes: {other:?}"),
        }
    }
    // The llama file, cut everywhere in its header and every 61 bytes in its data.
    let bytes = tiny_llama();
    let start = parse(bytes.clone()).data_start();
    for len in (0..start).chain((start..bytes.len() - 32).step_by(61)) {
        assert!(
            !exercise(bytes[..len].to_vec()),
            "prefix of {len} bytes parsed"
        );
    }
}

#[test]
fn random_mutations_never_panic() {
    let interesting = [
        0u64,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        12,
        13,
        31,
        32,
        33,
        1000,
        u32::MAX as u64,
        1 << 32,
        1 << 60,
        1 << 62,
        i64::MAX as u64,
        u64::MAX,
    ];
    let mut parsed = 0;
    let mut total = 0;
    for (base_seed, base) in [(1u64, small_file()), (2, tiny_llama())] {
        let header = parse(base.clone()).data_start();
        let mut rng = ChaCha8Rng::seed_from_u64(base_seed);
        for case in 0..4000 {
            let mut b = base.clone();
            let pick = |rng: &mut ChaCha8Rng, len: usize| {
                if rng.random_bool(0.9) {
                    rng.random_range(0..header.min(len))
                } else {
                    rng.random_range(0..len)
                }
            };
            match rng.random_range(0..4) {
                0 => {
                    for _ in 0..rng.random_range(1..5) {
                        let i = pick(&mut rng, b.len());
                        b[i] = rng.random();
                    }
                }
                1 => {
                    let i = pick(&mut rng, b.len() - 8);
                    let v = interesting[rng.random_range(0..interesting.len())];
                    let n = if rng.random_bool(0.5) { 8 } else { 4 };
                    b[i..i + n].copy_from_slice(&v.to_le_bytes()[..n]);
                }
                2 => {
                    let i = pick(&mut rng, b.len());
                    if rng.random_bool(0.5) {
                        b.remove(i);
                    } else {
                        b.insert(i, rng.random());
                    }
                }
                _ => {
                    let i = pick(&mut rng, b.len());
                    b[i] ^= 1 << rng.random_range(0..8);
                    b.truncate(rng.random_range(i..=b.len()));
                }
            }
            let ok = catch_unwind(AssertUnwindSafe(|| exercise(b)))
                .unwrap_or_else(|_| panic!("panicked on mutation {case} of base {base_seed}"));
            parsed += ok as usize;
            total += 1;
        }
    }
    // Both outcomes are exercised: mutations of string bytes and data still parse.
    assert!(
        parsed > 100 && total - parsed > 100,
        "{parsed} of {total} parsed"
    );
}

/// Hand-made headers.
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, tensors: u64, kvs: u64) -> Self {
        Raw(b"GGUF".to_vec()).u32(version).u64(tensors).u64(kvs)
    }
    fn u32(mut self, v: u32) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.0.extend(v.to_le_bytes());
        self
    }
    fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn pad(mut self) -> Self {
        self.0.resize(self.0.len().next_multiple_of(32), 0);
        self
    }
    /// A one-dimensional tensor info.
    fn tensor(self, name: &str, len: u64, ty: u32, offset: u64) -> Self {
        self.str(name).u32(1).u64(len).u32(ty).u64(offset)
    }
}

#[track_caller]
fn refused(raw: Raw, needle: &str) {
    match GgufFile::parse(raw.0, "lying.gguf") {
        Err(e @ ModelError::Gguf { .. }) => {
            let m = e.to_string();
            assert!(m.contains("lying.gguf") && m.contains(needle), "{m}");
        }
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(f) => panic!("parsed: {f:?}"),
    }
}

#[test]
fn lying_headers_are_named_errors() {
    refused(Raw(vec![]), "file ends inside the magic");
    refused(Raw(b"GGML".to_vec()).u32(3).u64(0).u64(0), "bad magic");
    refused(Raw::header(7, 0, 0), "version 7");
    refused(Raw::header(1, 0, 0), "version 1");
    refused(Raw::header(3u32.swap_bytes(), 0, 0), "big-endian");
    refused(
        Raw::header(3, 1 << 60, 0),
        "tensor count 1152921504606846976",
    );
    refused(Raw::header(3, 5, 0).bytes(&[0; 30]), "tensor count 5");
    refused(Raw::header(3, 0, 1 << 60), "key-value count");
    // A key, then a string value, whose length is 2^62.
    refused(
        Raw::header(3, 0, 1).u64(1 << 62).bytes(&[0; 16]),
        "metadata key length 4611686018427387904",
    );
    refused(
        Raw::header(3, 0, 1).str("k").u32(8).u64(1 << 62),
        "string value of 'k' length",
    );
    refused(
        Raw::header(3, 0, 1).str("k").u32(9).u32(4).u64(1 << 61),
        "array count of 'k' 2305843009213693952",
    );
    // 2^40 strings of at least 8 bytes each cannot be in 100 bytes either.
    refused(
        Raw::header(3, 0, 1)
            .str("k")
            .u32(9)
            .u32(8)
            .u64(1 << 40)
            .bytes(&[0; 100]),
        "array count of 'k'",
    );
    let mut nested = Raw::header(3, 0, 1).str("k").u32(9);
    for _ in 0..100 {
        nested = nested.u32(9).u64(1);
    }
    refused(nested, "nested deeper");
    refused(
        Raw::header(3, 0, 1).str("k").u32(13).u32(0),
        "unknown value type 13",
    );
    refused(
        Raw::header(3, 0, 1).str("k").u32(9).u32(99).u64(0),
        "unknown value type 99",
    );
    refused(
        Raw::header(3, 0, 1).str("k").u32(7).bytes(&[2]),
        "bool value of 'k'",
    );
    refused(
        Raw::header(3, 0, 1)
            .u64(2)
            .bytes(&[0xFF, 0xFE])
            .u32(4)
            .u32(1),
        "not valid UTF-8",
    );
    refused(
        Raw::header(3, 0, 2)
            .str("k")
            .u32(4)
            .u32(1)
            .str("k")
            .u32(4)
            .u32(2),
        "duplicate metadata key 'k'",
    );
    for bad in [0, 3, 48] {
        refused(
            Raw::header(3, 0, 1)
                .str("general.alignment")
                .u32(4)
                .u32(bad),
            "general.alignment",
        );
    }
    refused(
        Raw::header(3, 1, 0).str("t").u32(1000).bytes(&[0; 64]),
        "tensor 't' has 1000 dimensions",
    );
    refused(
        Raw::header(3, 1, 0)
            .str("t")
            .u32(2)
            .u64(1 << 33)
            .u64(1 << 33)
            .u32(0)
            .u64(0),
        "overflow",
    );
    refused(
        Raw::header(3, 1, 0)
            .str("t")
            .u32(2)
            .u64(1 << 32)
            .u64(1 << 31)
            .u32(0)
            .u64(0),
        "overflow",
    );
    refused(
        Raw::header(3, 1, 0)
            .tensor("t", 4, 0, 64)
            .pad()
            .bytes(&[0; 16]),
        "past the end",
    );
    refused(
        Raw::header(3, 1, 0)
            .tensor("t", 8, 0, 0)
            .pad()
            .bytes(&[0; 16]),
        "runs past the end",
    );
    refused(
        Raw::header(3, 1, 0).tensor("t", 4, 0, 0),
        "runs past the end",
    );
    refused(
        Raw::header(3, 1, 0).tensor("t", 4, 12, 1 << 20).pad(),
        "offset 1048576 is past the end",
    );
    refused(
        Raw::header(3, 1, 0)
            .tensor("t", 4, 0, 4)
            .pad()
            .bytes(&[0; 64]),
        "offset 4 is not a multiple of the alignment 32",
    );
    refused(
        Raw::header(3, 2, 0)
            .tensor("t", 1, 0, 0)
            .tensor("t", 1, 0, 32)
            .pad()
            .bytes(&[0; 64]),
        "duplicate tensor name 't'",
    );
    refused(
        Raw::header(3, 1, 0)
            .tensor("t", 16, 8, 0)
            .pad()
            .bytes(&[0; 64]),
        "not a multiple of its block size 32",
    );
    refused(
        Raw::header(3, 1, 0).str("t").u32(4).u64(1).u64(1),
        "file ends inside the dims of tensor 't'",
    );
    // The same headers told the truth parse.
    let ok = Raw::header(3, 1, 0)
        .tensor("t", 4, 0, 0)
        .pad()
        .bytes(&[0; 16]);
    assert_eq!(GgufFile::parse(ok.0, "ok.gguf").unwrap().tensors.len(), 1);
}
