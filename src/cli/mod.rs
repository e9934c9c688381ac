//! One module per subcommand.

pub mod bench_report;
pub mod hidden;
pub mod info;
pub mod kernel;
pub mod loss;
pub mod report;
pub mod sweep;
pub mod tokenize;
