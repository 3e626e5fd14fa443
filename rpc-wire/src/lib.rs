//! `rpc-wire`: what goes on the wire between an RPC caller and an RPC worker — tutorial six's
//! conventions and the ones this project adds to them — in one small place that `rpc-client` and
//! `rpc-server` both use (neither depends on the other).
//!
//! Tutorial six: a request is published to the default exchange with routing key `rpc_queue`,
//! `reply_to` = the caller's callback queue and a fresh `correlation_id`; the body is `str(n)`.
//! The worker publishes the answer to the default exchange with routing key = the request's
//! `reply_to` and the same `correlation_id`; the body is `str(fib(n))`.
//!
//! # Error replies
//!
//! The tutorial leaves open whether a server's failure should reach the client. Here it does: an
//! error reply is an ordinary reply (same `correlation_id`, to `reply_to`) that carries the
//! application header [`ERROR_HEADER`] (`x-error`), a long string holding a short machine-readable
//! code ([`ErrorCode`]: `bad-request`, `too-large`, `handler-error`, `internal-error`), and a body
//! holding a human-readable UTF-8 message. A reply without `x-error` is a success. Our client turns
//! an error reply into `RpcError::Server`; the tutorial's pika client,
//! which ignores headers, would fail in `int(body)` with the message in its traceback — never hang.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod deadline;
pub mod fibonacci;
pub mod json;
pub mod trace;

use std::fmt;

pub use deadline::{deadline_of, DEADLINE_HEADER};
pub use json::CONTENT_TYPE_JSON;
pub use trace::{traceparent_of, TraceParent, TRACEPARENT_HEADER};

use amqp_codec::{BasicProperties, FieldTable, FieldValue, ShortString};

/// The queue tutorial six's server consumes and its client publishes to.
pub const RPC_QUEUE: &str = "rpc_queue";

/// RabbitMQ's direct reply-to pseudo-queue: consume it (no-ack) and name it in `reply_to`, and
/// replies come straight back on the consuming channel without a declared callback queue.
pub const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Application header that marks a reply as an error; its value is an [`ErrorCode`] string.
pub const ERROR_HEADER: &str = "x-error";

/// The code in an error reply's [`ERROR_HEADER`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `bad-request`: the request is malformed (empty, not UTF-8, not a number, negative, no
    /// `correlation_id`). Retrying the same request fails the same way.
    BadRequest,
    /// `too-large`: the request body, or the number in it, is over the server's bound.
    TooLarge,
    /// `handler-error`: the handler ran and returned an error.
    HandlerError,
    /// `internal-error`: the handler panicked, or the server failed otherwise.
    Internal,
    /// Any other code a server sent.
    Other(String),
}

