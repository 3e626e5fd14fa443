//! TCP: segments grouped into streams and directions, put in sequence order, retransmissions
//! dropped, and the in-order bytes handed to each direction's [`FrameStream`].
//!
//! Streams are numbered like Wireshark's `tcp.stream`: 0-based, in order of first appearance of
//! the connection's address/port pair, with a new number when a SYN reopens a pair after FIN or
//! RST. The side on the broker port (5672, or `--port`) is the broker; without it, the side whose
//! first bytes are the protocol header `AMQP…` is the client, then the sender of a lone SYN.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use crate::frames::{FrameStream, Located};
use crate::{Endpoints, Event, Side, What};

/// Out-of-order bytes one direction may hold while it waits for a missing segment; beyond this
/// the hole is declared lost and decoding resumes after it.
const MAX_PENDING: usize = 4 * 1024 * 1024;

/// One TCP segment, as the packet layer found it.
#[derive(Debug, Clone)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number of the first payload byte (or of the SYN).
    pub seq: u32,
    /// SYN flag.
    pub syn: bool,
    /// ACK flag.
    pub ack: bool,
    /// FIN flag.
    pub fin: bool,
    /// RST flag.
    pub rst: bool,
    /// The TCP payload.
    pub payload: &'a [u8],
}

/// Where a packet came from: its number and timestamp.
#[derive(Debug, Clone, Copy)]
pub struct PacketMeta {
    /// 1-based packet number.
    pub number: u64,
    /// Timestamp, seconds since the epoch.
    pub time: Option<f64>,
}

#[derive(Debug)]
struct Direction {
    /// Sequence number of the next in-order byte, once known.
    next_seq: Option<u32>,
    /// Segments ahead of `next_seq`, by direction offset: (bytes, packet, time).
    pending: BTreeMap<u64, (Vec<u8>, u64, Option<f64>)>,
    pending_bytes: usize,
    frames: FrameStream,
    /// The first bytes were seen (to tell a protocol header at the very start).
    started: bool,
    /// A FIN or RST from this side was reported.
    closed: bool,
}

impl Direction {
    fn new(limit: u32) -> Self {
        Direction {
            next_seq: None,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            frames: FrameStream::new(limit),
            started: false,
            closed: false,
        }
    }
}

#[derive(Debug)]
struct Connection {
    labels: Labels,
    /// The connection carries AMQP (broker port, or a protocol header seen).
    amqp: bool,
    closed: bool,
    dirs: [Direction; 2],
}

/// What turns a direction's frames into events: the stream number and who is who.
#[derive(Debug)]
struct Labels {
    index: u32,
    /// The address that sent the first packet seen; `dirs[0]` is its direction.
    first: SocketAddr,
    /// The other address.
    second: SocketAddr,
    /// Which of `dirs` is the client's, once decided.
    client_dir: Option<usize>,
    endpoints: Option<Rc<Endpoints>>,
}

/// All streams of a capture.
#[derive(Debug)]
pub struct Streams {
    by_pair: HashMap<(SocketAddr, SocketAddr), usize>,
    conns: Vec<Connection>,
    next_index: u32,
    broker_port: u16,
    limit: u32,
}

fn pair(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// An address as events show it: `127.0.0.1:5672`, `[::1]:5672`.
pub(crate) fn show(addr: SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(_) => addr.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]:{}", addr.port()),
    }
}

impl Streams {
    /// Streams whose broker listens on `broker_port`, with frames up to `limit` bytes.
    pub fn new(broker_port: u16, limit: u32) -> Self {
        Streams {
            by_pair: HashMap::new(),
            conns: Vec::new(),
            next_index: 0,
            broker_port,
            limit,
        }
    }

