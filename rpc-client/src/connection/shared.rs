//! The state the connection's handles, its reader task and its writer task share.
//!
//! Writes go into one `outbox` buffer under a short lock and the writer task is woken; it swaps
//! the buffer for its spare and writes everything gathered in one `write_all`. A publish thus
//! costs one lock and one memcpy on the caller's side, frames of one message are never
//! interleaved with others, and a burst of calls becomes one syscall.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::BytesMut;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use amqp_codec::{ConnectionClose, Frame};

use crate::channel::state::ChannelState;
use crate::connection::handshake::Tuned;
use crate::error::{Error, Result};

/// Lock a std mutex, shrugging off poisoning: every critical section here leaves its data
/// consistent, and a panic elsewhere must not cascade into every caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) struct Outbox {
    pub buf: BytesMut,
    /// No more frames are accepted (a `connection.close` was queued or the connection died).
    pub sealed: bool,
}

/// One channel as the table holds it.
pub(crate) struct ChannelEntry {
    pub state: Mutex<ChannelState>,
}

pub(crate) struct Shared {
    pub tuned: Tuned,
    /// `host:port` of the broker, for messages.
    pub peer: String,
    pub outbox: Mutex<Outbox>,
    pub wake_writer: Notify,
    pub channels: Mutex<HashMap<u16, Arc<ChannelEntry>>>,
    /// The error the connection ended with; set once.
    pub error: OnceLock<Error>,
    /// Set when this client started the close: the error to report once close-ok arrives.
    pub closing: Mutex<Option<Error>>,
    /// Wakes the reader when a close was started, so it can arm its close timeout.
    pub closing_started: Notify,
    /// Tells the reader and writer to stop.
    pub cancel: CancellationToken,
    /// Cancelled when both driver tasks have exited.
    pub terminated: CancellationToken,
    pub live_tasks: AtomicUsize,
    /// `Some(reason)` while the broker blocks publishing (`connection.blocked`).
    pub blocked: watch::Sender<Option<String>>,
}

impl Shared {
    pub(crate) fn new(tuned: Tuned, peer: String) -> Self {
        Shared {
            tuned,
            peer,
            outbox: Mutex::new(Outbox {
                buf: BytesMut::with_capacity(16 * 1024),
                sealed: false,
            }),
            wake_writer: Notify::new(),
            channels: Mutex::new(HashMap::new()),
            error: OnceLock::new(),
            closing: Mutex::new(None),
            closing_started: Notify::new(),
            cancel: CancellationToken::new(),
            terminated: CancellationToken::new(),
            live_tasks: AtomicUsize::new(0),
            blocked: watch::channel(None).0,
        }
    }

    /// The error to report for an operation on a connection that no longer accepts them.
    pub(crate) fn dead_error(&self) -> Error {
        if let Some(e) = self.error.get() {
            return e.clone();
        }
        lock(&self.closing)
            .clone()
            .unwrap_or_else(|| Error::ConnectionLost("connection is shutting down".into()))
    }

    /// Append bytes with `encode` and wake the writer. Fails without writing once the
    /// connection is closing or dead; an encode error leaves the outbox as it was.
    #[inline]
    pub(crate) fn write(&self, encode: impl FnOnce(&mut BytesMut) -> Result<()>) -> Result<()> {
        {
            let mut out = lock(&self.outbox);
            if out.sealed {
                drop(out);
                return Err(self.dead_error());
            }
            let start = out.buf.len();
            if let Err(e) = encode(&mut out.buf) {
                out.buf.truncate(start);
                return Err(e);
            }
        }
        self.wake_writer.notify_one();
        Ok(())
    }

    /// Queue one frame.
    pub(crate) fn send_frame(&self, frame: &Frame) -> Result<()> {
        self.write(|b| frame.encode(b).map_err(Error::from))
    }

    /// Start closing the connection from this side: queue `connection.close`, refuse further
    /// writes, and report `error` once the broker's close-ok arrives (or the close times out).
    /// Returns false if a close was already under way.
    pub(crate) fn begin_close(
        &self,
        code: u16,
        text: &str,
        class_method: (u16, u16),
        error: Error,
    ) -> bool {
        {
            let mut closing = lock(&self.closing);
            if closing.is_some() || self.error.get().is_some() {
                return false;
            }
            *closing = Some(error);
        }
        let close = Frame::Method(
            0,
            ConnectionClose {
                reply_code: code,
                reply_text: text.into(),
                class_id: class_method.0,
                method_id: class_method.1,
            }
            .into(),
        );
        {
            let mut out = lock(&self.outbox);
            let _ = close.encode(&mut out.buf);
            out.sealed = true;
        }
        self.wake_writer.notify_one();
        self.closing_started.notify_one();
        true
    }

    /// The connection is over with `e`: every channel, call, consumer and confirm gets the
    /// error, the writer flushes what is queued (a close-ok) and both tasks stop.
    pub(crate) fn fail(&self, e: Error) {
        if self.error.set(e.clone()).is_err() {
            return;
        }
        tracing::debug!(peer = %self.peer, error = %e, "connection ended");
        lock(&self.outbox).sealed = true;
        let channels: Vec<_> = lock(&self.channels).drain().map(|(_, c)| c).collect();
        for c in channels {
            lock(&c.state).fail(e.clone());
        }
        self.blocked.send_replace(None);
        self.cancel.cancel();
        self.wake_writer.notify_one();
    }

    pub(crate) fn channel(&self, id: u16) -> Option<Arc<ChannelEntry>> {
        lock(&self.channels).get(&id).cloned()
    }

    /// Free a channel number for reuse.
    pub(crate) fn release(&self, id: u16) {
        lock(&self.channels).remove(&id);
    }

    /// Take the lowest free channel number and register its state.
    pub(crate) fn allocate_channel(&self) -> Result<(u16, Arc<ChannelEntry>)> {
        let max = match self.tuned.channel_max {
            0 => u16::MAX,
            n => n,
        };
        let mut table = lock(&self.channels);
        if let Some(e) = self.error.get() {
            return Err(e.clone());
        }
        // Linear scan from 1: channel counts are small, and this reuses numbers after close.
        let id = (1..=max)
            .find(|id| !table.contains_key(id))
            .ok_or(Error::ChannelsExhausted(max))?;
        let entry = Arc::new(ChannelEntry {
            state: Mutex::new(ChannelState::new(id)),
        });
        table.insert(id, entry.clone());
        Ok((id, entry))
    }

    pub(crate) fn task_started(&self) {
        self.live_tasks.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn task_finished(&self) {
        if self.live_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.terminated.cancel();
        }
    }
}

/// Counts a driver task as live until dropped, even if it panics.
pub(crate) struct TaskGuard(pub Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.error.get().is_none() {
            self.0
                .fail(Error::ConnectionLost("connection driver task ended".into()));
        }
        self.0.task_finished();
    }
}
