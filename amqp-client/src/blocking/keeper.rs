//! The keeper: the one thread a blocking connection adds, so that it stays alive while nobody
//! calls into it.
//!
//! A connection with heartbeats must send something at least every interval and read what the
//! broker sends, or the broker closes it (pika's `BlockingConnection` loses its connection this
//! way when the program does not call into it for two intervals). While a caller waits, the
//! caller's thread does this itself (its reads are bounded by the core's next timer). Between
//! calls the keeper does it: it wakes every heartbeat/2 (or at the core's next deadline, if
//! sooner) and, only if the connection is idle — `try_lock` succeeds; if it fails a caller is
//! driving the connection and the keeper goes back to sleep — takes in what the broker sent
//! without waiting for more, runs the core's timers and writes what the core wants sent (a
//! heartbeat). A turn never blocks on the socket, so it holds the lock for microseconds and a
//! call that starts meanwhile waits at most that long.
//!
//! The thread holds the shared state, not a handle: the last handle's drop stops and joins it.

use std::io;
use std::sync::{Arc, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::connection::Shared;

/// The shortest sleep between two turns: a deadline already passed (a close waiting for its
/// close-ok) is the caller's to act on, not a reason to spin.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Starts the keeper of the connection in `shared`, turning at least every `interval`.
pub(crate) fn spawn(shared: Arc<Shared>, interval: Duration) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("amqp-keeper".into())
        .spawn(move || run(&shared, interval))
}

fn run(shared: &Shared, interval: Duration) {
    let mut next = Instant::now() + interval;
    while shared.keeper_sleep(next) {
        let now = Instant::now();
        let mut inner = match shared.inner.try_lock() {
            Ok(inner) => inner,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                // A caller is driving the connection (its reads run the core's timers).
                next = now + interval;
                continue;
            }
        };
        inner.service_idle();
        if inner.core.is_closed() {
            return;
        }
        next = match inner.core.poll_timeout() {
            Some(t) => t.clamp(now + MIN_TICK, now + interval),
            None => now + interval,
        };
    }
}
