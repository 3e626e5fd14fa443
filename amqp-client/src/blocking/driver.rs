//! The blocking shell's driver: the thread that wants something moves the bytes.
//!
//! [`Inner::wait`] is the whole driver. A caller holding the connection's lock loops: is what it
//! waits for there (a reply under its ticket, a delivery in its consumer's queue)? If not, write
//! what the core has to send, read once — bounded by the nearer of the caller's deadline and
//! the core's next timer — hand the bytes to the core, route its events, and look again. A
//! sequential RPC call is then one `write` (the publish, done by `basic_publish`) and one `read`
//! (the reply) on the caller's own thread: no runtime, no wake-up of another thread, no
//! `epoll_wait`.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::routes::Routing;
use super::stream::{Io, Read1};
use crate::error::{Error, Result};

/// A send buffer grown past this by a large message is not kept for the connection's life.
const KEEP_SEND_BUFFER: usize = 4 * 1024 * 1024;

/// The core, its socket and where its events go: the one thing behind the connection's lock.
pub(crate) struct Inner {
    pub core: amqp_connection::Connection,
    pub io: Io,
    pub routing: Routing,
    /// Bytes read and not yet made into whole frames.
    rbuf: BytesMut,
    /// The core's send buffer, swapped out and written.
    wbuf: BytesMut,
    /// `host:port`, for logs.
    pub peer: String,
}

impl Inner {
    pub(crate) fn new(core: amqp_connection::Connection, io: Io, peer: String) -> Self {
        Inner {
            core,
            io,
            routing: Routing::default(),
            rbuf: BytesMut::with_capacity(64 * 1024),
            wbuf: BytesMut::with_capacity(16 * 1024),
            peer,
        }
    }

    /// Routes the events the core has queued.
    pub(crate) fn settle(&mut self) {
        self.routing.dispatch(&mut self.core, &self.peer);
    }

    /// The error for an operation on a connection that is over.
    pub(crate) fn dead_error(&self) -> Error {
        self.core
            .error()
            .cloned()
            .unwrap_or_else(|| Error::ConnectionLost("the connection is over".into()))
    }

    /// Writes what the core has to send, at once (one `write` for everything queued).
    pub(crate) fn flush(&mut self) {
        // Asked first: the clock is read only when there is something to send.
        if self.io.is_done()
            || !self.core.has_transmit()
            || !self.core.poll_transmit(Instant::now(), &mut self.wbuf)
        {
            return;
        }
        let written = self.io.write_all(&self.wbuf);
        self.wbuf.clear();
        if self.wbuf.capacity() > KEEP_SEND_BUFFER {
            self.wbuf = BytesMut::with_capacity(16 * 1024);
        }
        if let Err(e) = written {
            self.core.handle_io_error(e);
            self.io.shutdown();
            self.settle();
        }
    }

    /// Once the core is over: write what it left (a close-ok) and end the stream.
    pub(crate) fn finish(&mut self) {
        if !self.io.is_done() {
            self.flush();
            self.io.shutdown();
        }
    }

    /// Drives the connection until `ready` gives something (`Ok(Some)`, or its error), the
    /// `deadline` passes (`Ok(None)`) or the connection is over (its error). `ready` is asked
    /// first, so what already arrived is taken without touching the socket.
    ///
    /// Every read is bounded by the nearer of `deadline` and the core's next timer (a heartbeat
    /// to send, the broker's silence, a reply or a close overdue), so a `deadline` of `None`
    /// still ends when the core gives up on the broker.
    pub(crate) fn wait<T>(
        &mut self,
        deadline: Option<Instant>,
        mut ready: impl FnMut(&mut Inner) -> Option<Result<T>>,
    ) -> Result<Option<T>> {
        loop {
            if let Some(outcome) = ready(self) {
                return outcome.map(Some);
            }
            if self.core.is_closed() {
                self.finish();
                return Err(self.dead_error());
            }
            self.flush();
            if self.core.is_closed() {
                continue;
            }
            let now = Instant::now();
            let timer = self.core.poll_timeout();
            if timer.is_some_and(|t| t <= now) {
                self.core.handle_timeout(now);
                self.settle();
                continue;
            }
            if deadline.is_some_and(|d| d <= now) {
                return Ok(None);
            }
            let bound = match (timer, deadline) {
                (Some(t), Some(d)) => Some(t.min(d)),
                (t, d) => t.or(d),
            };
            let read = self
                .io
                .bound_reads(bound.map(|b| b.saturating_duration_since(now)))
                .and_then(|()| self.io.read_into(&mut self.rbuf));
            match read {
                Ok(Read1::Data) => self.core.handle_input(&mut self.rbuf, Instant::now()),
                Ok(Read1::Eof) => {
                    self.core.handle_eof(self.rbuf.len(), Instant::now());
                    self.io.shutdown();
                }
                // The bound passed: the next turn runs the timer or returns at the deadline.
                Ok(Read1::Nothing) => {}
                Err(e) => {
                    self.core.handle_io_error(e);
                    self.io.shutdown();
                }
            }
            self.settle();
        }
    }

    /// The idle keeper's turn (no caller is waiting): take in whatever the broker sent since,
    /// without waiting for more; run the core's timers; send what it wants sent (a heartbeat).
    pub(crate) fn service_idle(&mut self) {
        if self.core.is_closed() {
            self.finish();
            return;
        }
        let before = self.rbuf.len();
        match self.io.drain_into(&mut self.rbuf) {
            Ok(eof) => {
                if self.rbuf.len() > before {
                    self.core.handle_input(&mut self.rbuf, Instant::now());
                }
                if eof {
                    self.core.handle_eof(self.rbuf.len(), Instant::now());
                    self.io.shutdown();
                }
            }
            Err(e) => {
                self.core.handle_io_error(e);
                self.io.shutdown();
            }
        }
        self.settle();
        self.core.handle_timeout(Instant::now());
        self.settle();
        self.flush();
        if self.core.is_closed() {
            self.finish();
        }
    }

    /// How long writes may block: as long as the core lets the broker stay silent (two heartbeat
    /// intervals), or the reply timeout when heartbeats are off.
    pub(crate) fn write_bound(heartbeat: u16) -> Duration {
        match heartbeat {
            0 => amqp_connection::DEFAULT_REPLY_TIMEOUT,
            s => Duration::from_secs(2 * u64::from(s)),
        }
    }
}
