//! argmin's cost and gradient traits for an objective that computes both in one pass, so
//! that each fit writes its objective once (`curve`, `emergence`).

use argmin::core::{CostFunction, Executor, Gradient, State, TerminationReason};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;

/// A smooth objective: its value at `p` and, when `gradient` is true, its gradient.
pub trait Objective {
    fn evaluate(&self, p: &[f64], gradient: bool) -> (f64, Vec<f64>);
}

/// An [`Objective`] as argmin's problem; a non-finite value or gradient is an error, which
/// stops the solver instead of letting it wander.
pub struct Argmin<T>(pub T);

impl<T: Objective> CostFunction for Argmin<T> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, p: &Vec<f64>) -> Result<f64, argmin::core::Error> {
        let (c, _) = self.0.evaluate(p, false);
        if c.is_finite() {
            Ok(c)
        } else {
            Err(argmin::core::Error::msg("non-finite objective"))
        }
    }
}

impl<T: Objective> Gradient for Argmin<T> {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, p: &Vec<f64>) -> Result<Vec<f64>, argmin::core::Error> {
        let (_, g) = self.0.evaluate(p, true);
        if g.iter().all(|v| v.is_finite()) {
            Ok(g)
        } else {
            Err(argmin::core::Error::msg("non-finite gradient"))
        }
    }
}

/// L-BFGS (More-Thuente line search, 10 corrections) from `p0`, stopping at a gradient below
/// `grad_tol`, a cost change below 1e-13 or `max_iters`: the best parameters and why it
/// stopped. A run that fails at the start (a non-finite objective there) returns the start
/// and no reason; None only if the solver cannot be configured.
pub fn lbfgs<T: Objective>(
    problem: T,
    p0: Vec<f64>,
    grad_tol: f64,
    max_iters: u64,
) -> Option<(Vec<f64>, Option<TerminationReason>)> {
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(grad_tol)
        .ok()?
        .with_tolerance_cost(1e-13)
        .ok()?;
    Some(
        match Executor::new(Argmin(problem), solver)
            .configure(|s| s.param(p0.clone()).max_iters(max_iters))
            .timer(false)
            .run()
        {
            Ok(res) => {
                let st = res.state();
                let p = st.get_best_param().cloned().unwrap_or(p0);
                (p, st.get_termination_reason().cloned())
            }
            Err(_) => (p0, None),
        },
    )
}
