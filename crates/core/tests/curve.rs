//! Curve fits with and without a pedestal, and the two-variable loss decomposition: data
//! generated from known parameters plus multiplicative noise from fixed seeds, recovered.

use ceiling_core::curve::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// y = (E + A x^-alpha) exp(noise z), x = 16, 32, ... (n points, doubling).
fn curve(e: f64, a: f64, alpha: f64, noise: f64, seed: u64, n: usize) -> Vec<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let x = 16.0 * 2f64.powi(i as i32);
            let z: f64 = StandardNormal.sample(&mut rng);
            (x, (e + a * x.powf(-alpha)) * (noise * z).exp())
        })
        .collect()
}

fn rel(got: f64, want: f64) -> f64 {
    (got / want - 1.0).abs()
}

#[test]
fn pedestal_form_recovers_e_a_alpha() {
    for seed in 0..5 {
        let p = curve(2.0, 30.0, 0.5, 0.01, seed, 10);
        let f = fit_curve(&p, Form::Pedestal).unwrap();
        eprintln!("seed {seed}: E {} A {} alpha {}", f.e, f.a, f.alpha);
        assert!(f.converged);
        assert!(rel(f.e, 2.0) < 0.05, "E {}", f.e);
        assert!(rel(f.a, 30.0) < 0.2, "A {}", f.a);
        assert!((f.alpha - 0.5).abs() < 0.04, "alpha {}", f.alpha);
        assert_eq!(f.points, 10);
        assert!(f.aicc.is_some());
    }
}

#[test]
fn pure_power_law_gives_no_pedestal() {
    for seed in 0..5 {
        let p = curve(0.0, 30.0, 0.5, 0.01, seed, 10);
        let c = compare_curves(&p, &[]).unwrap();
        let min_y = p.iter().map(|q| q.1).fold(f64::INFINITY, f64::min);
        eprintln!(
            "seed {seed}: power law A {} alpha {}; pedestal E {} ({} of min y) alpha {}; {:?}",
            c.power_law.a,
            c.power_law.alpha,
            c.pedestal.e,
            c.pedestal.e / min_y,
            c.pedestal.alpha,
            c.choice
        );
        assert!(c.power_law.converged && c.pedestal.converged);
        assert_eq!(c.power_law.e, 0.0);
        assert!((c.power_law.alpha - 0.5).abs() < 0.01);
        assert!(rel(c.power_law.a, 30.0) < 0.1);
        assert!(c.pedestal.e < 0.05 * min_y, "E {}", c.pedestal.e);
        assert!((c.pedestal.alpha - 0.5).abs() < 0.03);
        assert!(c.alpha_shift.abs() < 0.03);
        assert_ne!(c.choice, Choice::WithPedestal, "{}", c.reason);
    }
}

#[test]
fn a_real_pedestal_biases_the_power_law_exponent_small_and_aicc_sees_it() {
    for seed in 0..5 {
        let p = curve(2.0, 30.0, 0.5, 0.01, seed, 10);
        let c = compare_curves(&p, &[]).unwrap();
        eprintln!(
            "seed {seed}: power-law alpha {} pedestal alpha {} shift {} AICc {:?} vs {:?}",
            c.power_law.alpha, c.pedestal.alpha, c.alpha_shift, c.power_law.aicc, c.pedestal.aicc
        );
        // Without the pedestal the curve's flattening is read as a shallow power law.
        assert!(c.power_law.alpha < 0.35, "{}", c.power_law.alpha);
        assert!(c.alpha_shift > 0.15, "{}", c.alpha_shift);
        assert_eq!(c.alpha_shift, c.pedestal.alpha - c.power_law.alpha);
        assert_eq!(c.choice, Choice::WithPedestal, "{}", c.reason);
    }
}

#[test]
fn four_points_leave_the_choice_undecided() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 1, 4);
    let c = compare_curves(&p, &[]).unwrap();
    assert!(c.power_law.aicc.is_some());
    assert!(c.pedestal.aicc.is_none());
    assert_eq!(c.choice, Choice::Undecided);
    assert!(c.reason.contains("undecided"), "{}", c.reason);
}

