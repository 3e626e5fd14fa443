//! Messages ⇄ frames: a method with content is sent as a method frame, a content header frame
//! and zero or more body frames (spec 4.2.6), each body frame at most `frame_max - 8` payload bytes.
//!
//! [`encode_message`] writes all of it into one buffer (one `write` for the socket);
//! [`message_frames`] gives the frames with zero-copy body slices; [`MessageAssembler`] rebuilds a
//! message from the frames of one channel, refusing frames out of order.

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::{
    BASIC_CLASS_ID, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_METHOD, FRAME_MIN_SIZE,
    FRAME_OVERHEAD,
};
use crate::error::{DecodeError, EncodeError};
use crate::frame::{encode_body, encode_with, Frame};
use crate::method::{BasicPublish, Method};
use crate::properties::{encode_header, BasicProperties, ContentHeader};
use crate::wire::put_short_string;

/// A whole message: the method that carries it, its properties and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `basic.publish`, `basic.deliver`, `basic.return` or `basic.get-ok`.
    pub method: Method,
    /// The content header (properties, body size).
    pub header: ContentHeader,
    /// The body; zero-copy when it arrived in a single body frame.
    pub body: Bytes,
}

/// Largest body payload per frame for a negotiated `frame_max` (0 = no limit).
pub fn max_body_payload(frame_max: u32) -> Result<usize, EncodeError> {
    if frame_max == 0 {
        return Ok(u32::MAX as usize - FRAME_OVERHEAD);
    }
    if frame_max < FRAME_MIN_SIZE {
        return Err(EncodeError::FrameMaxTooSmall { frame_max });
    }
    Ok(frame_max as usize - FRAME_OVERHEAD)
}

/// Append a whole message on `channel`: the method frame, the header frame, then the body in
/// frames of at most `frame_max - 8` payload bytes. On error nothing is appended.
pub fn encode_message(
    dst: &mut BytesMut,
    channel: u16,
    method: &Method,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) -> Result<(), EncodeError> {
    encode_content(
        dst,
        channel,
        Props::Built(properties),
        body,
        frame_max,
        |b| method.encode(b),
    )
}

/// [`encode_message`] for `basic.publish` from borrowed names: the publish hot path, with no
/// `ShortString` to build (and allocate) per message. Names are octets (a `reply_to` used as a
/// routing key need not be UTF-8), so anything that is bytes will do.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish(
    dst: &mut BytesMut,
    channel: u16,
    exchange: impl AsRef<[u8]>,
    routing_key: impl AsRef<[u8]>,
    mandatory: bool,
    immediate: bool,
    properties: &BasicProperties,
    body: &[u8],
    frame_max: u32,
) -> Result<(), EncodeError> {
    encode_content(
        dst,
        channel,
        Props::Built(properties),
        body,
        frame_max,
        |b| {
            b.put_u16(BasicPublish::CLASS_ID);
            b.put_u16(BasicPublish::METHOD_ID);
            b.put_u16(0); // ticket: reserved
            put_short_string(b, exchange.as_ref(), "exchange")?;
            put_short_string(b, routing_key.as_ref(), "routing-key")?;
            // mandatory and immediate share one octet, first bit lowest (spec 4.2.5.2).
            b.put_u8(u8::from(mandatory) | (u8::from(immediate) << 1));
            Ok(())
        },
    )
}

