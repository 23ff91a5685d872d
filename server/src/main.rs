//! `flowstate`: the dashboard server (`serve`) and the admin commands over a workflow state database.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
