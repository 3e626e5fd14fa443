//! Decode and encode errors: what went wrong, and where.
//!
//! Every decode error carries the byte offset *within the frame* (0 = the frame-type octet) at which
//! the problem was found, so a dissection tool can point at the byte and a connection can report it
//! to the peer. [`DecodeError::reply`] maps each error to the AMQP reply code a peer expects in
//! its `connection.close` (501 frame error, 502 syntax error, 505 unexpected frame, 540 not implemented).

use thiserror::Error;

use crate::constants::PROTOCOL_HEADER;
use crate::reply_code::ReplyCode;

/// AMQP reply code 501 as a number: [`ReplyCode::FrameError`].
pub const FRAME_ERROR: u16 = ReplyCode::FrameError.code();
/// AMQP reply code 502 as a number: [`ReplyCode::SyntaxError`].
pub const SYNTAX_ERROR: u16 = ReplyCode::SyntaxError.code();
/// AMQP reply code 505 as a number: [`ReplyCode::UnexpectedFrame`].
pub const UNEXPECTED_FRAME: u16 = ReplyCode::UnexpectedFrame.code();
/// AMQP reply code 540 as a number: [`ReplyCode::NotImplemented`].
pub const NOT_IMPLEMENTED: u16 = ReplyCode::NotImplemented.code();

/// Why a byte sequence is not a valid AMQP 0-9-1 frame.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The peer sent a protocol header other than `AMQP 0 0 9 1` (e.g. AMQP 1.0, or 0-8).
    #[error(
        "protocol version mismatch: peer sent header {found:02x?} ({}), expected AMQP 0-9-1 {:02x?}",
        describe_header(found),
        PROTOCOL_HEADER
    )]
    ProtocolMismatch {
        /// The eight bytes the peer sent.
        found: [u8; 8],
    },
    /// The frame-type octet (offset 0) is not 1, 2, 3 or 8.
    #[error("unknown frame type {found} (0x{found:02x}) at byte 0: expected 1 (method), 2 (header), 3 (body) or 8 (heartbeat)")]
    UnknownFrameType {
        /// The octet found.
        found: u8,
    },
    /// The frame's declared payload size exceeds the negotiated `frame_max`.
    ///
    /// Checked from the 7-byte header alone, before the payload is buffered.
    #[error("frame of {frame_size} bytes (payload {payload_size} at bytes 3..7) exceeds frame_max {frame_max}")]
    FrameTooLarge {
        /// Declared payload size.
        payload_size: u32,
        /// Whole frame size (header + payload + frame-end).
        frame_size: u64,
        /// The limit in force.
        frame_max: u32,
    },
    /// The octet after the payload is not the frame-end octet `0xCE`.
    #[error("bad frame-end octet at byte {offset}: expected 0xce, found 0x{found:02x}")]
    BadFrameEnd {
        /// Offset of the octet within the frame.
        offset: usize,
        /// The octet found.
        found: u8,
    },
    /// A field runs past the end of the frame payload (or of its enclosing table).
    #[error("truncated {expected} at byte {offset}: needs {needed} bytes, only {available} left")]
    Truncated {
        /// Offset within the frame where the field starts.
        offset: usize,
        /// What was being read.
        expected: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that remain.
        available: usize,
    },
    /// The payload has bytes left over after its last field.
    #[error("{count} unexpected trailing bytes at byte {offset} after {after}")]
    TrailingBytes {
        /// Offset of the first extra byte.
        offset: usize,
        /// How many bytes are left over.
        count: usize,
        /// What the payload held.
        after: &'static str,
    },
    /// A method frame names a class or method RabbitMQ's 0-9-1 does not define.
    #[error("unknown method: class {class_id}, method {method_id} (at bytes 7..11)")]
    UnknownMethod {
        /// Class id found.
        class_id: u16,
        /// Method id found.
        method_id: u16,
    },
    /// A content header for a class without content properties (only basic, 60, has them).
    #[error(
        "content header for class {class_id} at byte 7: only class 60 (basic) carries content"
    )]
    UnknownContentClass {
        /// Class id found.
        class_id: u16,
    },
    /// A property flag bit that no basic property uses is set.
    #[error("property flags 0x{flags:04x} at byte {offset}: bit(s) 0x{unknown:04x} name no basic property")]
    UnknownPropertyFlags {
        /// Offset of the flags word.
        offset: usize,
        /// The whole flags word.
        flags: u16,
        /// The offending bits.
        unknown: u16,
    },
    /// A field value's type letter is not one RabbitMQ uses.
    #[error("unknown field type {:?} (0x{letter:02x}) at byte {offset}: expected one of t b B s u I i l f d D S x A T F V", *letter as char)]
    UnknownFieldType {
        /// The letter found.
        letter: u8,
        /// Its offset.
        offset: usize,
    },
    /// A frame out of the order a content-carrying method requires (spec 4.2.6: method, header,
    /// then body frames adding up to the header's body size, with nothing else on that channel).
    #[error("unexpected {found} on channel {channel}: expected {expected}")]
    UnexpectedFrame {
        /// The channel.
        channel: u16,
        /// What the channel was waiting for.
        expected: &'static str,
        /// What arrived.
        found: &'static str,
    },
    /// The stream ended inside a frame ([`FrameDecoder::decode_eof`](crate::FrameDecoder::decode_eof)).
    #[error("stream ended inside a {frame}{}: {received} of {} bytes received", on_channel(*channel), whole(*size))]
    PartialFrame {
        /// Which frame: `"method frame"`, `"content header frame"`, `"content body frame"`,
        /// `"heartbeat frame"` or `"protocol header"`.
        frame: &'static str,
        /// Its channel, when its header arrived.
        channel: Option<u16>,
        /// Bytes of it that arrived.
        received: usize,
        /// Its whole size (header, payload and frame-end), when its header arrived.
        size: Option<u64>,
    },
    /// A heartbeat frame that is not on channel 0 or carries a payload. The message names only
    /// the rule that was broken.
    #[error("{}", bad_heartbeat(*.channel, *.size))]
    BadHeartbeat {
        /// Channel found.
        channel: u16,
        /// Payload size found.
        size: u32,
    },
}

