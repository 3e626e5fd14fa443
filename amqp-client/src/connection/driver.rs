//! The tokio shell's two tasks: they move bytes and arm one timer; every rule is the core's.
//!
//! The reader reads into one reused buffer and hands each read to the core under the lock, which
//! decodes every whole frame and routes the events at once (no task hop per frame). The writer
//! takes the core's send buffer whole and writes it with one syscall per batch, and owns the
//! connection's one timer: armed at the core's next deadline (a heartbeat to send, the peer's
//! silence, a close or a reply overdue), it calls `handle_timeout` when it fires. The timer is not
//! reset per frame: it fires at its deadline, and the core says whether anything was due.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant, Sleep};

use crate::connection::shared::{Shared, TaskGuard, SEND_LOW_WATER};

/// How long the final flush (a close-ok, a close) may take once the connection is over.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// Read buffer growth step: large enough that a 128 KiB frame needs few reads.
const READ_RESERVE: usize = 64 * 1024;
/// A deadline far away stands for "none", so that one `Sleep` serves throughout.
const NEVER: Duration = Duration::from_secs(86_400 * 365);

/// The reader task.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(shared: Arc<Shared>, mut rd: R) {
    let _guard = TaskGuard(shared.clone());
    let mut buf = BytesMut::with_capacity(READ_RESERVE);
    loop {
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_RESERVE);
        }
        let before = buf.len();
        let read = tokio::select! {
            biased;
            _ = shared.closed.cancelled() => return,
            r = rd.read_buf(&mut buf) => r,
        };
        if let (Some(recorder), Ok(1..)) = (&shared.recorder, &read) {
            recorder.read(buf.get(before..).unwrap_or_default());
        }
        let now = std::time::Instant::now();
        let mut inner = shared.lock();
        let more = match read {
            Ok(0) => {
                inner.core.handle_eof(buf.len(), now);
                false
            }
            Ok(_) => {
                inner.core.handle_input(&mut buf, now);
                true
            }
            Err(e) => {
                inner.core.handle_io_error(e);
                false
            }
        };
        shared.settle(&mut inner);
        if !more || inner.core.is_closed() {
            return;
        }
    }
}

/// The writer task, with the connection's timer.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut wr: W) {
    let _guard = TaskGuard(shared.clone());
    let mut spare = BytesMut::with_capacity(16 * 1024);
    let timer = sleep_until(Instant::now() + NEVER);
    tokio::pin!(timer);
    let mut armed: Option<std::time::Instant> = None;
    // Once the core is over: write what it left (a close-ok) within FLUSH_TIMEOUT, then stop.
    let mut flush_by: Option<Instant> = None;
    loop {
        let (deadline, over) = {
            let mut inner = shared.lock();
            inner
                .core
                .poll_transmit(std::time::Instant::now(), &mut spare);
            shared.buffered.store(
                inner.core.transmit_len(),
                std::sync::atomic::Ordering::Relaxed,
            );
            if inner.core.transmit_len() < SEND_LOW_WATER {
                // Publishers that found the buffer full: there is room again.
                shared.room.notify_waiters();
            }
            let deadline = inner.core.poll_timeout();
            // What the timer is about to wait for: a nearer deadline must wake this task.
            inner.armed = deadline;
            (deadline, inner.core.is_closed())
        };
        if over && flush_by.is_none() {
            flush_by = Some(Instant::now() + FLUSH_TIMEOUT);
        }
        if !spare.is_empty() {
            if !write_all(
                &shared,
                &mut wr,
                &spare,
                flush_by,
                timer.as_mut(),
                &mut armed,
            )
            .await
            {
                break;
            }
            spare.clear();
            // A multi-MiB message must not pin its buffer for the connection's lifetime.
            if spare.capacity() > 4 * 1024 * 1024 {
                spare = BytesMut::with_capacity(16 * 1024);
            }
            continue;
        }
        if over {
            break;
        }
        if deadline != armed {
            armed = deadline;
            let at = deadline.map_or(Instant::now() + NEVER, Instant::from_std);
            timer.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            _ = shared.wake_writer.notified() => {}
            _ = &mut timer => {
                let mut inner = shared.lock();
                inner.core.handle_timeout(std::time::Instant::now());
                shared.settle(&mut inner);
                // Re-arm from the core's next deadline on the next turn.
                armed = None;
            }
        }
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, wr.shutdown()).await;
}

/// Writes all of `bytes`; false when the connection must stop writing (an error, or the final
/// flush ran out of time). While the write waits for the socket, the timer still runs: a broker
/// that stops reading is still found dead by its silence.
async fn write_all<W: AsyncWrite + Unpin>(
    shared: &Shared,
    wr: &mut W,
    bytes: &[u8],
    mut flush_by: Option<Instant>,
    mut timer: Pin<&mut Sleep>,
    armed: &mut Option<std::time::Instant>,
) -> bool {
    let mut written = 0;
    while written < bytes.len() {
        let deadline = async {
            match flush_by {
                Some(at) => tokio::time::sleep_until(at).await,
                None => shared.closed.cancelled().await,
            }
        };
        tokio::select! {
            biased;
            r = wr.write(&bytes[written..]) => match r {
                Ok(0) => {
                    let mut inner = shared.lock();
                    inner.core.handle_io_error(std::io::ErrorKind::WriteZero.into());
                    shared.settle(&mut inner);
                    return false;
                }
                Ok(n) => {
                    if let Some(recorder) = &shared.recorder {
                        recorder.written(bytes.get(written..written + n).unwrap_or_default());
                    }
                    written += n;
                }
                Err(e) => {
                    let mut inner = shared.lock();
                    inner.core.handle_io_error(e);
                    shared.settle(&mut inner);
                    return false;
                }
            },
            _ = deadline => {
                if flush_by.is_some() {
                    return false;
                }
                // The connection ended while this write waited: finish it within the flush bound.
                flush_by = Some(Instant::now() + FLUSH_TIMEOUT);
            }
            _ = timer.as_mut() => {
                let mut inner = shared.lock();
                inner.core.handle_timeout(std::time::Instant::now());
                shared.settle(&mut inner);
                *armed = inner.core.poll_timeout();
                inner.armed = *armed;
                timer
                    .as_mut()
                    .reset(armed.map_or(Instant::now() + NEVER, Instant::from_std));
            }
        }
    }
    true
}
