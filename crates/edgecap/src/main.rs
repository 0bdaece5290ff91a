//! The `edgecap` binary: parse flags, set up logging, run a command, map failures to exit codes.

mod admin_cmd;
mod agent_cmd;
mod bench_cmd;
mod capture_cmd;
mod cli;
mod client;
mod diff_cmd;
mod exit;
mod fate_cmd;
mod lab_cmd;
mod merge_cmd;
mod observe;
mod out;
mod server_cmd;
mod signature_cmd;
mod up_cmd;

// `crate::units::...` in the command modules: the quantities are shared with the benchmarks.
use edgecap_units as units;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let format = match &cli.command {
        cli::Command::Server(a) => a.log.log_format,
        cli::Command::Agent(a) => a.log.log_format,
        cli::Command::Up(a) => a.log.log_format,
        _ => observe::LogFormat::Text,
    };
    observe::init_logging(&cli.log, format);
    let result = match &cli.command {
        cli::Command::Capture(a) => capture_cmd::run(a),
        cli::Command::Lab { command } => lab_cmd::run(command),
        cli::Command::Ls { server, json } => server.connect().and_then(|c| client::ls(&c, *json)),
        cli::Command::Status { id, server, json } => {
            server.connect().and_then(|c| client::status(&c, id, *json))
        }
        cli::Command::Stop { id, server, json } => {
            server.connect().and_then(|c| client::stop(&c, id, *json))
        }
        cli::Command::Download {
            id,
            write,
            format,
            server,
            quiet,
        } => server
            .connect()
            .and_then(|c| client::download(&c, id, write, format.as_deref(), *quiet)),
        cli::Command::Traffic(a) => client::traffic(a),
        cli::Command::Top(a) => client::top(a),
        cli::Command::Triggers(a) => client::triggers(a),
        cli::Command::Events(a) => client::events(a),
        cli::Command::Bench { args } => bench_cmd::run(args, &cli.log),
        cli::Command::Fate(a) => fate_cmd::run(a),
        cli::Command::Diff(a) => diff_cmd::run(a),
        cli::Command::Merge(a) => merge_cmd::run(a),
        cli::Command::Signature(a) => signature_cmd::run(a),
        cli::Command::Server(a) => server_cmd::run(a),
        cli::Command::Agent(a) => agent_cmd::run(a),
        cli::Command::Admin(a) => admin_cmd::run(a),
        cli::Command::Up(a) => up_cmd::run(a),
    };
    if let Err(f) = result.and_then(|()| out::finish()) {
        eprintln!("edgecap: error: {}", f.message);
        std::process::exit(f.code);
    }
}