/// A curve flat but for its first point: the pedestal form fits it as a step (alpha far
/// beyond any power law on the grid), and that must not win the choice or pass as an exponent.
#[test]
fn a_step_is_not_read_as_a_pedestal_power_law() {
    let p: Vec<(f64, f64)> = [2.0, 1.0, 1.01, 0.99, 1.0, 1.005]
        .iter()
        .enumerate()
        .map(|(i, &y)| (16.0 * 2f64.powi(i as i32), y))
        .collect();
    let c = compare_curves(&p, &[]).unwrap();
    eprintln!("{}", c.report("n"));
    assert!(
        c.pedestal.alpha > MAX_RESOLVED_ALPHA,
        "{}",
        c.pedestal.alpha
    );
    assert!(c.pedestal.step_note().is_some());
    assert_eq!(c.choice, Choice::Undecided);
    assert!(c.reason.contains("a step"), "{}", c.reason);
    // A real pedestal curve (alpha 0.5) is not flagged.
    let c = compare_curves(&curve(2.0, 30.0, 0.5, 0.01, 0, 10), &[]).unwrap();
    assert!(c.pedestal.step_note().is_none());
}

#[test]
fn a_rising_curve_gives_a_negative_exponent() {
    let p = curve(0.0, 2.0, -0.3, 0.01, 3, 8);
    let f = fit_curve(&p, Form::PowerLaw).unwrap();
    assert!(f.converged);
    assert!((f.alpha + 0.3).abs() < 0.02, "alpha {}", f.alpha);
}

#[test]
fn bootstrap_intervals_cover_the_true_values() {
    let (e, a, alpha) = (2.0, 30.0, 0.5);
    let seeds = 50;
    let mut cover = [0usize; 3];
    for seed in 0..seeds {
        let p = curve(e, a, alpha, 0.02, 100 + seed, 10);
        let reps = resample_points(&p, 200, seed);
        let f = fit_curve_weighted(&p, None, Form::Pedestal, &reps).unwrap();
        let i = f.intervals.expect("intervals from 200 replicates");
        assert!(i.replicates_used >= 100);
        assert_eq!(i.replicates_used + i.replicates_failed, 200);
        cover[0] += usize::from(i.e.contains(e));
        cover[1] += usize::from(i.a.contains(a));
        cover[2] += usize::from(i.alpha.contains(alpha));
    }
    eprintln!("coverage of E, A, alpha over {seeds} seeds: {cover:?}");
    for c in cover {
        assert!(
            c as f64 >= 0.85 * seeds as f64,
            "coverage {cover:?} of {seeds}"
        );
    }
}

#[test]
fn comparison_carries_intervals_for_both_forms() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 7, 10);
    let c = compare_curves(&p, &resample_points(&p, 100, 1)).unwrap();
    let pl = c.power_law.intervals.as_ref().unwrap();
    let pd = c.pedestal.intervals.as_ref().unwrap();
    assert_eq!((pl.e.lo, pl.e.hi), (0.0, 0.0));
    assert!(pl.alpha.contains(c.power_law.alpha));
    assert!(pd.alpha.contains(c.pedestal.alpha) && pd.e.contains(c.pedestal.e));
    // The power law's interval does not reach the true exponent: the bias is not noise.
    assert!(pl.alpha.hi < 0.5);
    let text = c.report("n");
    eprintln!("{text}");
    assert!(text.contains("A n^-alpha") && text.contains("E + A n^-alpha"));
    assert!(text.contains(&format!("shifts alpha by {:+.4}", c.alpha_shift)));
    assert!(text.contains("AICc choice: with pedestal"));
}

#[test]
fn profile_of_alpha_is_lowest_at_the_fit() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 2, 10);
    for form in [Form::PowerLaw, Form::Pedestal] {
        let f = fit_curve_weighted(&p, None, form, &resample_points(&p, 50, 3)).unwrap();
        assert_eq!(f.profile.len(), PROFILE_POINTS);
        let mid = f.profile[PROFILE_POINTS / 2];
        assert_eq!(mid.value, f.alpha);
        assert!((mid.objective - f.objective).abs() <= 1e-12);
        let ci = f.intervals.as_ref().unwrap().alpha;
        assert!(f.profile[0].value <= ci.lo && f.profile[PROFILE_POINTS - 1].value >= ci.hi);
        for w in f.profile.windows(2) {
            assert!(w[0].value < w[1].value);
        }
        for q in &f.profile {
            assert!(q.objective >= f.objective * (1.0 - 1e-9), "{form:?} {q:?}");
        }
        // Rising away from the fit on both sides.
        assert!(f.profile[0].objective > f.objective);
        assert!(f.profile[PROFILE_POINTS - 1].objective > f.objective);
    }
}

