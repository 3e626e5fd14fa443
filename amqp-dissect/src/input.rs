//! What the input is (capture file, hex dump, raw AMQP bytes), and the loop that turns it into
//! [`Event`]s: packets → TCP streams → frames, or bytes → one raw stream → frames.

use std::io::{self, BufReader, Cursor, Read};
use std::rc::Rc;

use amqp_codec::{check, Frame, Status};
use pcap_parser::Linktype;

use crate::capture::{read_capture, Captured};
use crate::frames::{Found, FrameStream, Located};
use crate::hexdump::HexPackets;
use crate::packet::{guess_segment, tcp_segment};
use crate::tcp::{PacketMeta, Segment, Streams};
use crate::{Endpoints, Event, InputFormat, Options, Outcome, Side, Unreadable, What};

/// Bytes looked at to tell the format.
const SNIFF: usize = 64 * 1024;

/// Tell the format from the first bytes.
pub fn sniff(prefix: &[u8]) -> Option<InputFormat> {
    const MAGICS: [[u8; 4]; 5] = [
        [0xd4, 0xc3, 0xb2, 0xa1],
        [0xa1, 0xb2, 0xc3, 0xd4],
        [0x4d, 0x3c, 0xb2, 0xa1],
        [0xa1, 0xb2, 0x3c, 0x4d],
        [0x0a, 0x0d, 0x0d, 0x0a],
    ];
    if prefix.len() >= 4 && MAGICS.iter().any(|m| prefix.starts_with(m)) {
        return Some(InputFormat::Pcap);
    }
    if prefix.starts_with(b"AMQP") || looks_like_frame(prefix) {
        return Some(InputFormat::Bin);
    }
    // Text: no control bytes but line breaks and tabs (non-ASCII bytes may be a Latin-1 or
    // UTF-8 ASCII column), and some hex digits.
    let text_like = prefix
        .iter()
        .all(|&b| b >= 0x20 && b != 0x7f || matches!(b, b'\n' | b'\r' | b'\t'));
    (text_like && prefix.iter().any(u8::is_ascii_hexdigit)).then_some(InputFormat::Hex)
}

/// Bytes that start with an AMQP frame header whose frame-end is where its size says (or not yet
/// buffered) — a raw AMQP stream rather than a packet.
fn looks_like_frame(bytes: &[u8]) -> bool {
    if !matches!(bytes.first(), Some(1 | 2 | 3 | 8)) || bytes.len() < 7 {
        return false;
    }
    match check(bytes, crate::DEFAULT_FRAME_LIMIT) {
        Ok(Status::Complete(n)) => bytes.get(n - 1) == Some(&amqp_codec::FRAME_END),
        Ok(Status::Incomplete(_)) => true,
        Err(_) => false,
    }
}

/// Decode `input` and hand each event to `sink` (which returns `false` to stop); the counts.
pub fn for_each_event(
    input: impl Read + Send,
    options: &Options,
    sink: &mut dyn FnMut(&Event) -> bool,
) -> Result<Outcome, Unreadable> {
    let mut input = input;
    let mut prefix = Vec::with_capacity(SNIFF);
    (&mut input).take(SNIFF as u64).read_to_end(&mut prefix)?;
    if prefix.is_empty() {
        return Err(Unreadable::Format("empty input".into()));
    }
    let format = match options.format {
        Some(f) => f,
        None if options.raw => match sniff(&prefix) {
            Some(InputFormat::Hex) => InputFormat::Hex,
            _ => InputFormat::Bin,
        },
        None => sniff(&prefix).ok_or_else(|| {
            Unreadable::Format(
                "neither a capture file (pcap, pcapng), a hex dump, nor raw AMQP bytes".into(),
            )
        })?,
    };
    let input = Cursor::new(prefix).chain(input);
    let mut outcome = Outcome::default();
    let mut counted = |e: &Event| {
        match e.what {
            What::Frame { .. } => outcome.frames += 1,
            What::Error { .. } => outcome.errors += 1,
            What::Closed { .. } => {}
        }
        sink(e)
    };
    let packets = match format {
        InputFormat::Pcap => captures(input, options, &mut counted),
        InputFormat::Hex => hex(input, options, &mut counted),
        InputFormat::Bin => raw_bytes(input, options, &mut counted),
    }?;
    outcome.packets = packets.packets;
    if let Some(damage) = packets.damage {
        outcome.damage = Some(damage);
        outcome.errors += 1;
    }
    Ok(outcome)
}

