//! `amqp-rpc call N`: tutorial six's `rpc_client.py` — one call, printed the tutorial's way.

use std::fmt::Display;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use amqp_client::ConnectionConfig;
use rpc_client::{
    CallOptions, CorrelationIds, FibAnswer, ReconnectingRpcClient, RetryPolicy, RpcClient,
    DEFAULT_URI, RPC_QUEUE,
};

/// Arguments of `amqp-rpc call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// n: the call asks for fib(n). Anything else is sent as it is, to see how the server
    /// answers bad input (e.g. `-- -5`, `abc`).
    #[arg(allow_hyphen_values = true)]
    pub n: String,
    /// Broker URI; repeat it for the nodes of a cluster (tried in turn).
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: Vec<String>,
    /// Request queue.
    #[arg(long, default_value = RPC_QUEUE)]
    pub queue: String,
    /// Give up after this long: `30s`, `500ms`, `2m`, or plain seconds.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Receive the reply by RabbitMQ's direct reply-to instead of a callback queue.
    #[arg(long)]
    pub direct_reply_to: bool,
    /// Ask in JSON (`{"n": N}`, `content_type: application/json`) and print the JSON reply
    /// (`{"n": N, "fib": "…"}`). Anything but a number is sent as the JSON body as it is.
    #[arg(long)]
    pub json: bool,
    /// Send the correlation id as the uuid's 16 raw bytes (as RabbitMQ's Erlang tutorial client
    /// does) instead of its 36-character text.
    #[arg(long)]
    pub binary_ids: bool,
    /// Send fib(N) again, up to this many times, when the connection is lost or no answer comes
    /// in time (reconnecting first, to any `--uri`): fib is idempotent, a second answer is
    /// harmless. Bad input (not a number) is never retried.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub retries: u32,
    /// Record this process's connections as a pcapng capture (plaintext, also over TLS).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<std::path::PathBuf>,
}

/// Makes the call; prints ` [x] Requesting fib(N)` and ` [.] Got …`.
pub fn run(args: &CallArgs) -> ExitCode {
    init_logging("warn");
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let tap = match crate::record::own_connections(args.record.as_deref()) {
        Ok(tap) => tap,
        Err(e) => return fail(e),
    };
    let code = match runtime.block_on(call(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    };
    crate::record::report(tap.as_ref());
    code
}

async fn call(args: &CallArgs) -> Result<(), String> {
    let config = ConnectionConfig::parse_many(&args.uri).map_err(|e| e.to_string())?;
    let builder = RpcClient::builder()
        .queue(&args.queue)
        .timeout(args.timeout)
        .direct_reply_to(args.direct_reply_to)
        .correlation_ids(if args.binary_ids {
            CorrelationIds::UuidBinary
        } else {
            CorrelationIds::UuidText
        });
    let policy = RetryPolicy {
        retries: args.retries,
        ..RetryPolicy::default()
    };
    let client = ReconnectingRpcClient::connect(config, builder, policy)
        .await
        .map_err(|e| explain_connect(&e.to_string()))?;
    println!(" [x] Requesting fib({})", args.n);
    if args.json {
        let body = match args.n.parse::<u64>() {
            Ok(n) => serde_json::to_vec(&rpc_wire::json::FibRequest { n }).unwrap_or_default(),
            Err(_) => args.n.clone().into_bytes(),
        };
        let mut options = CallOptions::timeout(args.timeout);
        options.properties.content_type = Some(rpc_wire::CONTENT_TYPE_JSON.into());
        let reply = client
            .call_raw_with(
                &args.queue,
                body.into(),
                options,
                args.n.parse::<u64>().is_ok(),
            )
            .await;
        let _ = client.close().await;
        return match reply {
            Ok(reply) => {
                println!(" [.] Got {}", amqp_codec::Escaped(&reply.body));
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        };
    }
    let answer = match args.n.parse::<u64>() {
        Ok(n) => client.fib(n).await,
        // Not an n our client would send: send it verbatim and let the server judge it.
        Err(_) => match client
            .call_raw_with(
                &args.queue,
                args.n.clone().into(),
                CallOptions::timeout(args.timeout),
                false,
            )
            .await
        {
            Ok(reply) => FibAnswer::parse(&reply.body),
            Err(e) => Err(e),
        },
    };
    let _ = client.close().await;
    match answer {
        Ok(value) => {
            println!(" [.] Got {value}");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Durations on the command line (the library's, so `bench` parses them the same way).
pub use amqp_rpc::duration::parse_duration;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (else `default`, e.g. `warn`).
pub fn init_logging(default: &str) {
    init_logging_as(default, LogFormat::Text);
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and every field of the
    /// event at the top level (a request's `trace_id` among them), plus the enclosing spans.
    Json,
}

/// [`init_logging`] in the given format.
pub fn init_logging_as(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line to a closed stderr (the parent went away) must not panic the worker.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
}

/// Prints one clear error line and returns the failure exit code.
pub fn fail(message: impl Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Adds the likely fix to a connection failure.
pub fn explain_connect(message: &str) -> String {
    if message.contains("refused") || message.contains("timed out") {
        format!("{message} (is RabbitMQ running? `bash scripts/broker.sh` starts it)")
    } else {
        message.to_owned()
    }
}
