//! argmin's cost and gradient traits for an objective that computes both in one pass, so
//! that each fit writes its objective once (`curve`, `emergence`).

use argmin::core::{CostFunction, Gradient};

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
