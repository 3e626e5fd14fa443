//! `amqp-codec`: a hand-written, sans-IO codec for AMQP 0-9-1 as RabbitMQ speaks it.
//!
//! It turns bytes into [`Frame`]s and back, and nothing else: no sockets, no tasks, no timers.
//! Every length from the wire is checked before it is trusted, nothing on peer data can panic,
//! and body payloads are zero-copy slices of the input.
//!
//! ```
//! use amqp_codec::{BasicProperties, BasicPublish, Frame, FrameDecoder, encode_message};
//! use bytes::BytesMut;
//!
//! // Tutorial six's request: fib(30) to rpc_queue, answer to our callback queue.
//! let publish = BasicPublish { routing_key: "rpc_queue".into(), ..Default::default() };
//! let props = BasicProperties::default()
//!     .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
//!     .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw");
//! let mut wire = BytesMut::new();
//! encode_message(&mut wire, 1, &publish.into(), &props, b"30", 131_072).unwrap();
//!
//! let mut decoder = FrameDecoder::new(131_072);
//! let mut frames = Vec::new();
//! while let Some(frame) = decoder.decode(&mut wire).unwrap() {
//!     frames.push(frame);
//! }
//! assert_eq!(frames.len(), 3); // method, content header (flags 0x0600), body
//! let Frame::Header(1, header) = &frames[1] else { panic!() };
//! assert_eq!(header.properties.flags(), 0x0600);
//! ```
//!
//! # Verbs
//! Every type that goes on the wire has the same two: `decode` (bytes in, value or [`DecodeError`]
//! out) and `encode` (append to a `BytesMut`, or [`EncodeError`] with nothing appended):
//! [`Frame::decode`]/[`Frame::encode`], [`Method::decode`]/[`Method::encode`] (a method frame's
//! payload), [`ContentHeader::decode`]/[`ContentHeader::encode`] (a header frame's payload),
//! [`FieldTable::decode`]/[`FieldTable::encode`] (a length-prefixed table). [`FrameDecoder::decode`]
//! is the streaming form (tokio-util's `Decoder` contract), and [`encode_message`] the whole-message
//! one. Inside the crate, `decode_from`/`encode_to` are the same verbs over a bounds-checked cursor.
//!
//! # Layers
//! Each module imports only the ones before it in this list, so the crate has no import circle:
//! [`constants`] and [`reply_code`] (leaves: they import nothing from the crate), [`error`],
//! [`wire`] (the primitives and the bounds-checked cursor), [`table`], [`method`], [`properties`],
//! [`frame`], [`content`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod constants;
pub mod content;
pub mod error;
pub mod escape;
pub mod frame;
pub mod method;
pub mod properties;
pub mod reply_code;
pub mod table;
pub mod wire;

pub use constants::{
    DEFAULT_FRAME_MAX, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_SIZE, FRAME_HEARTBEAT,
    FRAME_METHOD, FRAME_MIN_SIZE, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
pub use content::{
    encode_message, encode_publish, encode_publish_raw, message_frames, Assembled, Message,
    MessageAssembler,
};
pub use error::{DecodeError, EncodeError};
pub use escape::Escaped;
pub use frame::{check, Frame, FrameDecoder, ProtocolHeader, Status};
pub use method::*;
pub use properties::{BasicProperties, ContentHeader};
pub use reply_code::{ReplyCode, Severity};
pub use table::{Decimal, FieldArray, FieldTable, FieldValue};
pub use wire::{LongString, ShortString};
