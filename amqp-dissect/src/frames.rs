//! AMQP frames out of one direction of a stream: buffer the reassembled bytes, split off whole
//! frames, report damage, and find the next frame boundary after it.
//!
//! A frame with a sound length but bad content is reported and skipped by its length, so the
//! next frame decodes normally. When the header itself is unusable (an unknown type octet, a size
//! beyond the limit) there is no length to trust: we scan forward for the next offset where a
//! plausible frame starts — a known type, a size within the limit, and the frame-end octet where
//! the size says it is — and resume there.

use std::collections::VecDeque;

use amqp_codec::frame::{FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};
use amqp_codec::method::ALL_METHODS;
use amqp_codec::{check, DecodeError, Frame, Status, FRAME_END};
use bytes::{Buf, BytesMut};

/// Bytes before a frame's payload: type, channel, size.
const HEADER_SIZE: usize = 7;

/// What one decoded (or failed) frame looks like to the caller.
#[derive(Debug)]
// Frames are the common case: boxing them would cost an allocation each for the rare error.
#[allow(clippy::large_enum_variant)]
pub enum Found {
    /// A frame, with the header's size field.
    Frame(Frame, u32),
    /// Damage at `at` (offset in the direction); channel and size when the header was readable.
    Error {
        /// Channel from the header.
        channel: Option<u16>,
        /// Size field from the header.
        length: Option<u32>,
        /// Offset of the offending byte in the stream direction.
        at: u64,
        /// What and why.
        message: String,
    },
}

impl From<Found> for crate::What {
    fn from(found: Found) -> Self {
        match found {
            Found::Frame(frame, length) => crate::What::Frame { frame, length },
            Found::Error {
                channel,
                length,
                at,
                message,
            } => crate::What::Error {
                channel,
                length,
                at,
                message,
            },
        }
    }
}

/// One frame or error, where it starts, and the packet (number, time) where it ends.
#[derive(Debug)]
pub struct Located {
    /// Offset of the frame's first byte in the direction.
    pub offset: u64,
    /// Number of the packet holding the frame's last byte.
    pub packet: u64,
    /// That packet's timestamp.
    pub time: Option<f64>,
    /// The frame or error.
    pub found: Found,
}

/// The frame splitter for one stream direction.
#[derive(Debug)]
pub struct FrameStream {
    buf: BytesMut,
    /// Direction offset of `buf[0]`.
    base: u64,
    /// `(end offset, packet, time)` of the data pushed, to name the packet where a frame ends.
    marks: VecDeque<(u64, u64, Option<f64>)>,
    limit: u32,
    /// After damage: looking for the next frame boundary.
    resyncing: bool,
}

impl FrameStream {
    /// A splitter accepting frames up to `limit` bytes.
    pub fn new(limit: u32) -> Self {
        FrameStream {
            buf: BytesMut::new(),
            base: 0,
            marks: VecDeque::new(),
            limit,
            resyncing: false,
        }
    }

    /// Direction offset of the next byte pushed.
    pub fn end_offset(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Bytes buffered and not yet part of a whole frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Append in-order bytes from `packet` and hand out every frame they complete.
    pub fn push(
        &mut self,
        data: &[u8],
        packet: u64,
        time: Option<f64>,
        emit: &mut dyn FnMut(Located),
    ) {
        if data.is_empty() {
            return;
        }
        self.buf.extend_from_slice(data);
        self.marks.push_back((self.end_offset(), packet, time));
        self.drain(false, emit);
    }

    /// Bytes are missing before the next push (a hole in the capture): report it, drop what
    /// was buffered, and look for a frame boundary in what follows.
    pub fn gap(&mut self, missing: u64, emit: &mut dyn FnMut(Located)) {
        self.gap_because(missing, "lost segments", emit);
    }

    /// Bytes are missing before the next push, for the reason given (`lost segments`, `the
    /// printer fell behind`): reported and resynchronised as [`FrameStream::gap`].
    pub fn gap_because(&mut self, missing: u64, cause: &str, emit: &mut dyn FnMut(Located)) {
        let at = self.end_offset();
        let (packet, time) = self.last_mark();
        let start = if self.buf.is_empty() { at } else { self.base };
        emit(Located {
            offset: start,
            packet,
            time,
            found: Found::Error {
                channel: None,
                length: None,
                at,
                message: format!(
                    "{missing} bytes missing from the capture at offset {at} ({cause}); {} buffered bytes dropped, resynchronising",
                    self.buf.len()
                ),
            },
        });
        self.base = at + missing;
        self.buf.clear();
        self.marks.clear();
        self.resyncing = true;
    }

    /// The stream ended: report a partial frame left in the buffer.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Located)) {
        self.drain(true, emit);
        if self.buf.is_empty() {
            return;
        }
        let (packet, time) = self.last_mark();
        let header = header_fields(&self.buf);
        let message = match check(&self.buf, self.limit) {
            Ok(Status::Incomplete(n)) => format!(
                "truncated frame at offset {}: stream ends after {} of {} bytes",
                self.base,
                self.buf.len(),
                self.buf.len() + n
            ),
            _ => format!(
                "{} trailing bytes at offset {} are not a frame",
                self.buf.len(),
                self.base
            ),
        };
        emit(Located {
            offset: self.base,
            packet,
            time,
            found: Found::Error {
                channel: header.map(|h| h.0),
                length: header.map(|h| h.1),
                at: self.end_offset(),
                message,
            },
        });
        self.base = self.end_offset();
        self.buf.clear();
        self.marks.clear();
    }

