//! `weir-perf`, the load and latency tool, arrives with the perf issue.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "weir-perf: not built yet; criterion benchmarks live in benches/ (`cargo bench -p weir-benches`)"
    );
    ExitCode::from(2)
}
