//! What the connection's handles and its two tasks share: the sans-IO [`amqp_connection`] core
//! and, beside it, where each of its events goes (the waiting call, the consumer, the confirm).
//!
//! Everything sits behind one short lock. A publish costs that lock and one memcpy into the
//! core's send buffer; the reader decodes a whole read's frames and routes their events in one
//! lock; the writer takes the send buffer whole and writes it in one syscall.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use amqp_codec::{BasicReject, Method};
use amqp_connection::hash::IdMap;
use amqp_connection::{ChannelId, Confirm, Event, Reply};

use crate::error::{Error, Result};
use crate::message::{ConsumerItem, QueuedItem, Returned};
use crate::record::ConnectionRecorder;

/// Lock a std mutex, shrugging off poisoning: every critical section here leaves its data
/// consistent, and a panic elsewhere must not cascade into every caller.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A consumer's receiving end.
pub(crate) enum ConsumerSink {
    /// A [`crate::Consumer`]'s queue, read by the application's task.
    Queue(mpsc::UnboundedSender<QueuedItem>),
    /// A function called on the reader task with each delivery, in order, and finally with the
    /// reason the consumer ended (see [`crate::Channel::basic_consume_with`]).
    Inline(Box<dyn FnMut(ConsumerItem) + Send>),
}

impl ConsumerSink {
    /// Hands `item` over; false when the receiving end is gone.
    pub(crate) fn send(&mut self, item: QueuedItem) -> bool {
        match self {
            ConsumerSink::Queue(tx) => tx.send(item).is_ok(),
            ConsumerSink::Inline(f) => {
                f(item.map(|d| *d));
                true
            }
        }
    }
}

impl std::fmt::Debug for ConsumerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerSink::Queue(tx) => f.debug_tuple("Queue").field(tx).finish(),
            ConsumerSink::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

/// Where one consumer's deliveries go.
#[derive(Debug)]
pub(crate) struct ConsumerSlot {
    pub sink: ConsumerSink,
    /// Deliveries need no ack: nothing to give back if the consumer is gone.
    pub no_ack: bool,
}

/// A synchronous call waiting for its reply, in the order the core answers them.
#[derive(Debug)]
pub(crate) struct Waiter {
    /// `None` for a call nobody awaits (the close of a dropped channel).
    pub reply: Option<oneshot::Sender<Result<Reply>>>,
    /// For `basic.consume`: the sink installed when consume-ok names the tag, before any
    /// delivery for it is routed.
    pub consumer: Option<ConsumerSlot>,
}

/// One channel's destinations.
#[derive(Debug)]
pub(crate) struct Routes {
    pub id: ChannelId,
    pub waiters: VecDeque<Waiter>,
    pub consumers: IdMap<Bytes, ConsumerSlot>,
    pub confirms: BTreeMap<u64, oneshot::Sender<Result<Confirm>>>,
    pub returns: Option<mpsc::UnboundedSender<Returned>>,
    /// Set when the channel closed: every handle's later call gets it.
    pub closed: Arc<OnceLock<Error>>,
}

impl Routes {
    pub(crate) fn new(id: ChannelId, closed: Arc<OnceLock<Error>>) -> Self {
        Routes {
            id,
            waiters: VecDeque::new(),
            consumers: IdMap::default(),
            confirms: BTreeMap::new(),
            returns: None,
            closed,
        }
    }

    fn settle(&mut self, tag: u64, multiple: bool, verdict: Confirm) {
        if multiple {
            let rest = self.confirms.split_off(&(tag.saturating_add(1)));
            for (_, w) in std::mem::replace(&mut self.confirms, rest) {
                let _ = w.send(Ok(verdict));
            }
        } else if let Some(w) = self.confirms.remove(&tag) {
            let _ = w.send(Ok(verdict));
        }
    }

    fn fail(&mut self, e: &Error) {
        for w in self.waiters.drain(..) {
            if let Some(tx) = w.reply {
                let _ = tx.send(Err(e.clone()));
            }
        }
        for (_, mut c) in self.consumers.drain() {
            c.sink.send(Err(e.clone()));
        }
        for (_, w) in std::mem::take(&mut self.confirms) {
            let _ = w.send(Err(e.clone()));
        }
        self.returns = None;
        let _ = self.closed.set(e.clone());
    }
}

