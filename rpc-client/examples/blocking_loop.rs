//! N sequential calls of the blocking client, for counting its instructions per call under
//! `valgrind --tool=callgrind` (see `bench/NOTES.md`, "Per-call instructions"): run it with two
//! values of N against the floor's server and divide the difference by the difference of N.
//!
//!   cargo run --release -p rpc-client --example blocking_loop -- [CALLS] [URI] [QUEUE]

use rpc_client::blocking::RpcClient;
use rpc_client::RpcClientBuilder;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let calls: u64 = args.next().map_or(Ok(1000), |a| a.parse())?;
    let mut builder = RpcClientBuilder::default();
    if let Some(uri) = args.next() {
        builder = builder.uri(uri);
    }
    if let Some(queue) = args.next() {
        builder = builder.queue(queue);
    }
    let client = RpcClient::connect(builder)?;
    let body = bytes::Bytes::from_static(b"1");
    for _ in 0..calls {
        let reply = client.call(body.clone())?;
        if reply.as_ref() != b"1" {
            return Err(format!("unexpected reply {reply:?}").into());
        }
    }
    client.close()?;
    Ok(())
}