#[derive(Debug, Default)]
struct Consumed {
    packets: u64,
    damage: Option<String>,
}

/// Hands events to the sink until it asks to stop.
struct Emitter<'s> {
    sink: &'s mut dyn FnMut(&Event) -> bool,
    stopped: bool,
}

impl Emitter<'_> {
    fn emit(&mut self, event: Event) {
        if !self.stopped && !(self.sink)(&event) {
            self.stopped = true;
        }
    }
}

fn captures(
    input: impl Read + Send,
    options: &Options,
    sink: &mut dyn FnMut(&Event) -> bool,
) -> Result<Consumed, Unreadable> {
    let mut streams = Streams::new(options.broker_port, options.frame_max);
    let mut em = Emitter {
        sink,
        stopped: false,
    };
    let mut tcp_packets = 0u64;
    let mut number = 0u64;
    let end = read_capture(input, &mut |p: Captured<'_>| {
        number += 1;
        let meta = PacketMeta {
            number,
            time: p.time,
        };
        if let Some(seg) = tcp_segment(p.data, p.link) {
            tcp_packets += 1;
            streams.segment(&seg, meta, &mut |e| em.emit(e));
        }
        !em.stopped
    })?;
    streams.finish(&mut |e| em.emit(e));
    Ok(Consumed {
        packets: number,
        damage: end.damage,
    })
}

fn hex(
    input: impl Read,
    options: &Options,
    sink: &mut dyn FnMut(&Event) -> bool,
) -> Result<Consumed, Unreadable> {
    let mut packets = HexPackets::new(BufReader::new(input)).peekable();
    let raw = options.raw
        || match packets.peek() {
            Some(Ok(first)) => first.bytes.starts_with(b"AMQP") || looks_like_frame(&first.bytes),
            Some(Err(e)) => return Err(Unreadable::Format(format!("not a hex dump: {e}"))),
            None => return Err(Unreadable::Format("no hex bytes found".into())),
        };
    if raw {
        let mut stream = RawStream::new(options.frame_max);
        let mut number = 0;
        for packet in packets {
            let packet = packet.map_err(|e| Unreadable::Format(format!("hex dump: {e}")))?;
            number += 1;
            if !stream.push(&packet.bytes, number, sink) {
                break;
            }
        }
        stream.finish(sink);
        return Ok(Consumed {
            packets: number,
            damage: None,
        });
    }
    let mut streams = Streams::new(options.broker_port, options.frame_max);
    let mut em = Emitter {
        sink,
        stopped: false,
    };
    let mut tcp_packets = 0u64;
    let mut number = 0u64;
    let mut link: Option<Linktype> = None;
    let mut damage = None;
    for packet in packets {
        let packet = match packet {
            Ok(p) => p,
            Err(e) => {
                damage = Some(format!("hex dump: {e}"));
                break;
            }
        };
        number += 1;
        let meta = PacketMeta { number, time: None };
        // The link type of the first packet that parses is tried first for the rest.
        let seg = link
            .and_then(|l| tcp_segment(&packet.bytes, l))
            .or_else(|| {
                guess_segment(&packet.bytes).map(|(l, seg)| {
                    link = Some(l);
                    seg
                })
            });
        if let Some(seg) = seg {
            tcp_packets += 1;
            // `tshark -x -Y amqp` leaves out the segments in the middle of a reassembled PDU but
            // prints the PDU: it fills the hole those segments leave.
            for (label, pdu) in &packet.sections {
                if label.starts_with("Reassembled TCP") {
                    if let Some(whole) = reassembled_segment(&seg, pdu) {
                        streams.segment(&whole, meta, &mut |e| em.emit(e));
                    }
                }
            }
            streams.segment(&seg, meta, &mut |e| em.emit(e));
        }
        if em.stopped {
            break;
        }
    }
    streams.finish(&mut |e| em.emit(e));
    if tcp_packets == 0 {
        return Err(Unreadable::Format(format!(
            "none of the {number} hex-dumped packet(s) is a TCP segment (Ethernet, SLL, SLL2, null or raw IP); use --raw for AMQP bytes"
        )));
    }
    Ok(Consumed {
        packets: number,
        damage,
    })
}