/// The core and the routes of its events: the one thing behind the lock.
pub(crate) struct Inner {
    pub core: amqp_connection::Connection,
    pub channels: IdMap<u16, Routes>,
    /// Told once when the handshake ends, either way.
    pub on_connected: Option<oneshot::Sender<Result<()>>>,
    /// The deadline the writer's timer waits for (`None`: none).
    pub armed: Option<Instant>,
}

/// The state the connection's handles, its reader task and its writer task share.
pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    /// `host:port` of the broker, for messages.
    pub peer: String,
    /// Wakes the writer: bytes to send, or a nearer deadline.
    pub wake_writer: Notify,
    /// The error the connection ended with; set once.
    pub error: OnceLock<Error>,
    /// Cancelled when the core says the connection is over.
    pub closed: CancellationToken,
    /// Cancelled when both driver tasks have exited.
    pub terminated: CancellationToken,
    pub live_tasks: AtomicUsize,
    /// `Some(reason)` while the broker blocks publishing (`connection.blocked`).
    pub blocked: watch::Sender<Option<String>>,
    /// Wakes publishers waiting for room in the send buffer (see [`SEND_HIGH_WATER`]).
    pub room: Notify,
    /// The send buffer's length as last seen under the lock: publishers check it without
    /// taking the lock (an approximate, soft bound is all backpressure needs).
    pub buffered: AtomicUsize,
    /// Where the bytes read and written are recorded, if anywhere (`crate::record`).
    pub recorder: Option<Arc<dyn ConnectionRecorder>>,
}

/// The send buffer's high-water mark: a publish that finds more than this many bytes waiting to
/// be written waits until the writer has drained them below [`SEND_LOW_WATER`] (or the
/// connection ends). It bounds a connection's memory when the broker reads slower than the
/// application publishes — a broker under a memory alarm stops reading altogether — instead of
/// letting the buffer grow without limit. 4 MiB is ~10,000 tutorial-six requests: far more than
/// one write of a busy connection carries, so the limit never slows a healthy one.
pub const SEND_HIGH_WATER: usize = 4 * 1024 * 1024;

/// Publishers waiting for room go on once the send buffer is below this (1 MiB).
pub const SEND_LOW_WATER: usize = 1024 * 1024;

impl Shared {
    pub(crate) fn new(
        core: amqp_connection::Connection,
        peer: String,
        recorder: Option<Arc<dyn ConnectionRecorder>>,
    ) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                core,
                channels: IdMap::default(),
                on_connected: None,
                armed: None,
            }),
            peer,
            wake_writer: Notify::new(),
            error: OnceLock::new(),
            closed: CancellationToken::new(),
            terminated: CancellationToken::new(),
            live_tasks: AtomicUsize::new(0),
            blocked: watch::channel(None).0,
            room: Notify::new(),
            buffered: AtomicUsize::new(0),
            recorder,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    /// The error to report for an operation on a connection that no longer takes them.
    pub(crate) fn dead_error(&self) -> Error {
        self.error
            .get()
            .cloned()
            .unwrap_or_else(|| Error::ConnectionLost("connection is shutting down".into()))
    }

    /// Runs `f` on the core under the lock, routes the events it caused, and wakes the writer
    /// if there is something to send.
    pub(crate) fn with_core<T>(&self, f: impl FnOnce(&mut amqp_connection::Connection) -> T) -> T {
        let mut inner = self.lock();
        let out = f(&mut inner.core);
        self.settle(&mut inner);
        out
    }

    /// After the core ran: route its events, wake the writer when bytes wait, and note the
    /// end of the connection.
    pub(crate) fn settle(&self, inner: &mut Inner) {
        dispatch(self, inner);
        let sooner = match (inner.core.poll_timeout(), inner.armed) {
            (Some(next), Some(armed)) => next < armed,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if inner.core.has_transmit() || sooner {
            self.wake_writer.notify_one();
        }
    }

    pub(crate) fn task_started(&self) {
        self.live_tasks.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn task_finished(&self) {
        if self.live_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(recorder) = &self.recorder {
                recorder.closed();
            }
            self.terminated.cancel();
        }
    }

    /// The connection is over for a reason outside the protocol (a driver task died).
    pub(crate) fn abort(&self, why: &str) {
        let mut inner = self.lock();
        if !inner.core.is_closed() {
            inner
                .core
                .handle_io_error(std::io::Error::other(why.to_owned()));
        }
        self.settle(&mut inner);
    }
}

