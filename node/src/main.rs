//! The `weir` binary. The node (`weir serve`) and the client commands arrive with the node
//! issue; until then the binary says so plainly instead of pretending to serve.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "weir {}: the node (`weir serve`) and the CLI are not built yet; this build contains the \
         storage engine (crate weir-log) only",
        env!("CARGO_PKG_VERSION")
    );
    ExitCode::from(2)
}
