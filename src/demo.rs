//! `amqp-rpc demo`: a server and a client in one process against the local broker — tutorial
//! six's exchange, then what the tutorial cannot do: many calls in flight, exact big answers,
//! errors that come back typed, a missing server that fails fast.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use rpc_client::{FibonacciRpcClient, RpcClient, DEFAULT_URI, RPC_QUEUE};
use rpc_server::{FibService, Request, RpcServer};

/// Arguments of `amqp-rpc demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Broker URI.
    #[arg(long, default_value = DEFAULT_URI)]
    pub uri: String,
    /// Request queue.
    #[arg(long, default_value = RPC_QUEUE)]
    pub queue: String,
    /// Record this process's connections as a pcapng capture (plaintext, also over TLS).
    #[arg(long, value_name = "FILE.pcapng")]
    pub record: Option<std::path::PathBuf>,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> ExitCode {
    // The demo's bad requests are on purpose: their server-side warnings would be noise.
    crate::call::init_logging("error");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return crate::call::fail(format!("cannot start the runtime: {e}")),
    };
    let tap = match crate::record::own_connections(args.record.as_deref()) {
        Ok(tap) => tap,
        Err(e) => return crate::call::fail(e),
    };
    let code = match runtime.block_on(demo(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => crate::call::fail(e),
    };
    crate::record::report(tap.as_ref());
    code
}

async fn demo(args: &DemoArgs) -> Result<(), String> {
    let connect_error = |e: &dyn std::fmt::Display| crate::call::explain_connect(&e.to_string());
    println!(
        "# server: declares {:?}, prefetch 4, answers fib(n) exactly",
        args.queue
    );
    let fib = FibService::new();
    let announced = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = RpcServer::builder()
        .uri(&args.uri)
        .queue(&args.queue)
        .prefetch(4)
        .start(move |req: Request| {
            let fib = fib.clone();
            let announced = announced.clone();
            async move {
                // The tutorial's server line, for the first exchange only.
                if &req.body[..] == b"30"
                    && !announced.swap(true, std::sync::atomic::Ordering::SeqCst)
                {
                    println!(" [.] fib(30)");
                }
                fib.answer(&req.body).await
            }
        })
        .await
        .map_err(|e| connect_error(&e))?;
    let stop = server.shutdown_token();
    let serving = tokio::spawn(server.run_until(std::future::pending()));
    println!(" [x] Awaiting RPC requests");

    let outcome = client_side(args).await;

    stop.cancel();
    match serving.await {
        Ok(Ok(())) => println!(
            "# server stopped: consumer cancelled, in-flight requests finished, connection closed"
        ),
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("server task failed: {e}")),
    }
    outcome
}

async fn client_side(args: &DemoArgs) -> Result<(), String> {
    let rpc = RpcClient::builder()
        .uri(&args.uri)
        .queue(&args.queue)
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| crate::call::explain_connect(&e.to_string()))?;
    let fibonacci_rpc = FibonacciRpcClient::from(rpc.clone());

    println!("\n# client: the tutorial's call");
    println!(" [x] Requesting fib(30)");
    let response = fibonacci_rpc.call(30).await.map_err(|e| e.to_string())?;
    println!(" [.] Got {response}");

    println!(
        "\n# 91 calls in flight at once over one callback queue ({})",
        rpc.reply_to()
    );
    let started = Instant::now();
    let calls: Vec<_> = (0..=90u64)
        .map(|n| {
            let c = fibonacci_rpc.clone();
            tokio::spawn(async move { (n, c.call(n).await) })
        })
        .collect();
    let mut last = String::new();
    for call in calls {
        let (n, answer) = call.await.map_err(|e| e.to_string())?;
        let answer = answer.map_err(|e| format!("fib({n}): {e}"))?;
        last = format!("fib({n}) = {answer}");
    }
    println!(
        "   all answered in {:.1?}; the last: {last}",
        started.elapsed()
    );

    println!("\n# exact big integers");
    let big = fibonacci_rpc
        .call(10_000)
        .await
        .map_err(|e| e.to_string())?;
    let digits = big.to_string();
    println!(
        "   fib(10000) has {} digits: {}…{}",
        digits.len(),
        &digits[..20],
        &digits[digits.len() - 20..]
    );

    println!("\n# the tutorial's open questions");
    for body in ["-1", "abc", "1000000"] {
        match rpc.call(body).await {
            Err(e) => println!("   call({body:?}) -> {e}"),
            Ok(reply) => println!("   call({body:?}) -> unexpected answer {reply:?}"),
        }
    }
    let absent = format!("{}-nobody-{}", args.queue, std::process::id());
    match rpc.call_raw(&absent, "30").await {
        Err(e) => println!("   call to a queue nobody declared -> {e}"),
        Ok(_) => println!("   call to {absent:?} unexpectedly answered"),
    }
    println!(
        "   replies dropped (unknown or late correlation id): {}",
        rpc.dropped_replies()
    );
    let _ = rpc.close().await;
    Ok(())
}
