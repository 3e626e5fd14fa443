//! Tutorial six's `rpc_server.py`, in this crate's API:
//! `cargo run -p rpc-server --example rpc_server` (Ctrl-C stops it gracefully).

use rpc_server::{FibService, RpcServer};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), rpc_server::ServerError> {
    let server = RpcServer::builder()
        .uri("amqp://guest:guest@127.0.0.1:5672/%2f")
        .queue("rpc_queue")
        .prefetch(1)
        .start(FibService::new().print_requests(true))
        .await?;
    println!(" [x] Awaiting RPC requests");
    server
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}
