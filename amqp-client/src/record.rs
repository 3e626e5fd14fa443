//! A recorder hook: every byte a connection reads and writes, handed over as it passes — in
//! plaintext, also over TLS — so that a program can keep a capture of its own traffic
//! (`amqp-rpc call --record FILE.pcapng` plugs a pcapng writer in here).
//!
//! Off by default, and free when off: a connection without a recorder pays one `Option` check
//! per read and per write. A recorder is called on the connection's reader and writer tasks, so
//! it must be quick (copy the bytes, take a short lock); it must not block.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::sync::Arc;
//!
//! use amqp_client::record::{ConnectionRecorder, Recorder};
//!
//! /// Counts the bytes each way.
//! #[derive(Default)]
//! struct Count(AtomicUsize, AtomicUsize);
//!
//! impl ConnectionRecorder for Count {
//!     fn read(&self, bytes: &[u8]) { self.0.fetch_add(bytes.len(), Ordering::Relaxed); }
//!     fn written(&self, bytes: &[u8]) { self.1.fetch_add(bytes.len(), Ordering::Relaxed); }
//!     fn closed(&self) {}
//! }
//!
//! struct Counting;
//!
//! impl Recorder for Counting {
//!     fn connection(&self, _local: SocketAddr, _peer: SocketAddr) -> Arc<dyn ConnectionRecorder> {
//!         Arc::new(Count::default())
//!     }
//! }
//!
//! # async fn demo() -> Result<(), amqp_client::Error> {
//! let config = amqp_client::ConnectionConfig::parse("amqp://127.0.0.1")?;
//! let conn = amqp_client::Connection::connect_recorded(config, Arc::new(Counting)).await?;
//! # Ok(()) }
//! ```
//!
//! [`set_global`] installs a recorder for every connection the process opens afterwards, for
//! connections made deep inside other libraries (an RPC client, a server's reconnect loop).

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

/// Makes a [`ConnectionRecorder`] for each connection as it opens.
pub trait Recorder: Send + Sync {
    /// A TCP connection from `local` to the broker at `peer` is established (before TLS and the
    /// AMQP handshake): where its bytes go.
    fn connection(&self, local: SocketAddr, peer: SocketAddr) -> Arc<dyn ConnectionRecorder>;
}

/// Receives one connection's bytes, in order, each direction whole.
pub trait ConnectionRecorder: Send + Sync {
    /// Bytes read from the broker (plaintext).
    fn read(&self, bytes: &[u8]);
    /// Bytes written to the broker (plaintext), once the socket took them.
    fn written(&self, bytes: &[u8]);
    /// The connection is over: both its tasks have stopped, nothing more will pass.
    fn closed(&self);
}

static GLOBAL: OnceLock<Arc<dyn Recorder>> = OnceLock::new();

/// Record every connection the process opens from now on (with [`crate::Connection::connect`]
/// and friends) with `recorder`. It can be set once; a second call gives `recorder` back.
pub fn set_global(recorder: Arc<dyn Recorder>) -> Result<(), Arc<dyn Recorder>> {
    GLOBAL.set(recorder)
}

/// The recorder set with [`set_global`], if any.
pub fn global() -> Option<&'static Arc<dyn Recorder>> {
    GLOBAL.get()
}
