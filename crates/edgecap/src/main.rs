//! The `edgecap` binary: parse flags, set up logging, run a command, map failures to exit codes.

mod capture_cmd;
mod cli;
mod exit;
mod lab_cmd;
mod units;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
        .with_writer(std::io::stderr)
        .init();
    let result = match &cli.command {
        cli::Command::Capture(a) => capture_cmd::run(a),
        cli::Command::Lab { command } => lab_cmd::run(command),
        cli::Command::Bench { command: _ } => Err(exit::Failure::runtime("not yet")),
    };
    if let Err(f) = result {
        eprintln!("edgecap: error: {}", f.message);
        std::process::exit(f.code);
    }
}
