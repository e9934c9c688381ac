use super::*;

#[test]
fn same_seed_same_model_and_config_round_trips() {
    let c = ModelConfig::llama_like(2, 16, 4, 2, 11);
    let a = ModelWeights::random(&c, 7).unwrap();
    let b = ModelWeights::random(&c, 7).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, ModelWeights::random(&c, 8).unwrap());
    let first = a.token_embedding.as_ref().unwrap()[0];
    assert!(first.is_finite() && first.abs() < 3f32.sqrt());
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), c);
    // Variance of a projection is about 1 / fan_in.
    let w = &a.layers[0].up.weight;
    let var = w.iter().map(|v| (v * v) as f64).sum::<f64>() / w.len() as f64;
    assert!((var * 16.0 - 1.0).abs() < 0.2, "var {var}");
}

#[test]
fn bad_configs_and_inputs_are_refused() {
    let mut c = ModelConfig::gpt2_like(1, 12, 5, 10);
    assert!(matches!(c.validate(), Err(ModelError::Config(_))));
    c.heads = 4;
    c.kv_heads = 4;
    let w = ModelWeights::random(&c, 1).unwrap();
    let ids = [1u32, 2, 30];
    let input = ForwardInput::Tokens {
        ids: &ids,
        batch: 1,
        n: 3,
    };
    let e = reference::forward(&w, &input, &[2]).unwrap_err();
    assert!(e.to_string().contains("token id 30"), "{e}");
    let ids = [1u32, 2, 3];
    let input = ForwardInput::Tokens {
        ids: &ids,
        batch: 1,
        n: 3,
    };
    assert!(reference::forward(&w, &input, &[3]).is_err());
    let mut broken = w.clone();
    broken.layers[0].q.weight.pop();
    assert!(broken
        .validate()
        .unwrap_err()
        .to_string()
        .contains("layers.0.q.weight"));
}

#[test]
fn reference_forward_is_causal_and_reports_spread() {
    let c = ModelConfig::llama_like(2, 16, 4, 2, 0);
    let w = ModelWeights::random(&c, 3).unwrap();
    let (batch, n, d) = (2, 5, 16);
    let x: Vec<f32> = (0..batch * n * d)
        .map(|i| ((i * 37 % 19) as f32 - 9.0) / 9.0)
        .collect();
    let input = ForwardInput::Vectors { x: &x, batch, n };
    let s = reference::forward(&w, &input, &[0, 2, 4]).unwrap();
    assert_eq!(s.hidden.len(), 2);
    assert_eq!(s.hidden[0].len(), batch * 3 * d);
    assert_eq!(s.n_eff[0].len(), batch * 4 * 3);
    // Position 0 under a causal mask sees one key: n_eff 1, entropy 0.
    assert!((s.n_eff[1][0] - 1.0).abs() < 1e-12);
    assert!(s.entropy[1][0].abs() < 1e-12);
    assert!(s.n_eff[1][2] > 1.0 && s.n_eff[1][2] <= 5.0);
    // Changing the last position leaves earlier positions unchanged.
    let mut x2 = x.clone();
    x2[(n - 1) * d] += 1.0;
    let input2 = ForwardInput::Vectors { x: &x2, batch, n };
    let s2 = reference::forward(&w, &input2, &[0, 2, 4]).unwrap();
    assert_eq!(s.hidden[1][..2 * d], s2.hidden[1][..2 * d]);
    assert_ne!(s.hidden[1][2 * d..3 * d], s2.hidden[1][2 * d..3 * d]);
}
