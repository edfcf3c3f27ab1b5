//! `netlab`: see `netlab --help` and `docs/netlab.md`.

fn main() -> std::process::ExitCode {
    netlab::cli::main_with_args()
}