/// [`encode_publish`] with the properties already encoded: `properties` is the flags word and
/// the present properties in wire order, exactly as a content header carries them after the body
/// size (what [`BasicProperties::encoded`] gives). For senders that write the same shape of
/// properties on every message (an RPC client's requests: correlation id, deadline and trace
/// written into a buffer kept between calls) instead of building a [`BasicProperties`] each
/// time. The bytes are the caller's word: they are copied, not checked.
#[allow(clippy::too_many_arguments)]
pub fn encode_publish_raw(
    dst: &mut BytesMut,
    channel: u16,
    exchange: impl AsRef<[u8]>,
    routing_key: impl AsRef<[u8]>,
    mandatory: bool,
    immediate: bool,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) -> Result<(), EncodeError> {
    let (exchange, routing_key) = (exchange.as_ref(), routing_key.as_ref());
    // The usual message (names that fit short strings, a body in one frame, frames within
    // frame_max) is written in one pass with one reservation; anything else by the general path,
    // which reports what does not fit.
    let chunk = max_body_payload(frame_max)?;
    if let (Ok(exchange_len), Ok(routing_key_len), Ok(body_size)) = (
        u8::try_from(exchange.len()),
        u8::try_from(routing_key.len()),
        u32::try_from(body.len()),
    ) {
        let method_size = 4 + 2 + 1 + exchange.len() + 1 + routing_key.len() + 1;
        let header_size = 2 + 2 + 8 + properties.len();
        let fits =
            |payload: usize| frame_max == 0 || payload + FRAME_OVERHEAD <= frame_max as usize;
        if !body.is_empty() && body.len() <= chunk && fits(method_size) && fits(header_size) {
            if let Ok(header_size32) = u32::try_from(header_size) {
                let ch = channel.to_be_bytes();
                dst.reserve(3 * FRAME_OVERHEAD + method_size + header_size + body.len());
                dst.put_slice(&[FRAME_METHOD, ch[0], ch[1]]);
                dst.put_u32(method_size as u32);
                dst.put_u16(BasicPublish::CLASS_ID);
                dst.put_u16(BasicPublish::METHOD_ID);
                dst.put_u16(0); // ticket: reserved
                dst.put_u8(exchange_len);
                dst.put_slice(exchange);
                dst.put_u8(routing_key_len);
                dst.put_slice(routing_key);
                // mandatory and immediate share one octet, first bit lowest (spec 4.2.5.2).
                dst.put_slice(&[u8::from(mandatory) | (u8::from(immediate) << 1), FRAME_END]);
                dst.put_slice(&[FRAME_HEADER, ch[0], ch[1]]);
                dst.put_u32(header_size32);
                dst.put_u16(BASIC_CLASS_ID);
                dst.put_u16(0); // weight
                dst.put_u64(body.len() as u64);
                dst.put_slice(properties);
                dst.put_slice(&[FRAME_END, FRAME_BODY, ch[0], ch[1]]);
                dst.put_u32(body_size);
                dst.put_slice(body);
                dst.put_u8(FRAME_END);
                return Ok(());
            }
        }
    }
    encode_content(
        dst,
        channel,
        Props::Encoded(properties),
        body,
        frame_max,
        |b| {
            b.put_u16(BasicPublish::CLASS_ID);
            b.put_u16(BasicPublish::METHOD_ID);
            b.put_u16(0); // ticket: reserved
            put_short_string(b, exchange, "exchange")?;
            put_short_string(b, routing_key, "routing-key")?;
            b.put_u8(u8::from(mandatory) | (u8::from(immediate) << 1));
            Ok(())
        },
    )
}

/// A content header's properties: built, or already encoded.
#[derive(Clone, Copy)]
enum Props<'a> {
    Built(&'a BasicProperties),
    Encoded(&'a [u8]),
}

/// Method frame from `method_payload`, then the header and body frames.
fn encode_content(
    dst: &mut BytesMut,
    channel: u16,
    properties: Props<'_>,
    body: &[u8],
    frame_max: u32,
    method_payload: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let chunk = max_body_payload(frame_max)?;
    let start = dst.len();
    let result = (|| {
        let props_len = match properties {
            Props::Encoded(raw) => raw.len(),
            Props::Built(_) => 0,
        };
        dst.reserve(body.len() + 96 + props_len + FRAME_OVERHEAD * (body.len() / chunk));
        encode_with(dst, FRAME_METHOD, channel, method_payload)?;
        let after_method = dst.len();
        check_size(after_method - start, frame_max)?;
        encode_with(dst, FRAME_HEADER, channel, |b| match properties {
            Props::Built(p) => encode_header(b, BASIC_CLASS_ID, 0, body.len() as u64, p),
            Props::Encoded(raw) => {
                b.put_u16(BASIC_CLASS_ID);
                b.put_u16(0);
                b.put_u64(body.len() as u64);
                b.put_slice(raw);
                Ok(())
            }
        })?;
        check_size(dst.len() - after_method, frame_max)?;
        for piece in body.chunks(chunk) {
            encode_body(dst, channel, piece)?;
        }
        Ok(())
    })();
    if result.is_err() {
        dst.truncate(start);
    }
    result
}

fn check_size(frame_size: usize, frame_max: u32) -> Result<(), EncodeError> {
    if frame_max != 0 && frame_size > frame_max as usize {
        return Err(EncodeError::FrameTooLarge {
            frame_size,
            frame_max,
        });
    }
    Ok(())
}

/// The frames of a message, with the body split into zero-copy slices of `body`.
pub fn message_frames(
    channel: u16,
    method: Method,
    properties: BasicProperties,
    body: Bytes,
    frame_max: u32,
) -> Result<Vec<Frame>, EncodeError> {
    let chunk = max_body_payload(frame_max)?;
    let mut frames = Vec::with_capacity(2 + body.len().div_ceil(chunk.max(1)));
    frames.push(Frame::Method(channel, method));
    frames.push(Frame::Header(
        channel,
        ContentHeader::new(body.len() as u64, properties),
    ));
    let mut at = 0;
    while at < body.len() {
        let end = (at + chunk).min(body.len());
        frames.push(Frame::Body(channel, body.slice(at..end)));
        at = end;
    }
    Ok(frames)
}

/// Rebuilds messages from the frames of one channel.
///
/// Feed it every method, header and body frame of the channel. Content methods start a message;
/// the header and the body frames complete it. Anything out of order is a 505 UNEXPECTED_FRAME.
#[derive(Debug, Default)]
pub struct MessageAssembler {
    channel: u16,
    stage: Stage,
    // The message in progress, kept in fields of their own rather than in the stage's variants:
    // a completed message is then moved out once, straight into what is returned, where taking
    // a ~550-byte state enum and rebuilding the message from it cost several copies per message
    // (callgrind).
    /// The content method (`Some` from its frame until the message completes).
    method: Option<Method>,
    /// The content header (meaningful in [`Stage::Body`]).
    header: ContentHeader,
    /// The first body frame, kept as is (zero-copy) while it is the only one.
    first: Option<Bytes>,
    /// The body, once it comes in more than one frame.
    rest: BytesMut,
    received: u64,
}

/// Where a message in progress is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    Idle,
    Header,
    Body,
}

