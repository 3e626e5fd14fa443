//! Capture files, pcap (either byte order, micro- or nanosecond) and pcapng, read as a stream of
//! packets with pcap-parser: one record in memory at a time.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::{create_reader, Linktype, PcapBlockOwned, PcapError};

use crate::Unreadable;

/// Buffer pcap-parser reads records into; grown (up to [`MAX_RECORD`]) for larger records.
const BUFFER: usize = 256 << 10;
/// Largest capture record we accept (pcapng snaplen is at most 256 KiB in practice).
const MAX_RECORD: usize = 64 << 20;

/// One captured packet.
#[derive(Debug)]
pub struct Captured<'a> {
    /// Link type of its interface.
    pub link: Linktype,
    /// Timestamp, seconds since the epoch.
    pub time: Option<f64>,
    /// The bytes captured.
    pub data: &'a [u8],
}

/// How reading a capture ended.
#[derive(Debug, Default)]
pub struct CaptureEnd {
    /// Why the capture stopped before its end (a truncated or corrupt record), if it did.
    pub damage: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link: Linktype,
    /// Units per second.
    resolution: Option<u64>,
    offset: i64,
}

/// Read every packet of the capture in `input`, calling `packet` for each in file order; stop
/// early when it returns `false`.
pub fn read_capture(
    input: impl Read + Send,
    packet: &mut dyn FnMut(Captured<'_>) -> bool,
) -> Result<CaptureEnd, Unreadable> {
    let mut reader = create_reader(BUFFER, input)
        .map_err(|e| Unreadable::Format(format!("not a pcap or pcapng file ({e:?})")))?;
    let mut legacy: Option<(Linktype, bool)> = None;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut capacity = BUFFER;
    loop {
        match reader.next() {
            Ok((consumed, block)) => {
                let go_on = match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network, h.is_nanosecond_precision()));
                        true
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link, nano) = legacy.unwrap_or((Linktype::ETHERNET, false));
                        let frac = if nano { 1e-9 } else { 1e-6 };
                        packet(Captured {
                            link,
                            time: Some(b.ts_sec as f64 + b.ts_usec as f64 * frac),
                            data: b.data.get(..b.caplen as usize).unwrap_or(b.data),
                        })
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        interfaces.clear();
                        true
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            link: idb.linktype,
                            resolution: idb.ts_resolution(),
                            offset: idb.ts_offset(),
                        });
                        true
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(ifc) => packet(Captured {
                                link: ifc.link,
                                time: timestamp(ifc, epb.ts_high, epb.ts_low),
                                data: epb.data.get(..epb.caplen as usize).unwrap_or(epb.data),
                            }),
                            None => true,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        Some(ifc) => packet(Captured {
                            link: ifc.link,
                            time: None,
                            data: spb.data.get(..spb.origlen as usize).unwrap_or(spb.data),
                        }),
                        None => true,
                    },
                    PcapBlockOwned::NG(_) => true,
                };
                reader.consume(consumed);
                if !go_on {
                    return Ok(CaptureEnd::default());
                }
            }
            Err(PcapError::Eof) => return Ok(CaptureEnd::default()),
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Ok(CaptureEnd {
                        damage: Some("capture truncated: its last record is incomplete".into()),
                    });
                }
                reader.refill().map_err(|e| {
                    Unreadable::Format(format!("capture unreadable while refilling ({e:?})"))
                })?;
            }
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_RECORD || !reader.grow(capacity * 4) {
                    return Ok(CaptureEnd {
                        damage: Some(format!(
                            "capture record larger than {MAX_RECORD} bytes; stopping"
                        )),
                    });
                }
                capacity *= 4;
                reader.refill().map_err(|e| {
                    Unreadable::Format(format!("capture unreadable while refilling ({e:?})"))
                })?;
            }
            Err(e) => {
                return Ok(CaptureEnd {
                    damage: Some(format!("capture corrupt: {e:?}")),
                })
            }
        }
    }
}

/// A pcapng timestamp: `(high << 32 | low)` units of the interface's resolution, plus its offset.
fn timestamp(ifc: &Interface, high: u32, low: u32) -> Option<f64> {
    let units = (u64::from(high) << 32) | u64::from(low);
    let resolution = ifc.resolution.filter(|&r| r > 0)?;
    Some(seconds(units, resolution) + ifc.offset as f64)
}

/// `units` of `1 / resolution` second as seconds: whole seconds and fraction apart, so that a
/// recording's live view computes the very `f64` a reader of the file does.
pub(crate) fn seconds(units: u64, resolution: u64) -> f64 {
    (units / resolution) as f64 + (units % resolution) as f64 / resolution as f64
}
