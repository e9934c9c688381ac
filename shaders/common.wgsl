// Shared helpers, prepended to every kernel after the precision prelude (which defines T).

// erf to about 1.5e-7 absolute: its Taylor series near 0 (where A&S 7.1.26 would lose
// relative accuracy), Abramowitz & Stegun 7.1.26 beyond.
fn erf_approx(x: f32) -> f32 {
    let ax = abs(x);
    var r: f32;
    if ax < 0.5 {
        let x2 = ax * ax;
        r = ax * (1.1283791671 + x2 * (-0.3761263890 + x2 * (0.1128379167 + x2 * (-0.0268661706 + x2 * (0.0052239776 - x2 * 0.0008548170)))));
    } else {
        // A&S 7.1.26 with its 1.5e-7 absolute error, fine away from 0.
        let t = 1.0 / (1.0 + 0.3275911 * ax);
        let y = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
        r = 1.0 - y * exp(-ax * ax);
    }
    return select(r, -r, x < 0.0);
}

// The activation codes of ceiling_core::kernel::Activation.
fn activate(x: f32, act: u32) -> f32 {
    switch act {
        case 1u: { return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752)); }
        case 2u: {
            // tanh overflows to NaN in some drivers for large |u|; clamp, tanh(10) == 1 in f32.
            let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -10.0, 10.0);
            return 0.5 * x * (1.0 + tanh(u));
        }
        case 3u: { return x / (1.0 + exp(-x)); }
        default: { return x; }
    }
}

// Row index of a workgroup in a 2D grid of workgroups (one dimension holds at most 65535).
fn flat_workgroup(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}