/// Largest body buffer reserved up front: a header may declare any size, so memory follows the
/// bytes actually received rather than the declaration.
const MAX_RESERVE: u64 = 1 << 20;

impl MessageAssembler {
    /// An assembler for `channel` (used in error messages).
    pub fn new(channel: u16) -> Self {
        MessageAssembler {
            channel,
            ..Default::default()
        }
    }

    /// True when no message is in progress.
    pub fn is_idle(&self) -> bool {
        self.stage == Stage::Idle
    }

    fn unexpected(&self, found: &'static str) -> DecodeError {
        let expected = match self.stage {
            Stage::Idle => "a method frame",
            Stage::Header => "a content header frame",
            Stage::Body => "a content body frame",
        };
        DecodeError::UnexpectedFrame {
            channel: self.channel,
            expected,
            found,
        }
    }

    /// A method frame. Returns it back when it carries no content; a content method starts a
    /// message and returns `None`.
    pub fn method(&mut self, method: Method) -> Result<Option<Method>, DecodeError> {
        if !self.is_idle() {
            return Err(self.unexpected("method frame"));
        }
        if method.has_content() {
            self.method = Some(method);
            self.stage = Stage::Header;
            Ok(None)
        } else {
            Ok(Some(method))
        }
    }

    /// A content header frame; completes an empty message.
    pub fn header(&mut self, header: ContentHeader) -> Result<Option<Message>, DecodeError> {
        Ok(self
            .take_header(header)?
            .then(|| self.complete(Bytes::new())))
    }

    /// Keeps the header; `true` when it completes an empty message (then [`Self::complete`]).
    #[inline(always)]
    fn take_header(&mut self, header: ContentHeader) -> Result<bool, DecodeError> {
        if self.stage != Stage::Header {
            return Err(self.unexpected("content header frame"));
        }
        let empty = header.body_size == 0;
        self.header = header;
        self.first = None;
        self.received = 0;
        self.stage = Stage::Body;
        Ok(empty)
    }

    /// A content body frame; completes the message when the body size is reached.
    pub fn body(&mut self, payload: Bytes) -> Result<Option<Message>, DecodeError> {
        Ok(self.take_body(payload)?.map(|body| self.complete(body)))
    }

