//! The live view: what passes, dissected and printed by `decode`'s printers on a thread of its
//! own, so that a slow terminal never slows the forwarding.
//!
//! The forwarding side hands each recorded segment over a queue bounded in bytes
//! ([`QUEUE_BYTES`]); when the printer falls that far behind, segments are dropped and counted
//! instead of waiting, and the view reports the hole where it was (`N bytes missing … (the live
//! view fell behind)`) and finds the next frame after it. The traffic itself never loses a byte.

use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use amqp_dissect::live::LiveStream;
use amqp_dissect::record::{Mark, Opened, Segment};
use amqp_dissect::Side;

use crate::decode::print::rpc::RpcPrinter;
use crate::decode::print::{self, Printer};
use crate::decode::DecodeArgs;
use crate::record::Watch;
use amqp_dissect::rpc::Limits;

/// Bytes the view may hold unprinted before it drops what comes.
pub const QUEUE_BYTES: usize = 16 << 20;

/// What the forwarding side tells the view.
enum Seen {
    Open(Opened),
    Data {
        stream: u32,
        from: Side,
        bytes: Vec<u8>,
        packet: u64,
        time: f64,
        /// Bytes of this direction dropped just before these.
        missed: u64,
    },
    /// A direction closed (FIN, or RST when `reset`), after `missed` dropped bytes.
    Closed {
        stream: u32,
        from: Side,
        reset: bool,
        mark: Mark,
        missed: u64,
    },
    /// The connection is over; bytes of each direction (client, broker) dropped at its end.
    End(u32, [u64; 2]),
    /// The proxy is stopping: print the tail and return.
    Stop,
}

/// The forwarding side's end of the queue.
pub struct ViewQueue {
    tx: Sender<Seen>,
    queued: Arc<AtomicUsize>,
    /// Dropped bytes not yet reported, by stream and direction.
    missed: Mutex<HashMap<(u32, Side), u64>>,
    dropped_bytes: AtomicU64,
    dropped_segments: AtomicU64,
}

/// The view's thread.
pub struct View {
    thread: JoinHandle<io::Result<()>>,
}

/// Starts the view thread printing to stdout as `args` ask (`decode`'s view options).
pub fn start(args: DecodeArgs, colour: bool) -> (Arc<ViewQueue>, View) {
    let (tx, rx) = mpsc::channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let queue = Arc::new(ViewQueue {
        tx,
        queued: Arc::clone(&queued),
        missed: Mutex::new(HashMap::new()),
        dropped_bytes: AtomicU64::new(0),
        dropped_segments: AtomicU64::new(0),
    });
    let thread = std::thread::Builder::new()
        .name("proxy-view".into())
        .spawn(move || print_loop(rx, queued, printer(&args, colour), args.frame_max))
        .expect("spawn the view thread");
    (queue, View { thread })
}

impl ViewQueue {
    fn send(&self, seen: Seen) {
        // The view has gone only if it panicked: nothing to do then.
        let _ = self.tx.send(seen);
    }

    /// Segments and bytes dropped because the view fell behind.
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_segments.load(Ordering::Relaxed),
            self.dropped_bytes.load(Ordering::Relaxed),
        )
    }

    /// Tells the view to finish.
    pub fn stop(&self) {
        self.send(Seen::Stop);
    }
}

impl Watch for ViewQueue {
    fn opened(&self, opened: Opened) {
        self.send(Seen::Open(opened));
    }

    fn data(&self, stream: u32, from: Side, bytes: &[u8], segment: &Segment) {
        let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        if self.queued.load(Ordering::Acquire) + bytes.len() > QUEUE_BYTES {
            *missed.entry((stream, from)).or_default() += bytes.len() as u64;
            self.dropped_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.dropped_segments.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let before = missed.remove(&(stream, from)).unwrap_or(0);
        drop(missed);
        self.queued.fetch_add(bytes.len(), Ordering::AcqRel);
        self.send(Seen::Data {
            stream,
            from,
            bytes: bytes.to_vec(),
            packet: segment.packet,
            time: segment.time,
            missed: before,
        });
    }

    fn closed(&self, stream: u32, from: Side, reset: bool, mark: Mark) {
        let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        let before = missed.remove(&(stream, from)).unwrap_or(0);
        drop(missed);
        self.send(Seen::Closed {
            stream,
            from,
            reset,
            mark,
            missed: before,
        });
    }

    fn ended(&self, stream: u32) {
        let mut missed = self.missed.lock().unwrap_or_else(|p| p.into_inner());
        let tail = [
            missed.remove(&(stream, Side::Client)).unwrap_or(0),
            missed.remove(&(stream, Side::Broker)).unwrap_or(0),
        ];
        drop(missed);
        self.send(Seen::End(stream, tail));
    }
}

impl View {
    /// Waits for the view to print its tail (after [`ViewQueue::stop`]).
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the view thread panicked")))
    }
}

