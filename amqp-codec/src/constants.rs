//! The wire constants of AMQP 0-9-1 as RabbitMQ speaks it: frame types, frame-end, sizes, the
//! protocol header.
//!
//! A leaf module: it imports nothing from the crate, so every other module (frames, methods,
//! properties, errors) can name these without an import circle. The values are the spec's
//! `constants` section (`../shared/spec/amqp-rabbitmq-0.9.1.json`) except where the RabbitMQ errata
//! differ, as noted. Reply codes are the [`ReplyCode`](crate::ReplyCode) enum.

/// The protocol header a 0-9-1 client sends first: `AMQP`, 0, then version 0-9-1.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";
/// Frame type of a method frame (spec constant FRAME-METHOD).
pub const FRAME_METHOD: u8 = 1;
/// Frame type of a content header frame (spec constant FRAME-HEADER).
pub const FRAME_HEADER: u8 = 2;
/// Frame type of a content body frame (spec constant FRAME-BODY).
pub const FRAME_BODY: u8 = 3;
/// Frame type of a heartbeat frame (RabbitMQ and the 0-9-1 errata use 8, not the spec XML's 4).
pub const FRAME_HEARTBEAT: u8 = 8;
/// The octet that ends every frame (spec constant FRAME-END, 206).
pub const FRAME_END: u8 = 0xCE;
/// Bytes before the payload: type (1), channel (2), size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
/// Bytes a frame adds around its payload: the 7-byte header and the frame-end octet.
pub const FRAME_OVERHEAD: usize = FRAME_HEADER_SIZE + 1;
/// The smallest `frame_max` a peer may negotiate (spec constant FRAME-MIN-SIZE).
pub const FRAME_MIN_SIZE: u32 = 4096;
/// RabbitMQ's default `frame_max` (128 KiB), what a decoder allows before `connection.tune`.
pub const DEFAULT_FRAME_MAX: u32 = 131_072;
/// Class id of `basic`, the only class that carries content.
pub const BASIC_CLASS_ID: u16 = 60;
