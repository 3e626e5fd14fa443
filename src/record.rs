//! `--record FILE.pcapng`: the connections a command carries (`proxy`) or makes (`call`, `serve`,
//! `bench`, `demo`) written as a capture, with [`amqp_dissect::record`] synthesizing the
//! Ethernet, IP and TCP around the bytes.
//!
//! One [`Tap`] per process: every connection's bytes go through it under one lock, so packets
//! are numbered (and written) in the order they passed, whichever connection they belong to. A
//! [`Watch`] beside it (the proxy's live view) sees each segment with the packet number and time
//! the file gives it, so the live view and a later `decode` of the file agree.
//!
//! A failed write (disk full) stops the recording, never the traffic: the error is reported once
//! on stderr and again when the command ends.

use std::fs::File;
use std::io::{self, BufWriter};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use amqp_dissect::record::{Mark, Opened, Recording, Segment};
use amqp_dissect::Side;

/// Written to the file in blocks of this size: a write syscall per 1 MiB, not per packet.
const FILE_BUFFER: usize = 1 << 20;

/// Sees what passes, as the recording numbers it (the proxy's live view).
pub trait Watch: Send + Sync {
    /// A connection opened.
    fn opened(&self, opened: Opened);
    /// `bytes` that `from` sent on `stream`, recorded as `segment`.
    fn data(&self, stream: u32, from: Side, bytes: &[u8], segment: &Segment);
    /// `from` closed its direction of `stream` (a FIN, or a RST when `reset`), recorded as `mark`.
    fn closed(&self, stream: u32, from: Side, reset: bool, mark: Mark);
    /// The connection is over.
    fn ended(&self, stream: u32);
}

impl<T: Watch + ?Sized> Watch for Arc<T> {
    fn opened(&self, opened: Opened) {
        (**self).opened(opened);
    }
    fn data(&self, stream: u32, from: Side, bytes: &[u8], segment: &Segment) {
        (**self).data(stream, from, bytes, segment);
    }
    fn closed(&self, stream: u32, from: Side, reset: bool, mark: Mark) {
        (**self).closed(stream, from, reset, mark);
    }
    fn ended(&self, stream: u32) {
        (**self).ended(stream);
    }
}

struct State {
    recording: Recording<BufWriter<File>>,
    path: Option<PathBuf>,
    /// Why the recording stopped, once it has.
    failed: Option<String>,
    connections: u64,
}

/// The recording (or only the packet numbering, without a file) of a process's connections.
pub struct Tap {
    state: Mutex<State>,
    watch: Option<Box<dyn Watch>>,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("path", &self.lock().path)
            .finish()
    }
}