/// `decode`'s printer for the view asked for; `--rpc` reports each call as soon as it is finished
/// (`decode --rpc` waits to report them in order).
fn printer(args: &DecodeArgs, colour: bool) -> Box<dyn Printer> {
    if args.rpc {
        let limits = Limits {
            ordered: false,
            ..Limits::default()
        };
        Box::new(RpcPrinter::with_limits(args.json, colour, limits))
    } else {
        print::printer(args, colour)
    }
}

/// Prints `events` unless printing failed before; the first failure is kept.
fn show(
    printer: &mut dyn Printer,
    out: &mut dyn Write,
    events: Vec<amqp_dissect::Event>,
    failed: &mut Option<io::Error>,
) {
    for event in events {
        if failed.is_some() {
            return;
        }
        if let Err(e) = printer.event(&event, out) {
            *failed = Some(e);
        }
    }
}

fn print_loop(
    rx: Receiver<Seen>,
    queued: Arc<AtomicUsize>,
    mut printer: Box<dyn Printer>,
    frame_max: u32,
) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut streams: HashMap<u32, LiveStream> = HashMap::new();
    // Once stdout fails (a closed pipe) the view stops printing but keeps draining the queue.
    let mut failed: Option<io::Error> = None;
    loop {
        let seen = match rx.try_recv() {
            Ok(seen) => seen,
            Err(TryRecvError::Empty) => {
                // Nothing waiting: show what was printed before blocking.
                if failed.is_none() {
                    if let Err(e) = out.flush() {
                        failed = Some(e);
                    }
                }
                match rx.recv() {
                    Ok(seen) => seen,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let mut events = Vec::new();
        match seen {
            Seen::Open(o) => {
                streams.insert(
                    o.stream,
                    LiveStream::new(o.stream, o.client, o.broker, frame_max),
                );
            }
            Seen::Data {
                stream,
                from,
                bytes,
                packet,
                time,
                missed,
            } => {
                queued.fetch_sub(bytes.len(), Ordering::AcqRel);
                if let Some(live) = streams.get_mut(&stream) {
                    if missed > 0 {
                        live.gap(from, missed, "the live view fell behind", &mut |e| {
                            events.push(e)
                        });
                    }
                    live.push(from, &bytes, packet, Some(time), &mut |e| events.push(e));
                }
            }
            Seen::Closed {
                stream,
                from,
                reset,
                mark,
                missed,
            } => {
                if let Some(live) = streams.get_mut(&stream) {
                    if missed > 0 {
                        live.gap(from, missed, "the live view fell behind", &mut |e| {
                            events.push(e)
                        });
                    }
                    live.closed(from, reset, mark.packet, Some(mark.time), &mut |e| {
                        events.push(e)
                    });
                }
            }
            Seen::End(stream, tail) => {
                if let Some(mut live) = streams.remove(&stream) {
                    for (from, missed) in [Side::Client, Side::Broker].into_iter().zip(tail) {
                        if missed > 0 {
                            live.gap(from, missed, "the live view fell behind", &mut |e| {
                                events.push(e)
                            });
                        }
                    }
                    live.finish(&mut |e| events.push(e));
                }
            }
            Seen::Stop => break,
        }
        show(printer.as_mut(), &mut out, events, &mut failed);
    }
    let mut rest: Vec<_> = streams.into_iter().collect();
    rest.sort_by_key(|(index, _)| *index);
    for (_, mut live) in rest {
        let mut events = Vec::new();
        live.finish(&mut |e| events.push(e));
        show(printer.as_mut(), &mut out, events, &mut failed);
    }
    if failed.is_none() {
        if let Err(e) = printer.finish(&mut out).and_then(|()| out.flush()) {
            failed = Some(e);
        }
    }
    match failed {
        Some(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}
