//! `--metrics ADDR`: a Prometheus scrape endpoint, `GET /metrics` answered with the registry in
//! the OpenMetrics text format (what Prometheus asks for first; its older text parser reads it
//! too). A minimal HTTP/1.1 responder on the process's runtime: one request per connection,
//! headers bounded, anything but `GET /metrics` answered 404.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The content type of the OpenMetrics text format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Largest request head read (a scraper's is a few hundred bytes).
const MAX_HEAD: usize = 8 * 1024;

/// The registry as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Binds `addr` and serves the registry until the process ends. Returns the bound address (so
/// `127.0.0.1:0` works in tests).
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Mutex<Registry>>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                let answer = async {
                    let mut head = Vec::with_capacity(512);
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
                        let n = stream.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        head.extend_from_slice(&buf[..n]);
                    }
                    let response = if head.starts_with(b"GET /metrics ")
                        || head.starts_with(b"GET /metrics?")
                    {
                        let body = encode(&registry.lock().unwrap_or_else(|e| e.into_inner()));
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 23\r\nConnection: close\r\n\r\nonly GET /metrics here\n"
                            .to_owned()
                    };
                    stream.write_all(response.as_bytes()).await?;
                    stream.shutdown().await
                };
                // A scraper that stalls must not hold a task for ever.
                let _ = tokio::time::timeout(Duration::from_secs(10), answer).await;
            });
        }
    });
    Ok(local)
}
