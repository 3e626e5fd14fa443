//! The two tasks that drive an open connection: the reader and the writer.
//!
//! The reader decodes frames from one reused `BytesMut` and dispatches each straight to its
//! channel's state (deliveries into consumer queues, replies into oneshot waiters): no task hop
//! per frame. It also watches the peer's liveness: silent for two heartbeat intervals means dead.
//! The writer drains the shared outbox with one `write_all` per batch and sends a heartbeat when
//! nothing else went out for half the interval. Neither timer is reset per frame: each fires at
//! its deadline and re-arms from the last activity.

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{sleep_until, Instant, Interval, MissedTickBehavior};

use amqp_codec::{ConnectionCloseOk, Frame, FrameDecoder, Method};

use crate::channel::state::{Outcome, Violation};
use crate::connection::shared::{lock, Shared, TaskGuard};
use crate::error::{Error, CHANNEL_ERROR, UNEXPECTED_FRAME};

/// How long a close (ours or a violation's) waits for the broker's close-ok.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the final flush (a close-ok) may take once the connection is over.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);
/// Read buffer growth step: large enough that a 128 KiB frame needs few reads.
const READ_RESERVE: usize = 64 * 1024;
/// Reply texts are short strings; keep ours well inside 255 bytes.
const MAX_REPLY_TEXT: usize = 200;

