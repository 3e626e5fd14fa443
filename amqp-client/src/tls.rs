//! TLS settings shared by both shells: the rustls [`ClientConfig`] for a [`TlsOptions`] and the
//! name the broker's certificate must carry. The tokio shell hands them to `tokio-rustls`, the
//! blocking shell to rustls's own [`rustls::ClientConnection`]; either way the rules are these.
//!
//! The server certificate is always verified (system roots, or the CA file given) and its name
//! checked against the host (or `server_name_indication`); a failure is an [`Error::Tls`], never
//! a fallback to plain TCP. A client certificate and key enable mutual TLS.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::error::{Error, Result};
use crate::uri::TlsOptions;

pub(crate) fn tls(msg: impl Into<String>) -> Error {
    Error::Tls(msg.into())
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| tls(format!("cannot read {what} {}: {e}", path.display())))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls(format!("bad PEM in {what} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(tls(format!("no certificate in {what} {}", path.display())));
    }
    Ok(certs)
}

/// Build the rustls client configuration for `opts`.
pub fn client_config(opts: &TlsOptions) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    match &opts.ca_file {
        Some(ca) => {
            for cert in load_certs(ca, "CA file")? {
                roots.add(cert).map_err(|e| {
                    tls(format!("unusable CA certificate in {}: {e}", ca.display()))
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(tls(
                    "no system root certificates found; give a CA file (cacertfile=...)",
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            let chain = load_certs(cert, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls(format!("cannot read client key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| tls(format!("unusable client certificate/key: {e}")))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(tls("a client certificate needs both certfile and keyfile")),
    }
}

/// The name the broker's certificate must carry: `server_name_indication` if given, else `host`.
pub fn server_name(opts: &TlsOptions, host: &str) -> Result<ServerName<'static>> {
    let name = opts.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_string())
        .map_err(|e| tls(format!("invalid TLS server name {name:?}: {e}")))
}