    fn last_mark(&self) -> (u64, Option<f64>) {
        self.marks.back().map(|m| (m.1, m.2)).unwrap_or((0, None))
    }

    /// The packet holding direction offset `end - 1` (the last byte of a frame ending at `end`).
    fn packet_at(&mut self, end: u64) -> (u64, Option<f64>) {
        while self.marks.len() > 1 && self.marks.front().is_some_and(|m| m.0 < end) {
            self.marks.pop_front();
        }
        self.marks.front().map(|m| (m.1, m.2)).unwrap_or((0, None))
    }

    fn drain(&mut self, finishing: bool, emit: &mut dyn FnMut(Located)) {
        loop {
            if self.resyncing {
                match find_boundary(&self.buf, self.limit, finishing) {
                    Ok(at) => {
                        self.advance(at);
                        self.resyncing = false;
                    }
                    Err(Some(maybe)) => {
                        // A candidate whose frame-end is not buffered yet: wait for it.
                        self.advance(maybe);
                        return;
                    }
                    Err(None) => {
                        // Keep a tail that could hold the start of a frame header.
                        let keep = if finishing { 0 } else { HEADER_SIZE - 1 };
                        self.advance(self.buf.len().saturating_sub(keep));
                        return;
                    }
                }
            }
            if self.buf.is_empty() {
                return;
            }
            let offset = self.base;
            match check(&self.buf, self.limit) {
                Ok(Status::Incomplete(_)) => return,
                Ok(Status::Complete(n)) => {
                    let header = header_fields(&self.buf);
                    let bytes = self.buf.split_to(n).freeze();
                    self.base += n as u64;
                    let (packet, time) = self.packet_at(self.base);
                    let found = match Frame::parse(bytes) {
                        Ok(frame) => Found::Frame(frame, header.map_or(0, |h| h.1)),
                        Err(e) => Found::Error {
                            channel: header.map(|h| h.0),
                            length: header.map(|h| h.1),
                            at: offset + e.offset() as u64,
                            message: describe(&e),
                        },
                    };
                    emit(Located {
                        offset,
                        packet,
                        time,
                        found,
                    });
                }
                Err(e) => {
                    let header = header_fields(&self.buf);
                    let (packet, time) = self.packet_at(self.base + 1);
                    emit(Located {
                        offset,
                        packet,
                        time,
                        found: Found::Error {
                            channel: header.map(|h| h.0),
                            length: header.map(|h| h.1),
                            at: offset + e.offset() as u64,
                            message: format!("{}; resynchronising", describe(&e)),
                        },
                    });
                    // No length to trust: skip the octet and look for the next frame.
                    self.advance(1);
                    self.resyncing = true;
                }
            }
        }
    }

    fn advance(&mut self, n: usize) {
        let n = n.min(self.buf.len());
        self.buf.advance(n);
        self.base += n as u64;
    }
}

fn describe(e: &DecodeError) -> String {
    format!("{e} (reply code {})", e.reply_code())
}

/// Channel and size from a frame header, when the buffer holds one (not the protocol header).
fn header_fields(buf: &[u8]) -> Option<(u16, u32)> {
    match buf.get(..HEADER_SIZE)? {
        [b'A', ..] => None,
        [_, c0, c1, s0, s1, s2, s3] => Some((
            u16::from_be_bytes([*c0, *c1]),
            u32::from_be_bytes([*s0, *s1, *s2, *s3]),
        )),
        _ => None,
    }
}

/// Whether a frame starts here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plausible {
    Yes,
    No,
    /// Looks right so far, but the frame-end octet is not buffered yet.
    Maybe,
}

/// The first offset in `buf` where a plausible frame starts: `Ok(offset)`, or `Err(Some(offset))`
/// for the first candidate that needs more bytes to tell, or `Err(None)` for none at all.
///
/// Plausible: the protocol header, or a known frame type whose size fits the limit and whose
/// frame-end octet is where the size puts it, with a known class/method for a method frame and
/// an empty channel-0 payload for a heartbeat. When finishing, a candidate that cannot be
/// confirmed is no candidate.
fn find_boundary(buf: &[u8], limit: u32, finishing: bool) -> Result<usize, Option<usize>> {
    for i in 0..buf.len() {
        match plausible(buf.get(i..).unwrap_or_default(), limit) {
            Plausible::Yes => return Ok(i),
            Plausible::Maybe if !finishing => return Err(Some(i)),
            _ => {}
        }
    }
    Err(None)
}