impl ErrorCode {
    /// The code as it appears in the header.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::HandlerError => "handler-error",
            ErrorCode::Internal => "internal-error",
            ErrorCode::Other(s) => s,
        }
    }

    /// The code for a header value.
    pub fn parse(s: &str) -> Self {
        match s {
            "bad-request" => ErrorCode::BadRequest,
            "too-large" => ErrorCode::TooLarge,
            "handler-error" => ErrorCode::HandlerError,
            "internal-error" => ErrorCode::Internal,
            other => ErrorCode::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error code of a reply, if its properties mark it as an error reply.
///
/// Any string-like header value is accepted (RabbitMQ clients send `S` long strings; some send
/// byte arrays); a present header of another type is still an error, with the code
/// [`ErrorCode::Other`] naming the type.
pub fn error_code(properties: &BasicProperties) -> Option<ErrorCode> {
    // `lookup` reads the one entry in place: replies carry other headers (`traceparent`), and
    // this runs on every reply.
    let value = properties.headers.as_ref()?.lookup(ERROR_HEADER)?;
    Some(match value {
        FieldValue::LongString(s) => ErrorCode::parse(&s.to_string_lossy()),
        FieldValue::ByteArray(b) => ErrorCode::parse(&String::from_utf8_lossy(&b)),
        other => ErrorCode::Other(format!("<{}>", other.type_name())),
    })
}

/// A uuid (as its 128-bit big-endian value) in the hyphenated lowercase text of RFC 9562,
/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`: what the clients write as a correlation id. Written
/// eight digits at a time (this runs for every call).
pub fn uuid_text(id: u128) -> [u8; 36] {
    let hi = trace::hex_digits((id >> 64) as u64);
    let lo = trace::hex_digits(id as u64);
    let mut out = [b'-'; 36];
    out[..8].copy_from_slice(&hi[..8]);
    out[9..13].copy_from_slice(&hi[8..12]);
    out[14..18].copy_from_slice(&hi[12..]);
    out[19..23].copy_from_slice(&lo[..4]);
    out[24..].copy_from_slice(&lo[4..]);
    out
}

/// The headers table of a request: `x-deadline` (`l`) and `traceparent` (`S`), encoded in one
/// go. This is on every call's path, where building a `FieldTable` entry by entry cost four
/// allocations; here it is one buffer, validated once by the codec (the table then re-encodes
/// those very bytes).
pub fn request_headers(deadline_ms: i64, trace: &TraceParent) -> FieldTable {
    table_from(&request_headers_encoded(deadline_ms, trace))
}

/// [`request_headers`] as the bytes a content header carries: the table's length, then
/// `x-deadline` (`l`) and `traceparent` (`S`). For a request's properties encoded in place.
pub fn request_headers_encoded(deadline_ms: i64, trace: &TraceParent) -> [u8; 96] {
    let mut raw = [0u8; 4 + 11 + 9 + 12 + 5 + 55];
    let body_len = raw.len() - 4;
    raw[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    let mut at = 4;
    let mut put = |bytes: &[u8]| {
        raw[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[DEADLINE_HEADER.len() as u8]);
    put(DEADLINE_HEADER.as_bytes());
    put(b"l");
    put(&deadline_ms.to_be_bytes());
    put(&[TRACEPARENT_HEADER.len() as u8]);
    put(TRACEPARENT_HEADER.as_bytes());
    put(b"S");
    put(&55u32.to_be_bytes());
    put(&trace.to_bytes());
    raw
}

/// The headers table of a reply that carries the trace on: `traceparent` alone.
pub fn trace_headers(trace: &TraceParent) -> FieldTable {
    table_from(&trace_headers_encoded(trace))
}

/// [`trace_headers`] as the bytes a content header carries: the table's length, then
/// `traceparent` (`S`). For a reply's properties encoded in place.
pub fn trace_headers_encoded(trace: &TraceParent) -> [u8; 76] {
    let mut raw = [0u8; 4 + 12 + 5 + 55];
    let body_len = raw.len() - 4;
    raw[..4].copy_from_slice(&(body_len as u32).to_be_bytes());
    raw[4] = TRACEPARENT_HEADER.len() as u8;
    raw[5..16].copy_from_slice(TRACEPARENT_HEADER.as_bytes());
    raw[16] = b'S';
    raw[17..21].copy_from_slice(&55u32.to_be_bytes());
    raw[21..].copy_from_slice(&trace.to_bytes());
    raw
}

fn table_from(raw: &[u8]) -> FieldTable {
    // Well-formed by construction; an error here would be a bug in the two builders above, and
    // the entry-by-entry build is the safe answer to it.
    FieldTable::decode(&bytes::Bytes::copy_from_slice(raw)).unwrap_or_default()
}

/// Properties of an error reply: the request's `correlation_id` (if it had one, byte for byte)
/// and the [`ERROR_HEADER`] carrying `code`.
pub fn error_reply_properties(
    correlation_id: Option<&ShortString>,
    code: &ErrorCode,
) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_headers(FieldTable::new().with(ERROR_HEADER, code.as_str()))
        .with_content_type("text/plain");
    if let Some(id) = correlation_id {
        props = props.with_correlation_id(id.clone());
    }
    props
}

/// Whether `reply_to` names a direct reply-to address as the broker rewrites it for a server
/// (`amq.rabbitmq.reply-to.…`), as opposed to the pseudo-queue a caller consumes.
pub fn is_direct_reply_to(reply_to: &[u8]) -> bool {
    reply_to
        .strip_prefix(DIRECT_REPLY_TO.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'.'))
}

/// An identifier from the wire (correlation id, reply-to, consumer tag, message id) made safe to
/// print: AMQP short strings are octets, not text (RabbitMQ's Erlang client sends 16 raw bytes
/// as its correlation id), and a hostile peer may send control characters.
///
/// Printable UTF-8 shows as itself; anything else shows as `hex:` and the bytes in lowercase
/// hex, so two different ids never print the same and nothing reaches a terminal raw.
///
/// ```
/// use rpc_wire::DisplayId;
/// assert_eq!(DisplayId(b"c1e5f310").to_string(), "c1e5f310");
/// assert_eq!(DisplayId(&[0xde, 0xad, 0x00]).to_string(), "hex:dead00");
/// assert_eq!(DisplayId(b"a\x1b[31m").to_string(), "hex:611b5b33316d");
/// ```
#[derive(Clone, Copy)]
pub struct DisplayId<'a>(pub &'a [u8]);

impl DisplayId<'_> {
    /// Whether the id prints as itself (printable UTF-8, not starting with `hex:`).
    pub fn is_text(&self) -> bool {
        match std::str::from_utf8(self.0) {
            Ok(s) => !s.starts_with("hex:") && !s.chars().any(char::is_control),
            Err(_) => false,
        }
    }
}