    /// Take one segment; events for the frames it completes go to `emit`.
    pub fn segment(&mut self, seg: &Segment<'_>, meta: PacketMeta, emit: &mut dyn FnMut(Event)) {
        let key = pair(seg.src, seg.dst);
        let reopen = seg.syn && !seg.ack;
        let slot = match self.by_pair.get(&key).copied() {
            Some(slot) => {
                let c = &self.conns[slot];
                // A SYN after FIN/RST, or after data, is a new connection on a reused port pair.
                if reopen && (c.closed || c.dirs.iter().any(|d| d.started)) {
                    if c.amqp {
                        self.finish_conn(slot, emit);
                    }
                    self.open(key, seg)
                } else {
                    slot
                }
            }
            None => self.open(key, seg),
        };
        let conn = &mut self.conns[slot];
        if seg.fin || seg.rst {
            conn.closed = true;
        }
        let dir_ix = usize::from(conn.labels.first != seg.src);
        if conn.labels.client_dir.is_none() && reopen {
            conn.labels.client_dir = Some(dir_ix);
        }
        let dir = &mut conn.dirs[dir_ix];
        if seg.syn {
            dir.next_seq = Some(seg.seq.wrapping_add(1));
        }
        if !seg.payload.is_empty() {
            if !conn.amqp && !looks_amqp(dir, seg.payload) {
                dir.started = true;
                return;
            }
            if !conn.amqp {
                conn.amqp = true;
            }
            if !dir.started && seg.payload.starts_with(b"AMQP") && conn.labels.client_dir.is_none()
            {
                conn.labels.client_dir = Some(dir_ix);
            }
            let labels = &mut conn.labels;
            reassemble(dir, seg, meta, &mut |l| emit(labels.event(dir_ix, l)));
        }
        // Only a connection that carried AMQP reports its end, and only once it knows who is who
        // (a direction whose first AMQP byte is still to come names no side yet).
        let dir = &mut conn.dirs[dir_ix];
        if (seg.fin || seg.rst) && conn.amqp && !dir.closed && conn.labels.client_dir.is_some() {
            dir.closed = true;
            let closed = What::Closed { reset: seg.rst };
            let offset = dir.frames.end_offset();
            emit(conn.labels.labelled(dir_ix, offset, meta, closed));
        }
    }

    fn open(&mut self, key: (SocketAddr, SocketAddr), seg: &Segment<'_>) -> usize {
        let broker_side = if seg.dst.port() == self.broker_port {
            Some(1)
        } else if seg.src.port() == self.broker_port {
            Some(0)
        } else {
            None
        };
        let conn = Connection {
            labels: Labels {
                index: self.next_index,
                first: seg.src,
                second: seg.dst,
                client_dir: broker_side.map(|b| 1 - b),
                endpoints: None,
            },
            amqp: broker_side.is_some(),
            closed: false,
            dirs: [Direction::new(self.limit), Direction::new(self.limit)],
        };
        self.next_index += 1;
        self.conns.push(conn);
        let slot = self.conns.len() - 1;
        self.by_pair.insert(key, slot);
        slot
    }

    fn finish_conn(&mut self, slot: usize, emit: &mut dyn FnMut(Event)) {
        let conn = &mut self.conns[slot];
        for (dir_ix, dir) in conn.dirs.iter_mut().enumerate() {
            let labels = &mut conn.labels;
            let mut deliver = |l| emit(labels.event(dir_ix, l));
            flush_pending(dir, &mut deliver);
            dir.frames.finish(&mut deliver);
        }
        conn.closed = true;
    }

    /// End of input: flush every stream (holes, truncated frames) in stream order.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Event)) {
        let mut slots: Vec<usize> = (0..self.conns.len()).collect();
        slots.sort_by_key(|&s| self.conns[s].labels.index);
        for slot in slots {
            if self.conns[slot].amqp {
                self.finish_conn(slot, emit);
            }
        }
    }
}

/// A stream not on the broker port is dissected only if a direction opens with the header.
fn looks_amqp(dir: &Direction, payload: &[u8]) -> bool {
    !dir.started && payload.starts_with(b"AMQP")
}

impl Labels {
    /// The event for a frame of direction `dir_ix`.
    fn event(&mut self, dir_ix: usize, located: Located) -> Event {
        let meta = PacketMeta {
            number: located.packet,
            time: located.time,
        };
        self.labelled(dir_ix, located.offset, meta, located.found.into())
    }