/// Routes every event the core has queued.
fn dispatch(shared: &Shared, inner: &mut Inner) {
    while let Some(event) = inner.core.poll_event() {
        match event {
            Event::Connected => {
                if let Some(tx) = inner.on_connected.take() {
                    let _ = tx.send(Ok(()));
                }
            }
            Event::Reply { channel, result } => {
                let Some(routes) = inner.channels.get_mut(&channel) else {
                    continue;
                };
                let Some(waiter) = routes.waiters.pop_front() else {
                    continue;
                };
                if let (Ok(Reply::Method(Method::BasicConsumeOk(ok))), Some(slot)) =
                    (&result, waiter.consumer)
                {
                    routes
                        .consumers
                        .insert(ok.consumer_tag.clone().into_bytes(), slot);
                }
                if let Some(tx) = waiter.reply {
                    let _ = tx.send(result);
                }
            }
            Event::Delivery { channel, delivery } => {
                let Some(routes) = inner.channels.get_mut(&channel) else {
                    continue;
                };
                let tag = delivery.delivery_tag;
                let delivered = match routes.consumers.get_mut(delivery.consumer_tag.as_bytes()) {
                    Some(slot) => slot.sink.send(Ok(delivery)) || slot.no_ack,
                    None => false,
                };
                if !delivered {
                    // The consumer's receiver is gone (its cancel is on the way): give the
                    // message back rather than leave it unacknowledged.
                    let id = routes.id;
                    let reject = BasicReject {
                        delivery_tag: tag,
                        requeue: true,
                    };
                    let _ = inner.core.send_method(id, reject.into());
                }
            }
            Event::Returned { channel, returned } => {
                let routes = inner.channels.get_mut(&channel);
                match routes.and_then(|r| r.returns.as_ref()) {
                    Some(tx) => {
                        let _ = tx.send(*returned);
                    }
                    None => tracing::debug!(
                        channel,
                        code = returned.reply_code,
                        "basic.return with no returns() listener"
                    ),
                }
            }
            Event::Confirm {
                channel,
                delivery_tag,
                multiple,
                verdict,
            } => {
                if let Some(routes) = inner.channels.get_mut(&channel) {
                    routes.settle(delivery_tag, multiple, verdict);
                }
            }
            Event::ConsumerEnded {
                channel,
                consumer_tag,
                reason,
            } => {
                if let Some(routes) = inner.channels.get_mut(&channel) {
                    if let Some(mut slot) = routes.consumers.remove(consumer_tag.as_bytes()) {
                        slot.sink.send(Err(reason));
                    }
                }
            }
            Event::Flow { channel, active } => {
                tracing::info!(channel, active, "channel.flow from the broker");
            }
            Event::ChannelClosed { channel, error } => {
                if let Some(mut routes) = inner.channels.remove(&channel) {
                    routes.fail(&error);
                }
            }
            Event::Blocked { reason } => {
                // Warn: publishes now wait, and calls may time out; the operator should know.
                tracing::warn!(peer = %shared.peer, reason = %amqp_codec::Escaped(reason.as_bytes()), "the broker blocks publishers (connection.blocked)");
                shared.blocked.send_replace(Some(reason));
            }
            Event::Unblocked => {
                tracing::warn!(peer = %shared.peer, "the broker accepts publishes again (connection.unblocked)");
                shared.blocked.send_replace(None);
            }
            Event::Closed { error } => {
                tracing::debug!(peer = %shared.peer, %error, "connection ended");
                // Routes of channels the core had already released are gone; any left over
                // (none, by the core's contract) get the error too.
                for (_, mut routes) in inner.channels.drain() {
                    routes.fail(&error);
                }
                if let Some(tx) = inner.on_connected.take() {
                    let _ = tx.send(Err(error.clone()));
                }
                let _ = shared.error.set(error);
                shared.blocked.send_replace(None);
                shared.closed.cancel();
                shared.room.notify_waiters();
                // The writer flushes what is left (a close-ok) and stops.
                shared.wake_writer.notify_one();
            }
        }
    }
}

/// Counts a driver task as live until dropped, even if it panics.
pub(crate) struct TaskGuard(pub Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.error.get().is_none() {
            self.0.abort("connection driver task ended");
        }
        self.0.task_finished();
    }
}
