//! `amqp-rpc`: AMQP 0-9-1 RPC from raw TCP. Each subcommand lives in its own module.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use amqp_rpc::{bench, decode, metrics, record};

mod call;
mod demo;
mod proxy;
mod serve;

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
    /// Measure tutorial-six RPC: closed loop (-n, -c), open loop (--rate, --duration, --plot), or with --raw the
    /// broker's publish+consume ceiling.
    Bench(bench::BenchArgs),
    /// Serve fib(n) on rpc_queue, as tutorial six's rpc_server.py (Ctrl-C/SIGTERM: graceful stop).
    Serve(serve::ServeArgs),
    /// Ask a server for fib(N), as tutorial six's rpc_client.py.
    Call(call::CallArgs),
    /// Run a server and a client in this process against the local broker.
    Demo(demo::DemoArgs),
    /// Forward AMQP connections to a broker, showing (and recording) every frame that passes.
    Proxy(proxy::ProxyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => decode::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Call(args) => call::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Proxy(args) => proxy::run(&args),
    }
}