    /// `what`, seen at `offset` of direction `dir_ix` in packet `meta`, as an event.
    fn labelled(&mut self, dir_ix: usize, offset: u64, meta: PacketMeta, what: What) -> Event {
        // First frames of a stream with no port or header to go by: the sender of the first
        // AMQP bytes is taken as the client.
        let client_dir = *self.client_dir.get_or_insert(dir_ix);
        let (first, second) = (self.first, self.second);
        let endpoints = self
            .endpoints
            .get_or_insert_with(|| {
                let (client, broker) = if client_dir == 0 {
                    (first, second)
                } else {
                    (second, first)
                };
                Rc::new(Endpoints {
                    client: show(client),
                    broker: show(broker),
                })
            })
            .clone();
        Event {
            packet: meta.number,
            time: meta.time,
            stream: self.index,
            side: if dir_ix == client_dir {
                Side::Client
            } else {
                Side::Broker
            },
            offset,
            endpoints,
            what,
        }
    }
}

/// Put a segment's payload in order: append what is next, drop what was seen, hold what is ahead.
fn reassemble(
    dir: &mut Direction,
    seg: &Segment<'_>,
    meta: PacketMeta,
    emit: &mut dyn FnMut(Located),
) {
    let seq = if seg.syn {
        seg.seq.wrapping_add(1)
    } else {
        seg.seq
    };
    let next_seq = *dir.next_seq.get_or_insert(seq);
    dir.started = true;
    // Sequence numbers wrap: the signed distance tells behind from ahead (RFC 793 comparisons).
    let ahead = seq.wrapping_sub(next_seq) as i32 as i64;
    let next_off = dir.frames.end_offset();
    if ahead <= 0 {
        let seen = ahead.unsigned_abs() as usize;
        if let Some(fresh) = seg.payload.get(seen..) {
            append(dir, fresh, meta.number, meta.time, emit);
        }
    } else {
        let off = next_off + ahead as u64;
        if !dir.pending.contains_key(&off) {
            dir.pending_bytes += seg.payload.len();
            dir.pending
                .insert(off, (seg.payload.to_vec(), meta.number, meta.time));
        }
        if dir.pending_bytes > MAX_PENDING {
            skip_hole(dir, emit);
        }
    }
    drain_pending(dir, emit);
}

fn append(
    dir: &mut Direction,
    data: &[u8],
    packet: u64,
    time: Option<f64>,
    emit: &mut dyn FnMut(Located),
) {
    if data.is_empty() {
        return;
    }
    dir.frames.push(data, packet, time, emit);
    if let Some(n) = dir.next_seq {
        dir.next_seq = Some(n.wrapping_add(data.len() as u32));
    }
}

/// Move held segments that have become in-order into the frame stream.
fn drain_pending(dir: &mut Direction, emit: &mut dyn FnMut(Located)) {
    loop {
        let next_off = dir.frames.end_offset();
        let Some((&off, _)) = dir.pending.iter().next() else {
            return;
        };
        if off > next_off {
            return;
        }
        let Some((data, packet, time)) = dir.pending.remove(&off) else {
            return;
        };
        dir.pending_bytes = dir.pending_bytes.saturating_sub(data.len());
        let seen = usize::try_from(next_off - off).unwrap_or(usize::MAX);
        if let Some(fresh) = data.get(seen..) {
            append(dir, fresh, packet, time, emit);
        }
    }
}

/// Give up on the hole before the first held segment: report it and go on after it.
fn skip_hole(dir: &mut Direction, emit: &mut dyn FnMut(Located)) {
    let next_off = dir.frames.end_offset();
    let Some((&off, _)) = dir.pending.iter().next() else {
        return;
    };
    if off <= next_off {
        return;
    }
    let missing = off - next_off;
    dir.frames.gap(missing, emit);
    if let Some(n) = dir.next_seq {
        dir.next_seq = Some(n.wrapping_add(missing as u32));
    }
}

fn flush_pending(dir: &mut Direction, emit: &mut dyn FnMut(Located)) {
    while !dir.pending.is_empty() {
        skip_hole(dir, emit);
        drain_pending(dir, emit);
    }
}