#[test]
fn bad_points_are_refused() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 1, 10);
    let err = |r: Result<CurveFit, CurveError>| r.unwrap_err().to_string();
    let e = err(fit_curve(&p[..2], Form::Pedestal));
    assert!(
        e.contains("at least 3 points") && e.contains("got 2"),
        "{e}"
    );
    let e = err(fit_curve(&p[..1], Form::PowerLaw));
    assert!(e.contains("at least 2 points"), "{e}");
    assert!(compare_curves(&p[..2], &[]).is_err());
    for (i, bad) in [
        (0.0, 1.0),
        (-1.0, 1.0),
        (1.0, 0.0),
        (1.0, -2.0),
        (f64::NAN, 1.0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut q = p.clone();
        q[3] = bad;
        let e = err(fit_curve(&q, Form::Pedestal));
        assert!(e.contains("point 3") && e.contains("> 0"), "{i}: {e}");
        // A bad point inside a replicate is refused as well.
        assert!(compare_curves(&p, &[q]).is_err());
    }
    let e = err(fit_curve_weighted(&p, Some(&[1.0; 3]), Form::Pedestal, &[]));
    assert!(e.contains("3 weights for 10 points"), "{e}");
}

#[test]
fn weights_change_the_fit_toward_heavy_points() {
    let mut p = curve(0.0, 30.0, 0.5, 0.001, 4, 8);
    p[7].1 *= 1.5; // an outlier at the end
    let plain = fit_curve(&p, Form::PowerLaw).unwrap();
    let mut w = vec![1.0; 8];
    w[7] = 100.0;
    let heavy = fit_curve_weighted(&p, Some(&w), Form::PowerLaw, &[]).unwrap();
    // Huber keeps the outlier's pull bounded: the plain fit stays near 0.5.
    assert!((plain.alpha - 0.5).abs() < 0.01, "{}", plain.alpha);
    assert!(
        heavy.alpha < plain.alpha - 0.01,
        "{} vs {}",
        heavy.alpha,
        plain.alpha
    );
}

#[test]
fn non_finite_values_survive_a_json_round_trip() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 1, 10);
    let mut c = compare_curves(&p, &[]).unwrap();
    c.pedestal.e = f64::NAN;
    c.pedestal.profile[0].objective = f64::INFINITY;
    c.alpha_shift = f64::NAN;
    let text = serde_json::to_string(&c).unwrap();
    let back: CurveComparison = serde_json::from_str(&text).unwrap();
    assert!(back.pedestal.e.is_nan() && back.alpha_shift.is_nan());
    assert!(back.pedestal.profile[0].objective.is_nan());
    // serde_json (without its float_roundtrip feature) may read a float back 1 ulp off.
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-14 * x.abs().max(y.abs());
    assert!(close(back.pedestal.alpha, c.pedestal.alpha));
    assert!(close(back.power_law.a, c.power_law.a));
    assert_eq!(back.power_law.aicc.is_some(), c.power_law.aicc.is_some());
    assert_eq!(back.choice, c.choice);
}

#[test]
fn resampling_is_deterministic_case_resampling() {
    let p = curve(2.0, 30.0, 0.5, 0.01, 1, 10);
    let a = resample_points(&p, 20, 9);
    assert_eq!(a, resample_points(&p, 20, 9));
    assert_ne!(a, resample_points(&p, 20, 10));
    assert_eq!(a.len(), 20);
    assert!(a
        .iter()
        .all(|r| r.len() == 10 && r.iter().all(|q| p.contains(q))));
}

// ---------------------------------------------------------------------------------------------

/// Hoffmann et al.'s fit: E, A, B, alpha, beta.
const CHINCHILLA: [f64; 5] = [1.69, 406.4, 410.7, 0.34, 0.28];

