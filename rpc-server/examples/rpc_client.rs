//! Tutorial six's `rpc_client.py`, in this crate's API (blocking, as the tutorial's):
//! `cargo run -p rpc-server --example rpc_client [n]`.

use rpc_client::blocking::FibonacciRpcClient;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u64 = match std::env::args().nth(1) {
        Some(arg) => arg.parse()?,
        None => 30,
    };
    let fibonacci_rpc = FibonacciRpcClient::new()?;
    println!(" [x] Requesting fib({n})");
    let response = fibonacci_rpc.call(n)?;
    println!(" [.] Got {response}");
    Ok(())
}
