//! N sequential calls of the async client on a current-thread runtime, for counting its
//! instructions per call under `valgrind --tool=callgrind` as `blocking_loop` does (see
//! `bench/NOTES.md`, "Per-call instructions, round 3").
//!
//!   cargo run --release -p rpc-client --example async_loop -- [CALLS] [URI] [QUEUE]

use rpc_client::{RpcClient, RpcClientBuilder};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let mut builder: RpcClientBuilder = RpcClient::builder();
    if let Some(uri) = args.next() {
        builder = builder.uri(uri);
    }
    if let Some(queue) = args.next() {
        builder = builder.queue(queue);
    }
    let client = builder.connect().await?;
    let body = bytes::Bytes::from_static(b"1");
    for _ in 0..calls {
        let reply = client.call(body.clone()).await?;
        if reply.as_ref() != b"1" {
            return Err(format!("unexpected reply {reply:?}").into());
        }
    }
    client.close().await?;
    Ok(())
}