fn truncate(s: &str) -> &str {
    if s.len() <= MAX_REPLY_TEXT {
        return s;
    }
    let mut end = MAX_REPLY_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Queue a frame even though the outbox is sealed (close-ok answers go out after a close).
fn force_frame(shared: &Shared, frame: &Frame) {
    {
        let mut out = lock(&shared.outbox);
        let _ = frame.encode(&mut out.buf);
    }
    shared.wake_writer.notify_one();
}

fn violation(shared: &Shared, v: Violation) {
    tracing::warn!(peer = %shared.peer, code = v.code, error = %v.error, "closing connection: protocol violation by peer");
    let text = v.error.to_string();
    shared.begin_close(v.code, truncate(&text), (0, 0), v.error);
}

/// Handle one frame; `closing` means this client sent `connection.close` and discards all but
/// close / close-ok (spec 2.2.2.2).
fn dispatch(shared: &Shared, frame: Frame, closing: bool) -> Result<(), Violation> {
    match frame {
        Frame::Heartbeat => Ok(()),
        Frame::Method(0, m) => connection_method(shared, m, closing),
        _ if closing => Ok(()),
        Frame::ProtocolHeader(_) => Err(Violation::unexpected(
            0,
            "protocol header after the handshake".into(),
        )),
        Frame::Header(0, _) | Frame::Body(0, _) => Err(Violation::unexpected(
            0,
            "content frame on channel 0".into(),
        )),
        frame => {
            let id = frame.channel();
            let Some(entry) = shared.channel(id) else {
                return Err(Violation {
                    code: CHANNEL_ERROR,
                    error: Error::Protocol(format!("frame on channel {id}, which is not open")),
                });
            };
            let outcome = lock(&entry.state).handle(frame)?;
            match outcome {
                Outcome::Nothing => {}
                Outcome::Send(f) => {
                    let _ = shared.send_frame(&f);
                }
                Outcome::SendAndRelease(f) => {
                    let _ = shared.send_frame(&f);
                    shared.release(id);
                }
                Outcome::Release => shared.release(id),
            }
            Ok(())
        }
    }
}

fn connection_method(shared: &Shared, m: Method, closing: bool) -> Result<(), Violation> {
    match m {
        Method::ConnectionClose(close) => {
            force_frame(shared, &Frame::Method(0, ConnectionCloseOk {}.into()));
            let theirs = Error::ConnectionClosed {
                code: close.reply_code,
                text: close.reply_text.to_string_lossy().into_owned(),
                class_id: close.class_id,
                method_id: close.method_id,
            };
            let ours = lock(&shared.closing).clone();
            // Closes that cross: the broker's reason wins unless it is a plain 200.
            let e = match ours {
                Some(ours) if close.reply_code == crate::error::REPLY_SUCCESS => ours,
                _ => theirs,
            };
            shared.fail(e);
            Ok(())
        }
        Method::ConnectionCloseOk(_) if closing => {
            let e = shared.dead_error();
            shared.fail(e);
            Ok(())
        }
        _ if closing => Ok(()),
        Method::ConnectionBlocked(b) => {
            let reason = b.reason.to_string_lossy().into_owned();
            tracing::info!(peer = %shared.peer, %reason, "broker blocked publishing");
            shared.blocked.send_replace(Some(reason));
            Ok(())
        }
        Method::ConnectionUnblocked(_) => {
            tracing::info!(peer = %shared.peer, "broker unblocked publishing");
            shared.blocked.send_replace(None);
            Ok(())
        }
        Method::ConnectionUpdateSecretOk(_) => Ok(()),
        other => Err(Violation {
            code: UNEXPECTED_FRAME,
            error: Error::Protocol(format!(
                "unexpected {}.{} on channel 0",
                other.info().class_name,
                other.info().method_name
            )),
        }),
    }
}

/// The reader task: `buf` holds whatever the handshake read past `open-ok`.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    shared: Arc<Shared>,
    mut rd: R,
    mut buf: BytesMut,
) {
    let _guard = TaskGuard(shared.clone());
    let silence = match shared.tuned.heartbeat {
        0 => None,
        s => Some(Duration::from_secs(u64::from(s) * 2)),
    };
    // A far-away deadline stands for "none" so one sleep serves both timers.
    let never = Duration::from_secs(86_400 * 365);
    let mut decoder = FrameDecoder::new(shared.tuned.frame_max);
    let mut last_read = Instant::now();
    let mut close_deadline: Option<Instant> = None;
    let next_deadline = |last_read: Instant, close: Option<Instant>| {
        let hb = last_read + silence.unwrap_or(never);
        close.map_or(hb, |c| c.min(hb))
    };
    let timer = sleep_until(next_deadline(last_read, None));
    tokio::pin!(timer);

    loop {
        let mut closing = close_deadline.is_some();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    if let Err(v) = dispatch(&shared, frame, closing) {
                        violation(&shared, v);
                        closing = true;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised after a framing error: report it,
                    // drop what is buffered and wait (briefly) for the broker's close-ok.
                    buf.clear();
                    if !closing {
                        violation(
                            &shared,
                            Violation {
                                code: e.reply_code(),
                                error: Error::Decode(e),
                            },
                        );
                        closing = true;
                    }
                    break;
                }
            }
            if shared.cancel.is_cancelled() {
                return;
            }
        }
        if closing && close_deadline.is_none() {
            close_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
            timer
                .as_mut()
                .reset(next_deadline(last_read, close_deadline));
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(READ_RESERVE);
        }
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => return,
            _ = shared.closing_started.notified(), if close_deadline.is_none() => {
                close_deadline = Some(Instant::now() + CLOSE_TIMEOUT);
                timer.as_mut().reset(next_deadline(last_read, close_deadline));
            }
            _ = &mut timer => {
                let now = Instant::now();
                if close_deadline.is_some_and(|c| now >= c) {
                    let e = shared.dead_error();
                    shared.fail(e);
                    return;
                }
                if let Some(limit) = silence {
                    if now.duration_since(last_read) >= limit {
                        tracing::warn!(peer = %shared.peer, ?limit, "heartbeat timeout");
                        shared.fail(Error::HeartbeatTimeout(limit));
                        return;
                    }
                }
                timer.as_mut().reset(next_deadline(last_read, close_deadline));
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    let e = if close_deadline.is_some() {
                        shared.dead_error()
                    } else if buf.is_empty() {
                        Error::ConnectionLost("peer closed the connection without connection.close".into())
                    } else {
                        Error::ConnectionLost(format!(
                            "peer closed the connection in the middle of a frame ({} bytes of it received)",
                            buf.len()
                        ))
                    };
                    shared.fail(e);
                    return;
                }
                Ok(_) => last_read = Instant::now(),
                Err(e) => {
                    shared.fail(e.into());
                    return;
                }
            }
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The writer task.
pub(crate) async fn write_loop<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut wr: W) {
    let _guard = TaskGuard(shared.clone());
    let mut spare = BytesMut::with_capacity(16 * 1024);
    let mut ticker = match shared.tuned.heartbeat {
        0 => None,
        s => {
            let half = Duration::from_millis(u64::from(s) * 500);
            let mut t = tokio::time::interval_at(Instant::now() + half, half);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            Some(t)
        }
    };
    let mut wrote = false;
    let mut interrupted = false;
    loop {
        tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => break,
            _ = shared.wake_writer.notified() => {}
            _ = tick(&mut ticker) => {
                if !wrote {
                    let _ = Frame::Heartbeat.encode(&mut spare);
                }
                wrote = false;
            }
        }
        take_outbox(&shared, &mut spare);
        if spare.is_empty() {
            continue;
        }
        let r = tokio::select! {
            biased;
            _ = shared.cancel.cancelled() => { interrupted = true; break }
            r = wr.write_all(&spare) => r,
        };
        if let Err(e) = r {
            shared.fail(e.into());
            return;
        }
        wrote = true;
        spare.clear();
        // A multi-MiB message must not pin its buffer for the connection's lifetime.
        if spare.capacity() > 4 * 1024 * 1024 {
            spare = BytesMut::with_capacity(16 * 1024);
        }
    }
    // Over: flush what is queued (a close-ok, a close) unless a write was cut mid-way, which
    // would put half a frame before it.
    if !interrupted {
        take_outbox(&shared, &mut spare);
        if !spare.is_empty() {
            let _ = tokio::time::timeout(FLUSH_TIMEOUT, wr.write_all(&spare)).await;
        }
    }
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, wr.shutdown()).await;
}

/// Move the outbox's bytes into `spare`, leaving the outbox an empty buffer with capacity.
fn take_outbox(shared: &Shared, spare: &mut BytesMut) {
    let mut out = lock(&shared.outbox);
    if out.buf.is_empty() {
        return;
    }
    if spare.is_empty() {
        std::mem::swap(&mut out.buf, spare);
    } else {
        spare.extend_from_slice(&out.buf);
        out.buf.clear();
    }
}