    /// Adds a body frame; the whole body when it completes the message (then [`Self::complete`]).
    #[inline(always)]
    fn take_body(&mut self, payload: Bytes) -> Result<Option<Bytes>, DecodeError> {
        if self.stage != Stage::Body {
            return Err(self.unexpected("content body frame"));
        }
        let total = self.received + payload.len() as u64;
        if total > self.header.body_size {
            return Err(DecodeError::UnexpectedFrame {
                channel: self.channel,
                expected: "body frames adding up to the header's body size",
                found: "more body bytes than the header declared",
            });
        }
        self.received = total;
        if self.first.is_none() && self.rest.is_empty() {
            self.first = Some(payload);
        } else {
            if let Some(f) = self.first.take() {
                self.rest
                    .reserve(self.header.body_size.min(MAX_RESERVE) as usize);
                self.rest.extend_from_slice(&f);
            }
            self.rest.extend_from_slice(&payload);
        }
        if total < self.header.body_size {
            return Ok(None);
        }
        Ok(Some(match self.first.take() {
            Some(first) => first,
            None => self.rest.split().freeze(),
        }))
    }

    /// The message in progress, with `body`; the assembler is idle again.
    #[inline(always)]
    fn complete(&mut self, body: Bytes) -> Message {
        self.stage = Stage::Idle;
        Message {
            // Set when the stage left Idle, so always there (the fallback is never built).
            method: self
                .method
                .take()
                .unwrap_or_else(|| Method::ChannelFlowOk(Default::default())),
            header: std::mem::take(&mut self.header),
            body,
        }
    }

    /// Feed any frame of this channel: `Ok(Some(..))` when it completes a message (or is a method
    /// without content, returned as a message-less [`Assembled::Method`]).
    #[inline]
    pub fn push(&mut self, frame: Frame) -> Result<Option<Assembled>, DecodeError> {
        Ok(match frame {
            Frame::Method(_, m) => self.method(m)?.map(Assembled::Method),
            Frame::Header(_, h) => self
                .take_header(h)?
                .then(|| Assembled::Message(self.complete(Bytes::new()))),
            Frame::Body(_, b) => self
                .take_body(b)?
                .map(|body| Assembled::Message(self.complete(body))),
            Frame::Heartbeat | Frame::ProtocolHeader(_) => {
                return Err(self.unexpected("connection-level frame"))
            }
        })
    }
}

/// What [`MessageAssembler::push`] completed.
// Same trade as `Frame`: moved once to its consumer, an allocation per message would cost more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    /// A method without content.
    Method(Method),
    /// A whole message.
    Message(Message),
}

#[cfg(test)]
mod raw_publish_tests {
    use super::*;
    use crate::table::FieldTable;

    #[test]
    fn publish_from_encoded_properties_is_byte_for_byte_the_built_one() {
        let properties = BasicProperties::default()
            .with_headers(FieldTable::new().with("x-deadline", 1_700_000_000_123i64))
            .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
            .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw")
            .with_expiration("30000");
        let raw = properties.encoded().unwrap();
        let exact = [7u8; 4096 - FRAME_OVERHEAD];
        for (body, frame_max) in [
            (&b"30"[..], 131_072),
            (&[7u8; 5000][..], 4096),
            (&exact[..], 4096),
            (&exact[..4000], 4096),
            (&[][..], 0),
            (&b"x"[..], 0),
        ] {
            let mut built = BytesMut::new();
            encode_publish(
                &mut built,
                3,
                "",
                "rpc_queue",
                true,
                false,
                &properties,
                body,
                frame_max,
            )
            .unwrap();
            let mut from_raw = BytesMut::new();
            encode_publish_raw(
                &mut from_raw,
                3,
                "",
                "rpc_queue",
                true,
                false,
                &raw,
                body,
                frame_max,
            )
            .unwrap();
            assert_eq!(built, from_raw);
        }
        // Names at the short-string limit, and past it (an error, nothing appended, as built).
        let name = [b'q'; 255];
        for name in [&name[..], &[b'q'; 256][..]] {
            let mut built = BytesMut::new();
            let b = encode_publish(&mut built, 1, name, name, false, true, &properties, b"1", 0);
            let mut from_raw = BytesMut::new();
            let r = encode_publish_raw(&mut from_raw, 1, name, name, false, true, &raw, b"1", 0);
            assert_eq!(b.is_ok(), r.is_ok());
            assert_eq!(built, from_raw);
        }
        // Too large for the frame: nothing appended, as for built properties.
        let mut out = BytesMut::from(&b"kept"[..]);
        let big = vec![0u8; 5000];
        assert!(encode_publish_raw(&mut out, 1, "", "q", false, false, &big, b"", 4096).is_err());
        assert_eq!(&out[..], b"kept");
    }
}
