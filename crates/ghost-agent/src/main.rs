//! `ghost-agent`: the investigator's command line (thin glue over the library).

fn main() -> std::process::ExitCode {
    ghost_agent::cli::main()
}