fn bad_heartbeat(channel: u16, size: u32) -> String {
    match (channel, size) {
        (0, size) => {
            format!("heartbeat frame with a {size}-byte payload: heartbeats must be empty")
        }
        (channel, 0) => {
            format!("heartbeat frame on channel {channel}: heartbeats must be on channel 0")
        }
        (channel, size) => format!(
            "heartbeat frame on channel {channel} with a {size}-byte payload: heartbeats must be \
             on channel 0 and empty"
        ),
    }
}

fn on_channel(channel: Option<u16>) -> String {
    channel.map_or_else(String::new, |c| format!(" on channel {c}"))
}

fn whole(size: Option<u64>) -> String {
    size.map_or_else(|| "at least 7".to_owned(), |s| s.to_string())
}

fn describe_header(found: &[u8; 8]) -> &'static str {
    match found {
        [b'A', b'M', b'Q', b'P', 0, 1, 0, 0] => "AMQP 1.0",
        [b'A', b'M', b'Q', b'P', 3, 1, 0, 0] => "AMQP 1.0 SASL",
        [b'A', b'M', b'Q', b'P', 1, 1, 0, 9] => "AMQP 0-9",
        [b'A', b'M', b'Q', b'P', 1, 1, 8, 0] | [b'A', b'M', b'Q', b'P', 1, 1, 9, 1] => "AMQP 0-8",
        [b'A', b'M', b'Q', b'P', ..] => "another AMQP version",
        _ => "not an AMQP header",
    }
}

