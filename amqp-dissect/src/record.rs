//! Live connections written as a pcapng capture: the bytes each side sent, wrapped in synthesized
//! Ethernet, IPv4 (or IPv6) and TCP headers, so that Wireshark, tshark and `amqp-rpc decode` read
//! the file as if it had been captured on the wire.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::{Duration, UNIX_EPOCH};
//!
//! use amqp_dissect::record::Recording;
//! use amqp_dissect::{dissect, Options, Side, What};
//!
//! let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
//! let broker: SocketAddr = "127.0.0.1:5672".parse().unwrap();
//! let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let mut rec = Recording::new(Some(Vec::new())).unwrap();
//! let stream = rec.open(client, broker, t).unwrap().stream; // SYN, SYN-ACK, ACK
//! rec.data(stream, Side::Client, b"AMQP\x00\x00\x09\x01", t, &mut |_| {}).unwrap();
//! rec.fin(stream, Side::Client, t).unwrap();
//! rec.fin(stream, Side::Broker, t).unwrap(); // and the last ACK
//! let file = rec.finish().unwrap().unwrap();
//!
//! let mut seen = Vec::new();
//! let outcome = dissect(&file[..], &Options::default(), |event| {
//!     let closed = matches!(event.what, What::Closed { reset: false });
//!     seen.push((event.packet, event.side, closed));
//!     std::ops::ControlFlow::Continue(())
//! })
//! .unwrap();
//! // The protocol header in packet 4, then each side's FIN.
//! assert_eq!(seen, [(4, Side::Client, false), (5, Side::Client, true), (6, Side::Broker, true)]);
//! assert_eq!((outcome.frames, outcome.packets), (1, 7));
//! ```
//!
//! The TCP is what a clean connection looks like, so that tshark's analysis raises no warning:
//! a handshake (SYN, SYN-ACK, ACK) when a connection opens, every segment acknowledging all the
//! peer has sent, a pure ACK from the receiver before a sender would fill the advertised window,
//! FIN from each side (and the last ACK) or a RST at the end. A write larger than
//! [`MAX_SEGMENT`] becomes several segments. Each connection is its own TCP stream, numbered in
//! the order connections opened, as Wireshark's `tcp.stream` numbers them.
//!
//! Timestamps are microseconds since the epoch (pcapng's default resolution) and never go
//! backwards in the file: a wall clock stepped back is held at the last time written.
//!
//! With no output ([`Recording::new`]`(None)`) nothing is encoded, but packets are still
//! numbered: a live view then shows the packet numbers a recording would have.
//!
//! A failed write never leaves the TCP state half-updated: the output is dropped, numbering goes
//! on, and the error waits in [`Recording::take_error`] (and [`Recording::flush`]). The methods
//! that take a stream fail only for a stream that is not open, or data after its FIN.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use etherparse::PacketBuilder;
use pcap_parser::pcapng::{InterfaceDescriptionBlock, SectionHeaderBlock};
use pcap_parser::{Linktype, PcapNGOption, ToVec};

use crate::capture::seconds;
use crate::Side;

/// Largest TCP payload in one recorded segment: an IPv4 datagram is at most 65,535 bytes, less
/// 20 of IP header and 20 of TCP header.
pub const MAX_SEGMENT: usize = 65_495;
/// The receive window both sides advertise (no window scaling is negotiated in the SYNs).
const WINDOW: u32 = 65_535;
/// pcapng timestamps in microseconds: `if_tsresol` 6, the format's default.
const RESOLUTION: u64 = 1_000_000;
/// Captured length limit written in the interface description: above any packet we write.
const SNAPLEN: u32 = 262_144;
/// The Enhanced Packet Block: its type and the bytes before the packet data.
const EPB_TYPE: u32 = 6;
const EPB_HEADER: usize = 28;
/// Locally administered MAC addresses, one per side: the capture shows two hosts even when both
/// ends are 127.0.0.1.
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const BROKER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// A connection just recorded as open: its TCP stream number and the addresses written (both of
/// one IP family, see [`same_family`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The TCP stream number (0-based, in order of opening).
    pub stream: u32,
    /// The client's address as recorded.
    pub client: SocketAddr,
    /// The broker's address as recorded.
    pub broker: SocketAddr,
}

