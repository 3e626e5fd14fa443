//! The tokio shell of a connection: connect (TCP, optionally TLS), then two driver tasks around
//! the sans-IO [`amqp_connection::Connection`], which does the handshake and everything after.

pub(crate) mod driver;
pub mod shared;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::{timeout_at, Instant};

use amqp_codec::FieldTable;
use amqp_connection::Tuned;

use crate::channel::Channel;
use crate::error::{Error, Result, REPLY_SUCCESS};
use crate::record::{ConnectionRecorder, Recorder};
use crate::uri::{Address, ConnectionConfig};
use shared::Shared;

/// Closes the connection when the last handle (connection or channel) is dropped.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tuned: Tuned,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let now = std::time::Instant::now();
        self.shared.with_core(|core| {
            core.close(
                REPLY_SUCCESS,
                "client dropped the connection",
                normal_close(),
                now,
            )
        });
    }
}

fn normal_close() -> Error {
    Error::ConnectionClosed {
        code: REPLY_SUCCESS,
        text: "closed by client".into(),
        class_id: 0,
        method_id: 0,
    }
}

/// An open AMQP connection: cheap to clone, shared by its channels.
///
/// Dropping the last clone (and the last [`Channel`]) closes it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) handle: Arc<Handle>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.handle.tuned;
        f.debug_struct("Connection")
            .field("peer", &self.handle.shared.peer)
            .field("channel_max", &t.channel_max)
            .field("frame_max", &t.frame_max)
            .field("heartbeat", &t.heartbeat)
            .field("error", &self.handle.shared.error.get())
            .finish()
    }
}

impl Connection {
    /// Connect to an AMQP URI (`amqp://user:pass@host:port/vhost?heartbeat=...`).
    pub async fn connect(uri: &str) -> Result<Connection> {
        Connection::connect_with(ConnectionConfig::parse(uri)?).await
    }

    /// Connect with a configuration; its addresses are tried in turn and the first that
    /// completes the handshake wins (the last error is returned if none does).
    pub async fn connect_with(config: ConnectionConfig) -> Result<Connection> {
        Connection::connect_inner(config, crate::record::global().cloned()).await
    }

    /// [`Connection::connect_with`], with every byte the connection reads and writes handed to
    /// `recorder` (see [`crate::record`]).
    pub async fn connect_recorded(
        config: ConnectionConfig,
        recorder: Arc<dyn Recorder>,
    ) -> Result<Connection> {
        Connection::connect_inner(config, Some(recorder)).await
    }

    async fn connect_inner(
        config: ConnectionConfig,
        recorder: Option<Arc<dyn Recorder>>,
    ) -> Result<Connection> {
        let mut last = Error::InvalidUri("no address to connect to".into());
        for address in &config.addresses {
            match connect_one(&config, address, recorder.as_deref()).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%address, error = %e, "connect failed");
                    last = e;
                }
            }
        }
        Err(last)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Open a new channel (the lowest free number; numbers are reused after close).
    pub async fn open_channel(&self) -> Result<Channel> {
        Channel::open(self.handle.clone()).await
    }

    /// Close the connection: `connection.close` (200), wait for the broker's close-ok (at most
    /// [`amqp_connection::CLOSE_TIMEOUT`]) and for the driver tasks to exit. Fails with the
    /// connection's error if it had already died.
    pub async fn close(&self) -> Result<()> {
        let shared = self.shared();
        let now = std::time::Instant::now();
        shared.with_core(|core| core.close(REPLY_SUCCESS, "closed by client", normal_close(), now));
        shared.terminated.cancelled().await;
        match shared.error.get() {
            Some(Error::ConnectionClosed {
                code: REPLY_SUCCESS,
                ..
            })
            | None => Ok(()),
            Some(e) => Err(e.clone()),
        }
    }

    /// Wait until the connection is over (both driver tasks have exited); returns why.
    pub async fn closed(&self) -> Error {
        let shared = self.shared();
        shared.terminated.cancelled().await;
        shared.dead_error()
    }

    /// The error the connection ended with, if it has.
    pub fn error(&self) -> Option<Error> {
        self.shared().error.get().cloned()
    }

    /// True once the connection is over and both its tasks have exited.
    pub fn is_terminated(&self) -> bool {
        self.shared().terminated.is_cancelled()
    }

    /// `connection.blocked` notifications: `Some(reason)` while the broker blocks publishers
    /// (a memory or disk alarm), `None` otherwise.
    pub fn blocked(&self) -> watch::Receiver<Option<String>> {
        self.shared().blocked.subscribe()
    }

    /// Negotiated highest channel number.
    pub fn channel_max(&self) -> u16 {
        self.handle.tuned.channel_max
    }

    /// Negotiated largest frame (0 = no limit).
    pub fn frame_max(&self) -> u32 {
        self.handle.tuned.frame_max
    }

    /// Negotiated heartbeat interval (0 = disabled).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(u64::from(self.handle.tuned.heartbeat))
    }

    /// The broker's `server-properties`.
    pub fn server_properties(&self) -> &FieldTable {
        &self.handle.tuned.server_properties
    }

    /// The broker address in use.
    pub fn peer(&self) -> &str {
        &self.shared().peer
    }
}

