//! One module per subcommand.

pub mod bench_report;
pub mod check;
pub mod emerge;
pub mod fit;
pub mod hidden;
pub mod info;
pub mod kernel;
pub mod loss;
pub mod report;
pub mod sweep;
pub mod tensors;
pub mod tokenize;

/// Parses a count or size flag, saying so when the value is negative (clap would otherwise
/// answer "invalid digit found in string").
pub fn count<T: std::str::FromStr<Err = std::num::ParseIntError>>(s: &str) -> Result<T, String> {
    if s.trim_start().starts_with('-') {
        return Err(format!("{s} is negative: give a whole number, 0 or more"));
    }
    s.parse::<T>()
        .map_err(|e| format!("'{s}' is not a whole number of 0 or more ({e})"))
}