impl DecodeError {
    /// The AMQP reply code a peer should be sent in `connection.close` for this error.
    pub fn reply(&self) -> ReplyCode {
        match self {
            DecodeError::ProtocolMismatch { .. }
            | DecodeError::UnknownFrameType { .. }
            | DecodeError::FrameTooLarge { .. }
            | DecodeError::BadFrameEnd { .. }
            | DecodeError::PartialFrame { .. }
            | DecodeError::BadHeartbeat { .. } => ReplyCode::FrameError,
            DecodeError::UnknownMethod { .. } | DecodeError::UnknownContentClass { .. } => {
                ReplyCode::NotImplemented
            }
            DecodeError::UnexpectedFrame { .. } => ReplyCode::UnexpectedFrame,
            DecodeError::Truncated { .. }
            | DecodeError::TrailingBytes { .. }
            | DecodeError::UnknownPropertyFlags { .. }
            | DecodeError::UnknownFieldType { .. } => ReplyCode::SyntaxError,
        }
    }

    /// [`reply`](Self::reply) as the number on the wire.
    pub fn reply_code(&self) -> u16 {
        self.reply().code()
    }

    /// The byte offset within the frame where the problem was found.
    pub fn offset(&self) -> usize {
        match self {
            DecodeError::ProtocolMismatch { .. }
            | DecodeError::UnknownFrameType { .. }
            | DecodeError::BadHeartbeat { .. }
            | DecodeError::UnexpectedFrame { .. } => 0,
            DecodeError::FrameTooLarge { .. } => 3,
            DecodeError::UnknownMethod { .. } | DecodeError::UnknownContentClass { .. } => 7,
            DecodeError::PartialFrame { received, .. } => *received,
            DecodeError::BadFrameEnd { offset, .. }
            | DecodeError::Truncated { offset, .. }
            | DecodeError::TrailingBytes { offset, .. }
            | DecodeError::UnknownPropertyFlags { offset, .. }
            | DecodeError::UnknownFieldType { offset, .. } => *offset,
        }
    }
}

/// Why a value cannot be put on the wire.
///
/// The encoder never truncates: a value that does not fit its length field is an error.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A short string (`shortstr`) is limited to 255 bytes by its one-octet length.
    #[error("short string {what} is {len} bytes: a shortstr holds at most 255")]
    ShortStringTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A long string, byte array, table or array exceeds its 32-bit length field.
    #[error("{what} is {len} bytes: its 32-bit length field holds at most 4294967295")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// The encoded frame would exceed the negotiated `frame_max`.
    #[error("frame of {frame_size} bytes exceeds frame_max {frame_max}")]
    FrameTooLarge {
        /// The encoded frame size.
        frame_size: usize,
        /// The limit in force.
        frame_max: u32,
    },
    /// `frame_max` is below the spec's minimum (4096) and cannot carry a body frame.
    #[error("frame_max {frame_max} is below the AMQP minimum of 4096 bytes")]
    FrameMaxTooSmall {
        /// The value given.
        frame_max: u32,
    },
}

#[cfg(test)]
mod heartbeat_message_tests {
    use crate::{Frame, FrameDecoder};
    use bytes::BytesMut;

    fn decode_error(bytes: &[u8]) -> String {
        let mut buf = BytesMut::from(bytes);
        FrameDecoder::new(0)
            .decode(&mut buf)
            .unwrap_err()
            .to_string()
    }

    /// The message names the rule that was broken, not one that was kept.
    #[test]
    fn a_bad_heartbeat_says_what_is_wrong_with_it() {
        let with_payload = decode_error(&[8, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0xce]);
        assert_eq!(
            with_payload,
            "heartbeat frame with a 4-byte payload: heartbeats must be empty"
        );
        let on_channel = decode_error(&[8, 0, 3, 0, 0, 0, 0, 0xce]);
        assert_eq!(
            on_channel,
            "heartbeat frame on channel 3: heartbeats must be on channel 0"
        );
        let mut ok = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xce][..]);
        assert_eq!(
            FrameDecoder::new(0).decode(&mut ok).unwrap(),
            Some(Frame::Heartbeat)
        );
    }
}
