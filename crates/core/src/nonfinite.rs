//! Serde helpers for statistics that may be NaN or infinite (a value that could not be
//! estimated). JSON has no NaN or infinity: serde_json writes them as `null` and then refuses
//! to read that `null` back into an `f64`, so a results file holding one could never be read
//! again. With these, a non-finite value is written as `null` and `null` is read back as NaN
//! ("not estimated"); finite values round-trip unchanged.
//!
//! ```text
//! #[serde(with = "ceiling_core::nonfinite")] value: f64,
//! #[serde(with = "ceiling_core::nonfinite::vec")] values: Vec<f64>,
//! #[serde(with = "ceiling_core::nonfinite::vec2")] table: Vec<Vec<f64>>,
//! ```

use serde::{Deserialize, Deserializer, Serialize, Serializer};

fn opt(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn nan(v: Option<f64>) -> f64 {
    v.unwrap_or(f64::NAN)
}

pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    opt(*v).serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Option::<f64>::deserialize(d).map(nan)
}

/// The same for a list of values.
pub mod vec {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&x| opt(x)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Vec::<Option<f64>>::deserialize(d).map(|v| v.into_iter().map(nan).collect())
    }
}

/// The same for a list of lists of values.
pub mod vec2 {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            v.iter()
                .map(|row| row.iter().map(|&x| opt(x)).collect::<Vec<_>>()),
        )
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Vec::<Vec<Option<f64>>>::deserialize(d).map(|v| {
            v.into_iter()
                .map(|r| r.into_iter().map(nan).collect())
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Row {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::vec")]
        v: Vec<f64>,
        #[serde(with = "super::vec2")]
        t: Vec<Vec<f64>>,
    }

    #[test]
    fn nan_and_infinite_statistics_read_back_as_nan() {
        let row = Row {
            x: f64::NAN,
            v: vec![1.5, f64::INFINITY, -2.0],
            t: vec![vec![f64::NEG_INFINITY, 3.0]],
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"x":null,"v":[1.5,null,-2.0],"t":[[null,3.0]]}"#);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.x.is_nan());
        assert_eq!(back.v[0], 1.5);
        assert!(back.v[1].is_nan());
        assert_eq!(back.v[2], -2.0);
        assert!(back.t[0][0].is_nan() && back.t[0][1] == 3.0);
    }
}