impl fmt::Display for DisplayId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_text() {
            // Checked just above: valid UTF-8.
            return f.write_str(std::str::from_utf8(self.0).unwrap_or_default());
        }
        f.write_str("hex:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DisplayId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::TooLarge,
            ErrorCode::HandlerError,
            ErrorCode::Internal,
            ErrorCode::Other("x".into()),
        ] {
            assert_eq!(ErrorCode::parse(code.as_str()), code);
        }
    }

    #[test]
    fn error_reply_is_recognised() {
        let props = error_reply_properties(Some(&"abc".into()), &ErrorCode::TooLarge);
        assert_eq!(
            props.correlation_id.as_ref().map(|s| s.to_string()),
            Some("abc".into())
        );
        assert_eq!(error_code(&props), Some(ErrorCode::TooLarge));
        assert_eq!(error_code(&BasicProperties::default()), None);
        let other =
            BasicProperties::default().with_headers(FieldTable::new().with(ERROR_HEADER, 5i32));
        assert!(matches!(error_code(&other), Some(ErrorCode::Other(_))));
    }

    #[test]
    fn header_builders_write_what_the_codec_reads() {
        let trace =
            TraceParent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let built = request_headers(-1_700_000_000_123, &trace);
        let by_entries = FieldTable::new()
            .with(DEADLINE_HEADER, -1_700_000_000_123i64)
            .with(TRACEPARENT_HEADER, trace.to_string());
        assert_eq!(built.len(), 2);
        assert_eq!(bytes_of(&built), bytes_of(&by_entries));
        let props = BasicProperties::default().with_headers(built);
        assert_eq!(deadline_of(&props), Some(-1_700_000_000_123));
        assert_eq!(traceparent_of(&props), Some(trace));
        let reply = BasicProperties::default().with_headers(trace_headers(&trace));
        assert_eq!(traceparent_of(&reply), Some(trace));
        assert_eq!(reply.headers.as_ref().unwrap().len(), 1);
    }

    fn bytes_of(t: &FieldTable) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        t.encode(&mut b).unwrap();
        b.to_vec()
    }

    #[test]
    fn error_reply_keeps_a_binary_id_byte_for_byte() {
        let id = ShortString::from(vec![0u8, 0xff, 0x80, b'\n']);
        let props = error_reply_properties(Some(&id), &ErrorCode::BadRequest);
        assert_eq!(props.correlation_id.as_ref(), Some(&id));
    }

    #[test]
    fn ids_print_as_text_only_when_printable() {
        assert_eq!(DisplayId(b"").to_string(), "");
        assert_eq!(DisplayId("µs-1".as_bytes()).to_string(), "µs-1");
        assert_eq!(DisplayId(b"a\rb").to_string(), "hex:610d62");
        assert_eq!(DisplayId(&[0xff]).to_string(), "hex:ff");
        // Text that looks like our hex form is shown as hex, so the two never collide.
        assert_eq!(DisplayId(b"hex:ff").to_string(), "hex:6865783a6666");
    }

    #[test]
    fn direct_reply_to_addresses() {
        assert!(is_direct_reply_to(
            b"amq.rabbitmq.reply-to.g1h2AA1y.0H/7Px8W=="
        ));
        assert!(!is_direct_reply_to(b"amq.rabbitmq.reply-to"));
        assert!(!is_direct_reply_to(b"amq.rabbitmq.reply-tox"));
        assert!(!is_direct_reply_to(b"amq.gen-abc"));
    }
}
