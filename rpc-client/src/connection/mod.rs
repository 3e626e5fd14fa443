//! Connections: connect (TCP, optionally TLS), handshake, then two driver tasks.
//!
//! The handshake ([`handshake`]) and the per-channel rules ([`crate::channel`]) are sans-IO;
//! this module and its driver tasks are the tokio side: sockets, timers, tasks.

pub mod handshake;

pub(crate) mod driver;
pub(crate) mod shared;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use amqp_codec::{FieldTable, FrameDecoder, DEFAULT_FRAME_MAX, PROTOCOL_HEADER};

use crate::channel::Channel;
use crate::error::{Error, Result, REPLY_SUCCESS};
use crate::uri::{Address, ConnectionConfig};
use handshake::{Handshake, Stage, Tuned};
use shared::Shared;

/// Closes the connection when the last handle (connection or channel) is dropped.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.begin_close(
            REPLY_SUCCESS,
            "client dropped the connection",
            (0, 0),
            normal_close(),
        );
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
        let s = &self.handle.shared;
        f.debug_struct("Connection")
            .field("peer", &s.peer)
            .field("channel_max", &s.tuned.channel_max)
            .field("frame_max", &s.tuned.frame_max)
            .field("heartbeat", &s.tuned.heartbeat)
            .field("error", &s.error.get())
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
        let mut last = Error::InvalidUri("no address to connect to".into());
        for address in &config.addresses {
            match connect_one(&config, address).await {
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

    /// Close the connection: `connection.close` (200), wait for the broker's close-ok and for
    /// the driver tasks to exit. Fails with the connection's error if it had already died.
    pub async fn close(&self) -> Result<()> {
        let shared = self.shared();
        shared.begin_close(REPLY_SUCCESS, "closed by client", (0, 0), normal_close());
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
        shared
            .error
            .get()
            .cloned()
            .unwrap_or_else(|| Error::ConnectionLost("driver ended".into()))
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
        self.shared().tuned.channel_max
    }

    /// Negotiated largest frame (0 = no limit).
    pub fn frame_max(&self) -> u32 {
        self.shared().tuned.frame_max
    }

    /// Negotiated heartbeat interval (0 = disabled).
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(u64::from(self.shared().tuned.heartbeat))
    }

    /// The broker's `server-properties`.
    pub fn server_properties(&self) -> &FieldTable {
        &self.shared().tuned.server_properties
    }

    /// The broker address in use.
    pub fn peer(&self) -> &str {
        &self.shared().peer
    }
}

async fn connect_one(config: &ConnectionConfig, address: &Address) -> Result<Connection> {
    let deadline = Instant::now() + config.connection_timeout;
    let addr = address.to_string();
    let tcp = match timeout_at(
        deadline,
        TcpStream::connect((address.host.as_str(), address.port)),
    )
    .await
    {
        Err(_) => {
            return Err(Error::ConnectTimeout {
                addr,
                timeout: config.connection_timeout,
            })
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            return Err(Error::ConnectRefused { addr })
        }
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(s)) => s,
    };
    // Requests are small and latency-bound: never let Nagle hold one back.
    tcp.set_nodelay(true)?;
    if address.tls {
        let mut stream =
            match timeout_at(deadline, tls::connect(&config.tls, &address.host, tcp)).await {
                Err(_) => {
                    return Err(Error::ConnectTimeout {
                        addr,
                        timeout: config.connection_timeout,
                    })
                }
                Ok(r) => r?,
            };
        let (tuned, leftover) = handshake(config, &addr, &mut stream, deadline).await?;
        let (rd, wr) = tokio::io::split(stream);
        Ok(start(tuned, addr, rd, wr, leftover))
    } else {
        let mut stream = tcp;
        let (tuned, leftover) = handshake(config, &addr, &mut stream, deadline).await?;
        let (rd, wr) = stream.into_split();
        Ok(start(tuned, addr, rd, wr, leftover))
    }
}

fn start<R, W>(tuned: Tuned, peer: String, rd: R, wr: W, leftover: BytesMut) -> Connection
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tracing::debug!(%peer, channel_max = tuned.channel_max, frame_max = tuned.frame_max, heartbeat = tuned.heartbeat, "connection open");
    let shared = Arc::new(Shared::new(tuned, peer));
    shared.task_started();
    shared.task_started();
    tokio::spawn(driver::read_loop(shared.clone(), rd, leftover));
    tokio::spawn(driver::write_loop(shared.clone(), wr));
    Connection {
        handle: Arc::new(Handle { shared }),
    }
}

/// Run the handshake on `stream`, all of it before `deadline`. Returns the settled values and
/// any bytes read past `open-ok`.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    config: &ConnectionConfig,
    addr: &str,
    stream: &mut S,
    deadline: Instant,
) -> Result<(Tuned, BytesMut)> {
    let mut hs = Handshake::new(config);
    let mut out = BytesMut::with_capacity(1024);
    out.put_slice(&PROTOCOL_HEADER);
    let mut buf = BytesMut::with_capacity(8 * 1024);
    // Before tune there is no negotiated frame_max; bound frames by RabbitMQ's default.
    let mut decoder = FrameDecoder::new(DEFAULT_FRAME_MAX);
    let timed_out = |stage: Stage| Error::HandshakeTimeout {
        addr: addr.to_string(),
        timeout: config.connection_timeout,
        stage: stage.describe(),
    };
    loop {
        if !out.is_empty() {
            match timeout_at(deadline, stream.write_all(&out)).await {
                Err(_) => return Err(timed_out(hs.stage())),
                Ok(r) => r?,
            }
            out.clear();
        }
        while let Some(frame) = decoder.decode(&mut buf)? {
            match hs.handle(frame, &mut out) {
                Ok(Some(tuned)) => return Ok((tuned, buf)),
                Ok(None) => {}
                Err(e) => {
                    // Answer the broker's close (close-ok) before giving up, within the deadline.
                    if !out.is_empty() {
                        let _ = timeout_at(deadline, stream.write_all(&out)).await;
                    }
                    return Err(e);
                }
            }
        }
        if !out.is_empty() {
            continue;
        }
        let n = match timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Err(timed_out(hs.stage())),
            Ok(r) => r?,
        };
        if n == 0 {
            return Err(match hs.stage() {
                // Spec 0-9-1: a broker that cannot authenticate the client may just close
                // the socket (RabbitMQ does so for clients without authentication_failure_close).
                Stage::AwaitTune => Error::AuthenticationFailed {
                    code: crate::error::ACCESS_REFUSED,
                    text: "broker closed the connection after start-ok".into(),
                },
                stage => Error::ConnectionLost(format!(
                    "peer closed the connection while {}",
                    stage.describe()
                )),
            });
        }
    }
}
