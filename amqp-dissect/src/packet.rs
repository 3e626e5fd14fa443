//! Packet layers: link header → IPv4/IPv6 → TCP, with pcap-parser for the link types and
//! etherparse for everything above. Truncated and odd packets yield `None`, never a panic.

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};
use pcap_parser::data::{get_packetdata, PacketData};
use pcap_parser::Linktype;

use crate::tcp::Segment;

/// `LINKTYPE_LOOP`: OpenBSD loopback, the null header in network byte order.
const LINKTYPE_LOOP: Linktype = Linktype(108);

/// Link types tried, in order, for a hex-dumped packet whose link type nobody told us.
const GUESSES: &[Linktype] = &[
    Linktype::ETHERNET,
    Linktype::LINUX_SLL2,
    Linktype::LINUX_SLL,
    Linktype::NULL,
    LINKTYPE_LOOP,
];

/// The TCP segment in a packet of link type `link`, if it holds one.
pub fn tcp_segment(data: &[u8], link: Linktype) -> Option<Segment<'_>> {
    let link = if link == LINKTYPE_LOOP {
        Linktype::NULL
    } else {
        link
    };
    let sliced = match get_packetdata(data, link, data.len())? {
        PacketData::L2(frame) => LaxSlicedPacket::from_ethernet(frame).ok()?,
        PacketData::L3(ether_type, l3) => {
            // The null/loop header's address family is in the writer's byte order; pcap-parser
            // reads one order only, so fall back on the IP version nibble.
            let ether_type = match ether_type {
                0x0800 | 0x86dd => ether_type,
                _ => match l3.first()? >> 4 {
                    4 => 0x0800,
                    6 => 0x86dd,
                    _ => return None,
                },
            };
            LaxSlicedPacket::from_ether_type(EtherType(ether_type), l3)
        }
        PacketData::L4(..) | PacketData::Unsupported(_) => return None,
    };
    from_sliced(&sliced)
}

/// The TCP segment in a packet of unknown link type: raw IP if the IP header accounts for the
/// packet exactly, else the first link type that yields TCP.
pub fn guess_segment(data: &[u8]) -> Option<(Linktype, Segment<'_>)> {
    if let Some(seg) = exact_ip(data) {
        return Some((Linktype::RAW, seg));
    }
    GUESSES
        .iter()
        .find_map(|&link| tcp_segment(data, link).map(|seg| (link, seg)))
        .or_else(|| tcp_segment(data, Linktype::RAW).map(|seg| (Linktype::RAW, seg)))
}

/// Raw IP whose total length is the packet's length: Ethernet or SLL bytes seldom fake that.
fn exact_ip(data: &[u8]) -> Option<Segment<'_>> {
    let total = match data.first()? >> 4 {
        4 => u16::from_be_bytes([*data.get(2)?, *data.get(3)?]) as usize,
        6 => 40 + u16::from_be_bytes([*data.get(4)?, *data.get(5)?]) as usize,
        _ => return None,
    };
    if total != data.len() {
        return None;
    }
    tcp_segment(data, Linktype::RAW)
}

fn from_sliced<'a>(sliced: &LaxSlicedPacket<'a>) -> Option<Segment<'a>> {
    let (src, dst): (IpAddr, IpAddr) = match sliced.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        LaxNetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        LaxNetSlice::Arp(_) => return None,
    };
    let TransportSlice::Tcp(tcp) = sliced.transport.as_ref()? else {
        return None;
    };
    Some(Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        syn: tcp.syn(),
        ack: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        payload: tcp.payload(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// IPv4 + TCP (no options) from 127.0.0.1:40000 to :5672 carrying `payload`.
    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let total = (20 + 20 + payload.len()) as u16;
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&5672u16.to_be_bytes());
        p.extend_from_slice(&1000u32.to_be_bytes());
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(&[0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn every_link_type_is_recognised() {
        let ip = ipv4_tcp(b"AMQP\0\0\x09\x01");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        let mut sll = vec![0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        let mut null_le = vec![2, 0, 0, 0];
        null_le.extend_from_slice(&ip);
        let mut null_be = vec![0, 0, 0, 2];
        null_be.extend_from_slice(&ip);
        for (data, link) in [
            (&ip, Linktype::RAW),
            (&eth, Linktype::ETHERNET),
            (&sll, Linktype::LINUX_SLL),
            (&sll2, Linktype::LINUX_SLL2),
            (&null_le, Linktype::NULL),
            (&null_be, Linktype::NULL),
        ] {
            let seg = tcp_segment(data, link).expect("segment");
            assert_eq!(seg.payload, b"AMQP\0\0\x09\x01", "{link:?}");
            assert_eq!(seg.dst.port(), 5672);
            let (_, guessed) = guess_segment(data).expect("guessed");
            assert_eq!(guessed.payload, seg.payload, "guess {link:?}");
        }
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let ip = ipv4_tcp(b"");
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&ip);
        eth.extend_from_slice(&[0; 6]);
        let seg = tcp_segment(&eth, Linktype::ETHERNET).unwrap();
        assert!(seg.payload.is_empty());
    }
}
