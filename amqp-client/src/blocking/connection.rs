//! The blocking connection: connect (TCP, optionally TLS) and shake hands on the caller's thread,
//! then hand the core, its socket and its routes to whoever calls next (and, between calls, to
//! the keeper thread).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use amqp_codec::FieldTable;
use amqp_connection::Tuned;

use super::channel::Channel;
use super::driver::Inner;
use super::keeper;
use super::routes::{Routes, Waiter};
use super::stream::{connect_tcp, tls_handshake, Io, Stream};
use crate::error::{Error, Result, REPLY_SUCCESS};
use crate::uri::{Address, ConnectionConfig};

/// Lock a std mutex, shrugging off poisoning: every critical section leaves the core and its
/// routes consistent, and a panic elsewhere must not cascade into every caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn normal_close() -> Error {
    Error::ConnectionClosed {
        code: REPLY_SUCCESS,
        text: "closed by client".into(),
        class_id: 0,
        method_id: 0,
    }
}

/// What the connection's handles and its keeper thread share.
pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    /// `host:port` of the broker.
    pub peer: String,
    /// Set to stop the keeper; with `wake`, how it sleeps.
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// Sleeps until `until` (true) or until the keeper is told to stop (false).
    pub(crate) fn keeper_sleep(&self, until: Instant) -> bool {
        let mut stop = lock(&self.stop);
        loop {
            if *stop {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            stop = self
                .wake
                .wait_timeout(stop, until - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn stop_keeper(&self) {
        *lock(&self.stop) = true;
        self.wake.notify_all();
    }
}

/// Closes the connection when the last handle (connection, channel, consumer) goes.
pub(crate) struct Handle {
    pub(crate) shared: Arc<Shared>,
    pub(crate) tuned: Tuned,
    keeper: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop_keeper();
        if let Some(keeper) = self.keeper.take() {
            // It sleeps on the condvar just notified, or finishes a non-blocking turn.
            let _ = keeper.join();
        }
        let mut inner = self.shared.lock();
        let _ = close(&mut inner, "client dropped the connection");
    }
}

/// `connection.close` (200) and wait for the broker's close-ok (at most
/// [`amqp_connection::CLOSE_TIMEOUT`], the core's bound); `Ok` if the connection ended normally.
fn close(inner: &mut Inner, text: &str) -> Result<()> {
    inner
        .core
        .close(REPLY_SUCCESS, text, normal_close(), Instant::now());
    inner.settle();
    let _ = inner.wait(None, |inner| inner.core.is_closed().then_some(Ok(())));
    inner.finish();
    match inner.core.error() {
        Some(Error::ConnectionClosed {
            code: REPLY_SUCCESS,
            ..
        })
        | None => Ok(()),
        Some(e) => Err(e.clone()),
    }
}

/// An open AMQP connection driven by the threads that use it; cheap to clone, shared by its
/// channels. See [the module's notes](super) for which thread does what.
///
/// Dropping the last clone (and the last [`Channel`] and [`super::Consumer`]) closes it.
#[derive(Clone)]
pub struct Connection {
    pub(crate) handle: Arc<Handle>,
    /// This handle's bound on synchronous calls, inherited by the channels it opens.
    call_timeout: Option<Duration>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = &self.handle.tuned;
        f.debug_struct("blocking::Connection")
            .field("peer", &self.handle.shared.peer)
            .field("channel_max", &t.channel_max)
            .field("frame_max", &t.frame_max)
            .field("heartbeat", &t.heartbeat)
            .field("keeper", &self.handle.keeper.is_some())
            .field("call_timeout", &self.call_timeout)
            .finish()
    }
}

impl Connection {
    /// Connect to an AMQP URI (`amqp://user:pass@host:port/vhost?heartbeat=...`); the TCP
    /// connect, TLS and the AMQP handshake together are bounded by `connection_timeout`.
    pub fn connect(uri: &str) -> Result<Connection> {
        Connection::connect_with(ConnectionConfig::parse(uri)?)
    }

    /// Connect with a configuration; its addresses are tried in turn and the first that
    /// completes the handshake wins (the last error is returned if none does).
    pub fn connect_with(config: ConnectionConfig) -> Result<Connection> {
        let mut last = Error::InvalidUri("no address to connect to".into());
        for address in &config.addresses {
            match connect_one(&config, address) {
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

    /// Bounds this handle's synchronous calls — opening a channel, and every call on the
    /// channels it opens from now on ([`Channel::set_call_timeout`]) — by `timeout` instead of
    /// the core's reply timeout (30 s, past which the core closes the connection). A call that
    /// runs out fails with [`Error::ReplyTimeout`] and leaves the connection open.
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.call_timeout = timeout;
    }

    /// Open a new channel (the lowest free number; numbers are reused after close).
    pub fn open_channel(&self) -> Result<Channel> {
        let started = Instant::now();
        let deadline = self.call_timeout.map(|t| started + t);
        let closed = Arc::new(OnceLock::new());
        let mut inner = self.shared().lock();
        let id = inner.core.open_channel()?;
        let ticket = inner.routing.next_id();
        let mut routes = Routes::new(id, closed.clone());
        routes.waiters.push_back(Waiter {
            ticket,
            wanted: true,
            consume: None,
        });
        inner.routing.channels.insert(id.number(), routes);
        let reply = inner.wait(deadline, |inner| inner.routing.replies.remove(&ticket));
        if !matches!(reply, Ok(Some(_))) {
            // The router closes the channel if its open-ok still comes.
            inner.routing.abandon(id.number(), ticket);
        }
        drop(inner);
        match reply {
            Ok(Some(_open_ok)) => {
                let mut channel = Channel::new(id, self.handle.clone(), closed);
                channel.set_call_timeout(self.call_timeout);
                Ok(channel)
            }
            Ok(None) => Err(Error::ReplyTimeout {
                channel: id.number(),
                method: "channel.open".into(),
                timeout: deadline.map_or(Duration::ZERO, |d| d - started),
            }),
            Err(e) => Err(e),
        }
    }

    /// Close the connection: `connection.close` (200), wait for the broker's close-ok (at most
    /// [`amqp_connection::CLOSE_TIMEOUT`]). Fails with the connection's error if it had already
    /// died. Channels and consumers of it fail from then on.
    pub fn close(&self) -> Result<()> {
        let mut inner = self.shared().lock();
        close(&mut inner, "closed by client")
    }

    /// The error the connection ended with, if it has.
    pub fn error(&self) -> Option<Error> {
        self.shared().lock().core.error().cloned()
    }

    /// True once the connection is over.
    pub fn is_closed(&self) -> bool {
        self.shared().lock().core.is_closed()
    }

    /// `Some(reason)` while the broker blocks publishers (`connection.blocked`), as last seen.
    pub fn blocked(&self) -> Option<String> {
        self.shared().lock().routing.blocked.clone()
    }

    /// Waits, driving the connection, while the broker blocks publishers
    /// (`connection.blocked`), at most until `deadline`: true once it does not (at once if it
    /// did not), false if it still does at the deadline.
    pub fn wait_while_blocked(&self, deadline: Instant) -> Result<bool> {
        let mut inner = self.shared().lock();
        let lifted = inner.wait(Some(deadline), |inner| {
            inner.routing.blocked.is_none().then_some(Ok(()))
        })?;
        Ok(lifted.is_some())
    }

    /// Negotiated highest channel number.
    pub fn channel_max(&self) -> u16 {
        self.handle.tuned.channel_max
    }

    /// Negotiated largest frame.
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

    /// Whether a keeper thread keeps the connection alive between calls (heartbeats on).
    pub fn has_keeper(&self) -> bool {
        self.handle.keeper.is_some()
    }
}

fn connect_one(config: &ConnectionConfig, address: &Address) -> Result<Connection> {
    let started = Instant::now();
    let deadline = started + config.connection_timeout;
    let peer = address.to_string();
    let timed_out = || Error::ConnectTimeout {
        addr: peer.clone(),
        timeout: config.connection_timeout,
    };
    let tcp = connect_tcp(address, deadline, config.connection_timeout)?;
    let stream = if address.tls {
        tls_handshake(&config.tls, &address.host, tcp, deadline, timed_out)?
    } else {
        Stream::Plain(tcp)
    };
    // The core's handshake deadline is the rest of the connect bound: it fails the handshake at
    // it, which ends the wait below.
    let mut remaining = config.clone();
    remaining.connection_timeout = deadline.saturating_duration_since(Instant::now());
    let mut io = Io::new(stream);
    io.bound_writes(remaining.connection_timeout)?;
    let mut core = amqp_connection::Connection::new(remaining, Instant::now());
    core.set_peer(peer.clone());
    let mut inner = Inner::new(core, io, peer.clone());
    inner.wait(None, |inner| inner.core.is_connected().then_some(Ok(())))?;
    let tuned = inner
        .core
        .tuned()
        .cloned()
        .ok_or_else(|| Error::Protocol("handshake ended without tuning".into()))?;
    inner.io.bound_writes(Inner::write_bound(tuned.heartbeat))?;
    tracing::debug!(%peer, channel_max = tuned.channel_max, frame_max = tuned.frame_max, heartbeat = tuned.heartbeat, "blocking connection open");
    let shared = Arc::new(Shared {
        inner: Mutex::new(inner),
        peer,
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    let keeper = match tuned.heartbeat {
        0 => None,
        s => match keeper::spawn(shared.clone(), Duration::from_secs(u64::from(s)) / 2) {
            Ok(k) => Some(k),
            Err(e) => {
                let _ = close(
                    &mut shared.lock(),
                    "client could not start its keeper thread",
                );
                return Err(e.into());
            }
        },
    };
    Ok(Connection {
        handle: Arc::new(Handle {
            shared,
            tuned,
            keeper,
        }),
        call_timeout: None,
    })
}