/// N from 1e7 to 1e10 and D from 1e9 to 1e12, 6 x 6 log-spaced, loss with 1% noise.
fn table(p: [f64; 5], noise: f64, seed: u64) -> Vec<(f64, f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = vec![];
    for i in 0..6 {
        for j in 0..6 {
            let n = 1e7 * 10f64.powf(i as f64 * 0.6);
            let d = 1e9 * 10f64.powf(j as f64 * 0.6);
            let z: f64 = StandardNormal.sample(&mut rng);
            let l = p[0] + p[1] / n.powf(p[3]) + p[2] / d.powf(p[4]);
            rows.push((n, d, l * (noise * z).exp()));
        }
    }
    rows
}

#[test]
fn two_variable_fit_recovers_chinchilla() {
    let [e, a, b, alpha, beta] = CHINCHILLA;
    for seed in 0..3 {
        let rows = table(CHINCHILLA, 0.01, seed);
        let c = fit_table(&rows, 100, seed).unwrap();
        let w = &c.with_pedestal;
        let i = w.intervals.as_ref().unwrap();
        eprintln!(
            "seed {seed}: E {:.3} {:?} A {:.1} {:?} B {:.1} {:?} alpha {:.3} {:?} beta {:.3} {:?}",
            w.e, i.e, w.a, i.a, w.b, i.b, w.alpha, i.alpha, w.beta, i.beta
        );
        assert!(w.converged && c.without_pedestal.converged);
        assert!(rel(w.e, e) < 0.06, "E {}", w.e);
        assert!((w.alpha - alpha).abs() < 0.04, "alpha {}", w.alpha);
        assert!((w.beta - beta).abs() < 0.04, "beta {}", w.beta);
        // A and B trade off against the exponents: a factor of 2.5 either way.
        assert!((w.a / a).ln().abs() < 2.5f64.ln(), "A {}", w.a);
        assert!((w.b / b).ln().abs() < 2.5f64.ln(), "B {}", w.b);
        for (name, ci, v) in [
            ("E", i.e, e),
            ("A", i.a, a),
            ("B", i.b, b),
            ("alpha", i.alpha, alpha),
            ("beta", i.beta, beta),
        ] {
            assert!(ci.contains(v), "{name}: {ci:?} misses {v}");
        }
        // Without E the fit is worse by far, and says so.
        let (with, without) = (w.aicc.unwrap(), c.without_pedestal.aicc.unwrap());
        assert!(without > with + 10.0, "AICc {without} vs {with}");
        assert_eq!(c.choice, Choice::WithPedestal);
        assert_eq!(c.without_pedestal.e, 0.0);
        assert_eq!(c.alpha_shift, w.alpha - c.without_pedestal.alpha);
        assert_eq!(c.beta_shift, w.beta - c.without_pedestal.beta);
        assert_eq!(w.profile_alpha.len(), PROFILE_POINTS);
        assert_eq!(w.profile_beta[PROFILE_POINTS / 2].value, w.beta);
    }
}

#[test]
fn two_variable_fit_without_pedestal_when_there_is_none() {
    let rows = table([0.0, 406.4, 410.7, 0.34, 0.28], 0.01, 5);
    let c = fit_table(&rows, 0, 0).unwrap();
    let o = &c.without_pedestal;
    eprintln!(
        "no pedestal: A {} B {} alpha {} beta {}; with: E {}; {}",
        o.a, o.b, o.alpha, o.beta, c.with_pedestal.e, c.reason
    );
    assert!((o.alpha - 0.34).abs() < 0.03 && (o.beta - 0.28).abs() < 0.03);
    assert!(c.with_pedestal.e < 0.1);
    assert!(c.with_pedestal.intervals.is_none());
    assert_ne!(c.choice, Choice::WithPedestal);
}

#[test]
fn bad_tables_are_refused() {
    let rows = table(CHINCHILLA, 0.01, 1);
    let e = fit_table(&rows[..5], 0, 0).unwrap_err().to_string();
    assert!(
        e.contains("at least 6 points") && e.contains("got 5"),
        "{e}"
    );
    let mut bad = rows.clone();
    bad[4].1 = 0.0;
    let e = fit_table(&bad, 0, 0).unwrap_err().to_string();
    assert!(e.contains("point 4 has D = 0"), "{e}");
    bad[4] = (1e9, 1e10, -1.0);
    let e = fit_table(&bad, 0, 0).unwrap_err().to_string();
    assert!(e.contains("loss = -1"), "{e}");
}