async fn connect_one(
    config: &ConnectionConfig,
    address: &Address,
    recorder: Option<&dyn Recorder>,
) -> Result<Connection> {
    let deadline = Instant::now() + config.connection_timeout;
    let addr = address.to_string();
    let timed_out = || Error::ConnectTimeout {
        addr: addr.clone(),
        timeout: config.connection_timeout,
    };
    let tcp = match timeout_at(
        deadline,
        TcpStream::connect((address.host.as_str(), address.port)),
    )
    .await
    {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Error::ConnectRefused { addr })
        }
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(s)) => s,
    };
    // Requests are small and latency-bound: never let Nagle hold one back.
    tcp.set_nodelay(true)?;
    let recorder = match recorder {
        Some(r) => Some(r.connection(tcp.local_addr()?, tcp.peer_addr()?)),
        None => None,
    };
    if address.tls {
        let stream = match timeout_at(deadline, tls::connect(&config.tls, &address.host, tcp)).await
        {
            Err(_) => return Err(timed_out()),
            Ok(r) => r?,
        };
        let (rd, wr) = tokio::io::split(stream);
        start(config, addr, deadline, recorder, rd, wr).await
    } else {
        let (rd, wr) = tcp.into_split();
        start(config, addr, deadline, recorder, rd, wr).await
    }
}

/// Starts the driver tasks on a connected stream and waits for the core's handshake, all of it
/// before `deadline` (the core holds the same deadline and fails the handshake at it).
async fn start<R, W>(
    config: &ConnectionConfig,
    peer: String,
    deadline: Instant,
    recorder: Option<Arc<dyn ConnectionRecorder>>,
    rd: R,
    wr: W,
) -> Result<Connection>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // The core's handshake deadline is the rest of the connect bound.
    let mut remaining = config.clone();
    remaining.connection_timeout = deadline.saturating_duration_since(Instant::now());
    let mut core = amqp_connection::Connection::new(remaining, std::time::Instant::now());
    core.set_peer(peer.clone());
    let shared = Arc::new(Shared::new(core, peer.clone(), recorder));
    let (tx, rx) = oneshot::channel();
    shared.lock().on_connected = Some(tx);
    shared.task_started();
    shared.task_started();
    tokio::spawn(driver::read_loop(shared.clone(), rd));
    tokio::spawn(driver::write_loop(shared.clone(), wr));
    let outcome = rx.await.unwrap_or_else(|_| Err(shared.dead_error()));
    if let Err(e) = outcome {
        // The tasks end on their own once the core is over (they flush a close-ok first).
        shared.terminated.cancelled().await;
        return Err(e);
    }
    let tuned = shared
        .lock()
        .core
        .tuned()
        .cloned()
        .ok_or_else(|| Error::Protocol("handshake ended without tuning".into()))?;
    tracing::debug!(%peer, channel_max = tuned.channel_max, frame_max = tuned.frame_max, heartbeat = tuned.heartbeat, "connection open");
    Ok(Connection {
        handle: Arc::new(Handle { shared, tuned }),
    })
}
