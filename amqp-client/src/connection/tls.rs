//! `amqps://` for the tokio shell: the TLS handshake over the TCP stream with `tokio-rustls`, on
//! the configuration both shells build the same way ([`crate::tls`]).

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub use crate::tls::client_config;
use crate::tls::{server_name, tls};

use crate::error::Result;
use crate::uri::TlsOptions;

/// TLS handshake over `tcp`, checking the certificate against `host` (or the configured name).
pub async fn connect(
    opts: &TlsOptions,
    host: &str,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>> {
    let config = client_config(opts)?;
    let name = server_name(opts, host)?;
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| tls(format!("TLS handshake with {host} failed: {e}")))
}