/// One data segment written: its packet number, its timestamp as a reader of the file computes
/// it, and which bytes of the write it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// 1-based packet number in the file.
    pub packet: u64,
    /// Timestamp, seconds since the epoch, exactly as `decode` reads it back.
    pub time: f64,
    /// The range of the written bytes this segment carries.
    pub range: std::ops::Range<usize>,
}

/// A FIN or RST written: its packet number and timestamp (as for [`Segment`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mark {
    /// 1-based packet number in the file.
    pub packet: u64,
    /// Timestamp, seconds since the epoch, exactly as `decode` reads it back.
    pub time: f64,
}

/// TCP state of one recorded connection; index 0 is the client, 1 the broker.
#[derive(Debug)]
struct Conversation {
    addrs: [SocketAddr; 2],
    /// Sequence number of each side's next byte.
    next_seq: [u32; 2],
    /// How far each side's bytes have been acknowledged by the other.
    acked: [u32; 2],
    fin: [bool; 2],
}

/// TCP flags of a synthesized segment.
#[derive(Debug, Clone, Copy, Default)]
struct Flags {
    syn: bool,
    ack: bool,
    psh: bool,
    fin: bool,
    rst: bool,
}

/// A capture being written: a pcapng section with one Ethernet interface, and the TCP state of
/// every connection still open.
#[derive(Debug)]
pub struct Recording<W: Write> {
    packets: Packets<W>,
    next_stream: u32,
    conversations: HashMap<u32, Conversation>,
    /// Last timestamp written, in microseconds: later packets never go before it.
    last_micros: u64,
}

/// The packets of a recording: numbered, and written when there is an output.
#[derive(Debug)]
struct Packets<W: Write> {
    out: Option<W>,
    count: u64,
    /// A write that failed since the last call returned: the output is dropped then (a
    /// half-written block would break the file) and numbering goes on.
    failed: Option<io::Error>,
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Broker => 1,
    }
}

/// The two addresses in one IP family, as one IP packet needs them: an IPv4 address beside an
/// IPv6 one becomes its IPv4-mapped form (`::ffff:a.b.c.d`).
pub fn same_family(client: SocketAddr, broker: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a.ip() {
        IpAddr::V4(ip) => SocketAddr::new(IpAddr::V6(ip.to_ipv6_mapped()), a.port()),
        IpAddr::V6(_) => a,
    };
    if client.is_ipv4() == broker.is_ipv4() {
        (client, broker)
    } else {
        (v6(client), v6(broker))
    }
}