/// The segment that carried a reassembled PDU (one AMQP frame) ending in `seg`: where in `seg`'s
/// payload the frame ends, found by the frame's tail matching the payload's head.
fn reassembled_segment<'a>(seg: &Segment<'a>, pdu: &'a [u8]) -> Option<Segment<'a>> {
    let payload = seg.payload;
    let end = (1..=payload.len().min(pdu.len())).find(|&e| {
        let boundary = matches!(payload.get(e), None | Some(1 | 2 | 3 | 8 | b'A'));
        boundary && pdu.get(pdu.len() - e..) == payload.get(..e)
    })?;
    let start = seg
        .seq
        .wrapping_add(end as u32)
        .wrapping_sub(pdu.len() as u32);
    Some(Segment {
        seq: start,
        syn: false,
        fin: false,
        rst: false,
        payload: pdu,
        ..seg.clone()
    })
}

fn raw_bytes(
    mut input: impl Read,
    options: &Options,
    sink: &mut dyn FnMut(&Event) -> bool,
) -> Result<Consumed, Unreadable> {
    let mut stream = RawStream::new(options.frame_max);
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        let n = match input.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if !stream.push(chunk.get(..n).unwrap_or_default(), 1, sink) {
            break;
        }
    }
    stream.finish(sink);
    Ok(Consumed {
        packets: 1,
        damage: None,
    })
}

/// A raw AMQP byte stream: one direction, stream 0.
struct RawStream {
    frames: FrameStream,
    out: RawOut,
}

/// Where a raw stream's frames go: labelled with their side, then to the sink.
struct RawOut {
    side: Option<Side>,
    endpoints: Rc<Endpoints>,
    stopped: bool,
}

impl RawStream {
    fn new(limit: u32) -> Self {
        RawStream {
            frames: FrameStream::new(limit),
            out: RawOut {
                side: None,
                endpoints: Rc::new(Endpoints {
                    client: "client".into(),
                    broker: "broker".into(),
                }),
                stopped: false,
            },
        }
    }

    fn push(&mut self, data: &[u8], packet: u64, sink: &mut dyn FnMut(&Event) -> bool) -> bool {
        let out = &mut self.out;
        self.frames
            .push(data, packet, None, &mut |l| out.deliver(l, sink));
        !self.out.stopped
    }

    fn finish(&mut self, sink: &mut dyn FnMut(&Event) -> bool) {
        let out = &mut self.out;
        self.frames.finish(&mut |l| out.deliver(l, sink));
    }
}

impl RawOut {
    fn deliver(&mut self, l: Located, sink: &mut dyn FnMut(&Event) -> bool) {
        if self.stopped {
            return;
        }
        let side = *self.side.get_or_insert_with(|| match &l.found {
            Found::Frame(frame, _) => sender_of(frame),
            Found::Error { .. } => Side::Client,
        });
        let event = Event {
            packet: l.packet,
            time: l.time,
            stream: 0,
            side,
            offset: l.offset,
            endpoints: self.endpoints.clone(),
            what: l.found.into(),
        };
        if !sink(&event) {
            self.stopped = true;
        }
    }
}

/// Who sends a frame like this one, for a raw stream with nothing else to go by: the protocol
/// header and the client's halves of the handshake come from the client; `connection.start`,
/// `-ok` replies and deliveries from the broker.
pub fn sender_of(frame: &Frame) -> Side {
    let Frame::Method(_, method) = frame else {
        return Side::Client;
    };
    let info = method.info();
    match (info.class_name, info.method_name) {
        ("connection", "start" | "secure" | "tune" | "open-ok")
        | ("basic", "deliver" | "return" | "get-ok" | "get-empty") => Side::Broker,
        ("connection", _) => Side::Client,
        (_, name) if name.ends_with("-ok") => Side::Broker,
        _ => Side::Client,
    }
}