fn plausible(rest: &[u8], limit: u32) -> Plausible {
    use Plausible::*;
    let Some(&kind) = rest.first() else {
        return No;
    };
    if kind == b'A' {
        return if rest.starts_with(b"AMQP") {
            Yes
        } else if b"AMQP".starts_with(rest) {
            Maybe
        } else {
            No
        };
    }
    if ![FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT].contains(&kind) {
        return No;
    }
    let Some((channel, size)) = header_fields(rest) else {
        return Maybe;
    };
    let total = size as u64 + HEADER_SIZE as u64 + 1;
    if limit != 0 && total > limit as u64 {
        return No;
    }
    match kind {
        FRAME_HEARTBEAT if channel != 0 || size != 0 => return No,
        FRAME_METHOD => {
            if size < 4 {
                return No;
            }
            if let Some([a, b, c, d]) = rest.get(HEADER_SIZE..HEADER_SIZE + 4) {
                let (class_id, method_id) =
                    (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d]));
                if !ALL_METHODS
                    .iter()
                    .any(|m| m.class_id == class_id && m.method_id == method_id)
                {
                    return No;
                }
            }
        }
        // class id, weight, body size, property flags.
        FRAME_HEADER if size < 14 => return No,
        _ => {}
    }
    match usize::try_from(total - 1)
        .ok()
        .and_then(|end| rest.get(end))
    {
        Some(&FRAME_END) => Yes,
        Some(_) => No,
        None => Maybe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::BasicPublish;

    fn frames(stream: &mut FrameStream, data: &[u8], packet: u64) -> Vec<Located> {
        let mut out = Vec::new();
        stream.push(data, packet, None, &mut |l| out.push(l));
        out
    }

    fn publish_frame() -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        Frame::Method(
            1,
            BasicPublish {
                routing_key: "rpc_queue".into(),
                ..Default::default()
            }
            .into(),
        )
        .encode(&mut buf)
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_frame_split_across_packets_ends_in_the_second() {
        let f = publish_frame();
        let mut s = FrameStream::new(1 << 20);
        assert!(frames(&mut s, &f[..5], 1).is_empty());
        let out = frames(&mut s, &f[5..], 2);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].offset, out[0].packet), (0, 2));
        assert!(matches!(
            out[0].found,
            Found::Frame(Frame::Method(1, _), 18)
        ));
    }

    #[test]
    fn garbage_between_frames_is_reported_once_and_skipped() {
        let f = publish_frame();
        let mut data = f.clone();
        data.extend_from_slice(b"\x42garbage\xff");
        data.extend_from_slice(&f);
        let mut s = FrameStream::new(1 << 20);
        let out = frames(&mut s, &data, 1);
        let kinds: Vec<bool> = out
            .iter()
            .map(|l| matches!(l.found, Found::Frame(..)))
            .collect();
        assert_eq!(kinds, [true, false, true]);
        assert_eq!(out[2].offset, (f.len() + 9) as u64);
    }

    #[test]
    fn bad_content_with_sound_length_is_skipped_by_its_length() {
        let mut f = publish_frame();
        f[8] = 99; // class id 99: unknown method
        f.extend(publish_frame());
        let mut s = FrameStream::new(1 << 20);
        let out = frames(&mut s, &f, 1);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0].found, Found::Error { at: 7, .. }));
        assert!(matches!(out[1].found, Found::Frame(..)));
    }

    #[test]
    fn a_hole_resyncs_on_the_next_frame() {
        let f = publish_frame();
        let mut s = FrameStream::new(1 << 20);
        let mut out = frames(&mut s, &f[..10], 1);
        s.gap(5, &mut |l| out.push(l));
        out.extend(frames(&mut s, &f[15..], 2));
        out.extend(frames(&mut s, &f, 3));
        let last = out.last().unwrap();
        assert!(matches!(last.found, Found::Frame(..)));
        assert_eq!(last.offset, f.len() as u64);
    }

    #[test]
    fn truncated_tail_is_reported_at_finish() {
        let f = publish_frame();
        let mut s = FrameStream::new(1 << 20);
        let mut out = frames(&mut s, &f[..12], 4);
        s.finish(&mut |l| out.push(l));
        assert_eq!(out.len(), 1);
        let Found::Error { message, .. } = &out[0].found else {
            panic!()
        };
        assert!(message.contains("12 of 26"), "{message}");
    }
}