/// Microseconds since the epoch (0 before it).
fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A first sequence number per stream and side: varied (and wrapping within a long
/// connection's life) like a real stack's, but deterministic.
fn initial_seq(stream: u32, side: usize) -> u32 {
    (stream.wrapping_mul(2).wrapping_add(side as u32 + 1)).wrapping_mul(0x9e37_79b9)
}

fn not_open(stream: u32) -> io::Error {
    invalid(format!("stream {stream} is not open in the recording"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl<W: Write> Recording<W> {
    /// A recording into `out` (the section and interface headers are written at once), or, with
    /// `None`, one that only numbers packets.
    pub fn new(mut out: Option<W>) -> io::Result<Self> {
        if let Some(w) = out.as_mut() {
            let mut shb = SectionHeaderBlock {
                block_type: 0,
                block_len1: 0,
                bom: 0,
                major_version: 1,
                minor_version: 0,
                section_len: -1,
                options: vec![PcapNGOption {
                    code: pcap_parser::OptionCode::ShbUserAppl,
                    len: 0,
                    value: Cow::Borrowed(b"amqp-rpc"),
                }],
                block_len2: 0,
            };
            let mut idb = InterfaceDescriptionBlock {
                block_type: 0,
                block_len1: 0,
                linktype: Linktype::ETHERNET,
                reserved: 0,
                snaplen: SNAPLEN,
                options: Vec::new(),
                block_len2: 0,
                if_tsresol: 6,
                if_tsoffset: 0,
            };
            for option in shb.options.iter_mut() {
                option.len = option.value.len() as u16;
            }
            w.write_all(&shb.to_vec().map_err(encode_error)?)?;
            w.write_all(&idb.to_vec().map_err(encode_error)?)?;
        }
        Ok(Recording {
            packets: Packets {
                out,
                count: 0,
                failed: None,
            },
            next_stream: 0,
            conversations: HashMap::new(),
            last_micros: 0,
        })
    }

    /// Packets written (or numbered) so far.
    pub fn packets(&self) -> u64 {
        self.packets.count
    }

    /// Connections open in the recording.
    pub fn open_streams(&self) -> usize {
        self.conversations.len()
    }

    /// A connection opened at `at`: writes its handshake and returns its stream.
    pub fn open(
        &mut self,
        client: SocketAddr,
        broker: SocketAddr,
        at: SystemTime,
    ) -> io::Result<Opened> {
        let (client, broker) = same_family(client, broker);
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(1);
        let isn = [initial_seq(stream, 0), initial_seq(stream, 1)];
        let mut conv = Conversation {
            addrs: [client, broker],
            next_seq: isn,
            acked: isn,
            fin: [false; 2],
        };
        let t = self.stamp(at);
        let syn = Flags {
            syn: true,
            ..Flags::default()
        };
        self.packets.segment(&conv, 0, syn, isn[0], 0, &[], t);
        let syn_ack = Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        };
        self.packets
            .segment(&conv, 1, syn_ack, isn[1], isn[0].wrapping_add(1), &[], t);
        conv.next_seq = [isn[0].wrapping_add(1), isn[1].wrapping_add(1)];
        conv.acked = conv.next_seq;
        self.packets.ack(&conv, 0, t);
        self.conversations.insert(stream, conv);
        Ok(Opened {
            stream,
            client,
            broker,
        })
    }

    /// `bytes` sent by `from` on `stream` at `at`, as one segment or several; `each` learns every
    /// data segment's packet number and time.
    pub fn data(
        &mut self,
        stream: u32,
        from: Side,
        bytes: &[u8],
        at: SystemTime,
        each: &mut dyn FnMut(Segment),
    ) -> io::Result<()> {
        let s = side_index(from);
        let p = 1 - s;
        let t = self.stamp(at);
        let packets = &mut self.packets;
        let conv = self
            .conversations
            .get_mut(&stream)
            .ok_or_else(|| not_open(stream))?;
        if conv.fin[s] {
            return Err(invalid(format!(
                "stream {stream}: data from the {} after its FIN",
                from.name()
            )));
        }
        for (i, chunk) in bytes.chunks(MAX_SEGMENT).enumerate() {
            let len = chunk.len() as u32;
            // Before this segment would fill the receiver's window (tshark: "window full"), the
            // receiver acknowledges what it has.
            let in_flight = conv.next_seq[s].wrapping_sub(conv.acked[s]);
            if in_flight.saturating_add(len) >= WINDOW {
                packets.ack(conv, p, t);
                conv.acked[s] = conv.next_seq[s];
            }
            let flags = Flags {
                ack: true,
                psh: true,
                ..Flags::default()
            };
            let (seq, ack) = (conv.next_seq[s], conv.next_seq[p]);
            packets.segment(conv, s, flags, seq, ack, chunk, t);
            conv.acked[p] = conv.next_seq[p];
            conv.next_seq[s] = seq.wrapping_add(len);
            let start = i * MAX_SEGMENT;
            each(Segment {
                packet: packets.count,
                time: seconds(t, RESOLUTION),
                range: start..start + chunk.len(),
            });
        }
        Ok(())
    }

    /// `from` closed its sending side (FIN) at `at`: the FIN's packet, or `None` when that side
    /// had closed already. When both sides have, the last ACK is written and the stream is over.
    pub fn fin(&mut self, stream: u32, from: Side, at: SystemTime) -> io::Result<Option<Mark>> {
        let s = side_index(from);
        let p = 1 - s;
        let mut conv = self.take(stream)?;
        if conv.fin[s] {
            self.conversations.insert(stream, conv);
            return Ok(None);
        }
        let t = self.stamp(at);
        let flags = Flags {
            ack: true,
            fin: true,
            ..Flags::default()
        };
        self.packets
            .segment(&conv, s, flags, conv.next_seq[s], conv.next_seq[p], &[], t);
        let mark = Mark {
            packet: self.packets.count,
            time: seconds(t, RESOLUTION),
        };
        conv.acked[p] = conv.next_seq[p];
        conv.next_seq[s] = conv.next_seq[s].wrapping_add(1);
        conv.fin[s] = true;
        if conv.fin[p] {
            // The first side to close acknowledges the second's FIN.
            self.packets.ack(&conv, p, t);
        } else {
            self.conversations.insert(stream, conv);
        }
        Ok(Some(mark))
    }

    /// `from` reset the connection (RST) at `at`: the RST's packet; the stream is over.
    pub fn reset(&mut self, stream: u32, from: Side, at: SystemTime) -> io::Result<Mark> {
        let s = side_index(from);
        let conv = self.take(stream)?;
        let t = self.stamp(at);
        let flags = Flags {
            ack: true,
            rst: true,
            ..Flags::default()
        };
        let (seq, ack) = (conv.next_seq[s], conv.next_seq[1 - s]);
        self.packets.segment(&conv, s, flags, seq, ack, &[], t);
        Ok(Mark {
            packet: self.packets.count,
            time: seconds(t, RESOLUTION),
        })
    }

    /// Every connection still open closes at `at` (FIN from both sides): a capture that ends
    /// with the process shows its connections ending too.
    pub fn close_all(&mut self, at: SystemTime) -> io::Result<()> {
        let mut open: Vec<u32> = self.conversations.keys().copied().collect();
        open.sort_unstable();
        for stream in open {
            self.fin(stream, Side::Client, at)?;
            self.fin(stream, Side::Broker, at)?;
        }
        Ok(())
    }

    /// Flush the output; fails with the first write error met since the last
    /// [`Recording::take_error`], if any.
    pub fn flush(&mut self) -> io::Result<()> {
        if let Some(Err(e)) = self.packets.out.as_mut().map(Write::flush) {
            self.packets.fail(e);
        }
        match self.packets.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The first write error met since the last call, if any: the output was dropped then (a
    /// half-written block would break the file), and numbering went on.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.packets.failed.take()
    }

    /// Stop writing and give the output back; packets are still numbered (a live view goes on
    /// after the file failed).
    pub fn take_output(&mut self) -> Option<W> {
        self.packets.out.take()
    }

    /// Close what is open, flush, and give the output back (or the first write error).
    pub fn finish(mut self) -> io::Result<Option<W>> {
        self.close_all(SystemTime::now())?;
        self.flush()?;
        Ok(self.packets.out.take())
    }

    fn take(&mut self, stream: u32) -> io::Result<Conversation> {
        self.conversations
            .remove(&stream)
            .ok_or_else(|| not_open(stream))
    }

    /// The time to write for `at`, in microseconds: never before the last one written.
    fn stamp(&mut self, at: SystemTime) -> u64 {
        self.last_micros = self.last_micros.max(micros(at));
        self.last_micros
    }
}

impl<W: Write> Packets<W> {
    fn fail(&mut self, e: io::Error) {
        self.out = None;
        self.failed.get_or_insert(e);
    }

    /// A pure ACK from `from` acknowledging all the other side has sent.
    fn ack(&mut self, conv: &Conversation, from: usize, t: u64) {
        let flags = Flags {
            ack: true,
            ..Flags::default()
        };
        let (seq, ack) = (conv.next_seq[from], conv.next_seq[1 - from]);
        self.segment(conv, from, flags, seq, ack, &[], t)
    }

    /// Number one packet and, when recording, write it (a failure drops the output).
    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        conv: &Conversation,
        from: usize,
        flags: Flags,
        seq: u32,
        ack: u32,
        payload: &[u8],
        t: u64,
    ) {
        self.count += 1;
        let Some(out) = self.out.as_mut() else {
            return;
        };
        if let Err(e) = write_packet(out, conv, from, flags, seq, ack, payload, t) {
            self.fail(e);
        }
    }
}

/// One packet as an Enhanced Packet Block, straight into `out`: the block's header, then the
/// Ethernet/IP/TCP headers and the payload as etherparse writes them, then the padding and the
/// trailing length. (pcap-parser's serializer builds each block in a `Vec` of its own first: an
/// allocation and a copy per packet, on the connection's own task when our processes record.)
#[allow(clippy::too_many_arguments)]
fn write_packet<W: Write>(
    out: &mut W,
    conv: &Conversation,
    from: usize,
    flags: Flags,
    seq: u32,
    ack: u32,
    payload: &[u8],
    t: u64,
) -> io::Result<()> {
    let (src, dst) = (conv.addrs[from], conv.addrs[1 - from]);
    let macs = if from == 0 {
        (CLIENT_MAC, BROKER_MAC)
    } else {
        (BROKER_MAC, CLIENT_MAC)
    };
    let link = PacketBuilder::ethernet2(macs.0, macs.1);
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => link.ipv4(a.octets(), b.octets(), 64),
        (a, b) => link.ipv6(v6_octets(a), v6_octets(b), 64),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, WINDOW as u16);
    if flags.syn {
        tcp = tcp.syn();
    }
    if flags.ack {
        tcp = tcp.ack(ack);
    }
    if flags.psh {
        tcp = tcp.psh();
    }
    if flags.fin {
        tcp = tcp.fin();
    }
    if flags.rst {
        tcp = tcp.rst();
    }
    let len = tcp.size(payload.len());
    let padding = (4 - len % 4) % 4;
    // Type, total length, interface, timestamp (high, low), captured and original length: the
    // pcapng EPB layout, in the section's byte order (little-endian, as the header says).
    let total = u32::try_from(EPB_HEADER + len + padding + 4)
        .map_err(|_| invalid(format!("a packet of {len} bytes does not fit a block")))?;
    let mut head = [0u8; EPB_HEADER];
    for (i, word) in [
        EPB_TYPE,
        total,
        0,
        (t >> 32) as u32,
        t as u32,
        len as u32,
        len as u32,
    ]
    .into_iter()
    .enumerate()
    {
        head[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
    }
    out.write_all(&head)?;
    tcp.write(out, payload)
        .map_err(|e| invalid(format!("cannot build a packet: {e}")))?;
    out.write_all(&[0; 3][..padding])?;
    out.write_all(&total.to_le_bytes())
}

fn v6_octets(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn encode_error(e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("cannot encode a pcapng block: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::read_capture;
    use crate::packet::tcp_segment;
    use std::time::Duration;

    fn addrs() -> (SocketAddr, SocketAddr) {
        (
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:5672".parse().unwrap(),
        )
    }

    /// (src port, seq, ack, flags "SAPFR", payload len) of every packet of a recording.
    fn packets(file: &[u8]) -> Vec<(u16, u32, u32, String, usize)> {
        let mut out = Vec::new();
        read_capture(file, &mut |p| {
            let seg = tcp_segment(p.data, p.link).expect("a TCP segment");
            let ack = u32::from_be_bytes(p.data[14 + 20 + 8..14 + 20 + 12].try_into().unwrap());
            let mut flags = String::new();
            for (on, c) in [
                (seg.syn, 'S'),
                (seg.ack, 'A'),
                (p.data[14 + 20 + 13] & 0x08 != 0, 'P'),
                (seg.fin, 'F'),
                (seg.rst, 'R'),
            ] {
                if on {
                    flags.push(c);
                }
            }
            out.push((seg.src.port(), seg.seq, ack, flags, seg.payload.len()));
            true
        })
        .unwrap();
        out
    }

    #[test]
    fn handshake_data_acks_and_fins_are_consistent() {
        let (c, b) = addrs();
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut rec = Recording::new(Some(Vec::new())).unwrap();
        let s = rec.open(c, b, t).unwrap().stream;
        let mut seen = Vec::new();
        rec.data(s, Side::Client, &[1; 100], t, &mut |seg| seen.push(seg))
            .unwrap();
        // 150,000 bytes: three segments, and the broker acknowledges before the window fills.
        rec.data(s, Side::Broker, &[2; 150_000], t, &mut |seg| seen.push(seg))
            .unwrap();
        rec.fin(s, Side::Broker, t).unwrap();
        rec.data(s, Side::Client, &[3; 10], t, &mut |seg| seen.push(seg))
            .unwrap();
        rec.fin(s, Side::Client, t).unwrap();
        assert_eq!(rec.open_streams(), 0);
        let file = rec.finish().unwrap().unwrap();
        let p = packets(&file);
        let (ic, ib) = (initial_seq(0, 0), initial_seq(0, 1));
        let n = |x: u32, d: u32| x.wrapping_add(d);
        let expected = vec![
            (40000, ic, 0, "S".to_string(), 0),
            (5672, ib, n(ic, 1), "SA".into(), 0),
            (40000, n(ic, 1), n(ib, 1), "A".into(), 0),
            (40000, n(ic, 1), n(ib, 1), "AP".into(), 100),
            (5672, n(ib, 1), n(ic, 101), "AP".into(), 65_495),
            (40000, n(ic, 101), n(ib, 65_496), "A".into(), 0),
            (5672, n(ib, 65_496), n(ic, 101), "AP".into(), 65_495),
            (40000, n(ic, 101), n(ib, 130_991), "A".into(), 0),
            (5672, n(ib, 130_991), n(ic, 101), "AP".into(), 19_010),
            (5672, n(ib, 150_001), n(ic, 101), "AF".into(), 0),
            (40000, n(ic, 101), n(ib, 150_002), "AP".into(), 10),
            (40000, n(ic, 111), n(ib, 150_002), "AF".into(), 0),
            (5672, n(ib, 150_002), n(ic, 112), "A".into(), 0),
        ];
        assert_eq!(p, expected);
        let packets: Vec<u64> = seen.iter().map(|s| s.packet).collect();
        assert_eq!(packets, [4, 5, 7, 9, 11]);
        assert_eq!(seen[3].range, 130_990..150_000);
        assert_eq!(seen[0].time, 1_700_000_000.0);
    }

    #[test]
    fn a_reset_ends_the_stream_and_unknown_streams_are_errors() {
        let (c, b) = addrs();
        let t = SystemTime::now();
        let mut rec = Recording::new(Some(Vec::new())).unwrap();
        let s = rec.open(c, b, t).unwrap().stream;
        rec.reset(s, Side::Broker, t).unwrap();
        assert!(rec.data(s, Side::Client, b"x", t, &mut |_| {}).is_err());
        assert!(rec.fin(7, Side::Client, t).is_err());
        let file = rec.finish().unwrap().unwrap();
        assert_eq!(packets(&file).last().unwrap().3, "AR");
    }

    #[test]
    fn time_never_goes_back_and_numbering_works_without_output() {
        let (c, b) = addrs();
        let later = UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let earlier = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let mut rec = Recording::<Vec<u8>>::new(None).unwrap();
        let s = rec.open(c, b, later).unwrap().stream;
        let mut times = Vec::new();
        rec.data(s, Side::Client, b"AMQP", earlier, &mut |seg| {
            times.push((seg.packet, seg.time))
        })
        .unwrap();
        assert_eq!(times, [(4, 2_000_000_000.0)]);
        assert!(rec.finish().unwrap().is_none());
    }

    /// A disk that fills up after `room` bytes.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room < buf.len() {
                return Err(io::Error::other("no space left on device"));
            }
            self.room -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_reported_once_and_numbering_goes_on() {
        let (c, b) = addrs();
        let t = SystemTime::now();
        let mut rec = Recording::new(Some(Full { room: 400 })).unwrap();
        let s = rec.open(c, b, t).unwrap().stream;
        rec.data(s, Side::Client, &[0; 1000], t, &mut |_| {})
            .unwrap();
        let err = rec.take_error().expect("the write error");
        assert!(err.to_string().contains("no space"), "{err}");
        assert!(rec.take_error().is_none());
        let mut packets = Vec::new();
        rec.data(s, Side::Broker, b"x", t, &mut |seg| {
            packets.push(seg.packet)
        })
        .unwrap();
        assert_eq!(packets, [5]);
        assert!(rec.finish().unwrap().is_none());
    }

    #[test]
    fn mixed_families_are_recorded_as_ipv6() {
        let c: SocketAddr = "[::1]:40000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5672".parse().unwrap();
        let mut rec = Recording::new(Some(Vec::new())).unwrap();
        let opened = rec.open(c, b, SystemTime::now()).unwrap();
        assert_eq!(opened.broker, "[::ffff:127.0.0.1]:5672".parse().unwrap());
        let file = rec.finish().unwrap().unwrap();
        let mut ports = Vec::new();
        read_capture(&file[..], &mut |p| {
            let seg = tcp_segment(p.data, p.link).expect("IPv6 TCP");
            ports.push((seg.src, seg.dst));
            true
        })
        .unwrap();
        assert_eq!(ports[0], (c, opened.broker));
    }
}