impl Tap {
    /// Records into a new file at `path` (replacing one there), or, with `None`, only numbers
    /// packets for `watch`.
    pub fn new(path: Option<&Path>, watch: Option<Box<dyn Watch>>) -> Result<Tap, String> {
        let out = match path {
            Some(p) => Some(BufWriter::with_capacity(
                FILE_BUFFER,
                File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()))?,
            )),
            None => None,
        };
        let recording = Recording::new(out).map_err(|e| match path {
            Some(p) => format!("cannot write {}: {e}", p.display()),
            None => e.to_string(),
        })?;
        Ok(Tap {
            state: Mutex::new(State {
                recording,
                path: path.map(Path::to_path_buf),
                failed: None,
                connections: 0,
            }),
            watch,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection from `client` to `broker` opened: its stream number.
    pub fn open(&self, client: SocketAddr, broker: SocketAddr) -> u32 {
        let mut state = self.lock();
        state.connections += 1;
        let opened = state.recording.open(client, broker, SystemTime::now());
        match state.check(opened) {
            Some(opened) => {
                if let Some(w) = &self.watch {
                    w.opened(opened);
                }
                opened.stream
            }
            // Not reached: opening fails only on write errors, which `take_error` reports.
            None => u32::MAX,
        }
    }

    /// `bytes` that `from` sent on `stream`.
    pub fn data(&self, stream: u32, from: Side, bytes: &[u8]) {
        let mut state = self.lock();
        let watch = self.watch.as_deref();
        let result = state
            .recording
            .data(stream, from, bytes, SystemTime::now(), &mut |segment| {
                if let Some(w) = watch {
                    let part = bytes.get(segment.range.clone()).unwrap_or_default();
                    w.data(stream, from, part, &segment);
                }
            });
        state.check(result);
    }

    /// `from` closed its side of `stream` (FIN).
    pub fn fin(&self, stream: u32, from: Side) {
        let mut state = self.lock();
        self.fin_locked(&mut state, stream, from);
    }

    fn fin_locked(&self, state: &mut State, stream: u32, from: Side) {
        let result = state.recording.fin(stream, from, SystemTime::now());
        if let (Some(Some(mark)), Some(w)) = (state.check(result), &self.watch) {
            w.closed(stream, from, false, mark);
        }
    }

    /// `from` reset `stream` (RST).
    pub fn reset(&self, stream: u32, from: Side) {
        let mut state = self.lock();
        let result = state.recording.reset(stream, from, SystemTime::now());
        if let (Some(mark), Some(w)) = (state.check(result), &self.watch) {
            w.closed(stream, from, true, mark);
        }
    }

    /// `stream` is over: closed with FINs in the recording if nothing closed it yet, and the
    /// file flushed so that it can be read while the process goes on.
    pub fn end(&self, stream: u32) {
        let mut state = self.lock();
        // Already closed (both FINs, or a RST) is the usual case: nothing to add then.
        self.fin_locked(&mut state, stream, Side::Client);
        self.fin_locked(&mut state, stream, Side::Broker);
        let flushed = state.recording.flush();
        state.check(flushed);
        drop(state);
        if let Some(w) = &self.watch {
            w.ended(stream);
        }
    }

    /// Close what is still open and flush: a one-line account of the recording, or why it
    /// failed.
    pub fn finish(&self) -> Result<String, String> {
        let mut state = self.lock();
        let result = state.recording.close_all(SystemTime::now());
        state.check(result);
        let flushed = state.recording.flush();
        state.check(flushed);
        if let Some(e) = &state.failed {
            return Err(e.clone());
        }
        Ok(match &state.path {
            Some(p) => format!(
                "recorded {} connection(s), {} packets to {}",
                state.connections,
                state.recording.packets(),
                p.display()
            ),
            None => String::new(),
        })
    }
}

impl State {
    /// The value of a recording step. A write failure stops the file (reported once); the
    /// numbering, and so a live view, goes on.
    fn check<T>(&mut self, result: io::Result<T>) -> Option<T> {
        if let Some(e) = self.recording.take_error() {
            self.report(e);
        }
        match result {
            Ok(v) => Some(v),
            // A stream the recording does not know (closed already): nothing to say.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => None,
            Err(e) => {
                self.report(e);
                None
            }
        }
    }

    fn report(&mut self, e: io::Error) {
        if self.failed.is_none() {
            let what = match &self.path {
                Some(p) => format!("recording to {} stopped: {e}", p.display()),
                None => format!("packet numbering failed: {e}"),
            };
            eprintln!("amqp-rpc: {what}");
            self.failed = Some(what);
        }
    }
}

/// One of our own connections being recorded.
struct Recorded {
    tap: Arc<Tap>,
    stream: u32,
}

/// The tap as the client library's recorder.
struct OwnConnections(Arc<Tap>);

impl amqp_client::record::Recorder for OwnConnections {
    fn connection(
        &self,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Arc<dyn amqp_client::record::ConnectionRecorder> {
        let stream = self.0.open(local, peer);
        Arc::new(Recorded {
            tap: Arc::clone(&self.0),
            stream,
        })
    }
}

impl amqp_client::record::ConnectionRecorder for Recorded {
    fn read(&self, bytes: &[u8]) {
        self.tap.data(self.stream, Side::Broker, bytes);
    }

    fn written(&self, bytes: &[u8]) {
        self.tap.data(self.stream, Side::Client, bytes);
    }

    fn closed(&self) {
        self.tap.end(self.stream);
    }
}

/// `--record FILE` on a command that makes its own connections: every connection this process
/// opens from now on is recorded (nothing without a path). [`report`] the result before the
/// process ends.
pub fn own_connections(path: Option<&Path>) -> Result<Option<Arc<Tap>>, String> {
    let Some(path) = path else {
        return Ok(None);
    };
    let tap = Arc::new(Tap::new(Some(path), None)?);
    amqp_client::record::set_global(Arc::new(OwnConnections(Arc::clone(&tap))))
        .map_err(|_| "a recorder is already installed in this process".to_string())?;
    Ok(Some(tap))
}

/// Report how a recording went on stderr (after the command's own output).
pub fn report(tap: Option<&Arc<Tap>>) {
    if let Some(tap) = tap {
        match tap.finish() {
            Ok(line) if !line.is_empty() => eprintln!("amqp-rpc: {line}"),
            Ok(_) => {}
            Err(e) => eprintln!("amqp-rpc: {e}"),
        }
    }
}
