//! `amqp-rpc`: AMQP 0-9-1 RPC from raw TCP. Each subcommand lives in its own module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use amqp_rpc::decode;

mod bench;

#[derive(Debug, Parser)]
#[command(name = "amqp-rpc", version, about = "AMQP 0-9-1 RPC from raw TCP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Dissect the AMQP frames in a capture file or a hex dump.
    Decode(decode::DecodeArgs),
    /// Measure tutorial-six RPC (or, with --raw, the broker's publish+consume ceiling).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Bench(args) => bench::run(&args),
    }
}
