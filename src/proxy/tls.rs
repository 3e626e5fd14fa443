//! TLS on either side of the proxy, with rustls: `--tls-cert/--tls-key` make the listening side
//! an `amqps://` server (the proxy terminates TLS, so it sees and records plaintext);
//! `--upstream-tls` speaks TLS to the broker, checking its certificate against `--upstream-ca`
//! (or the system roots) and the upstream host name.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use amqp_client::TlsOptions;

/// The listening side's TLS: the certificate chain and key it presents.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM in the certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("unusable certificate/key: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The broker side's TLS: trust `ca` (else the system roots), check the certificate against
/// `name`.
pub fn connector(
    ca: Option<&Path>,
    name: &str,
) -> Result<(TlsConnector, ServerName<'static>), String> {
    let options = TlsOptions {
        ca_file: ca.map(Path::to_path_buf),
        ..TlsOptions::default()
    };
    let config = amqp_client::tls::client_config(&options).map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))?;
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}
