//! Printers: the default tree, JSON Lines, the one-line summary and the flow graph, and the
//! Wireshark-style names and value renderings they share.

use std::io::{self, Write};

use amqp_codec::method::ArgValue;
use amqp_codec::{FieldValue, Frame, Method};

use super::{DecodeArgs, Event, FlowStyle, What};

pub mod flow;
pub mod html;
pub mod json;
pub mod rpc;
pub mod summary;
pub mod tree;

/// Something that prints events as they come and may add a tail at the end.
pub trait Printer {
    /// Print one event.
    fn event(&mut self, event: &Event, out: &mut dyn Write) -> io::Result<()>;
    /// Print what needs all events (counts, a diagram).
    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()>;
}

/// The printer the arguments ask for.
pub fn printer(args: &DecodeArgs, colour: bool) -> Box<dyn Printer> {
    if args.html.is_some() {
        let title = args
            .file
            .as_deref()
            .and_then(|f| f.file_name())
            .map_or("standard input".into(), |f| {
                f.to_string_lossy().into_owned()
            });
        Box::new(html::HtmlPrinter::new(&title))
    } else if args.json && !args.rpc {
        Box::new(json::JsonPrinter)
    } else if args.rpc {
        Box::new(rpc::RpcPrinter::new(args.json, colour))
    } else if args.summary {
        Box::new(summary::SummaryPrinter::new(colour))
    } else if let Some(style) = args.flow {
        Box::new(flow::FlowPrinter::new(style == FlowStyle::Mermaid))
    } else {
        Box::new(tree::TreePrinter::new(colour))
    }
}

/// A spec name as Wireshark titles it: `routing-key` → `Routing-Key`, `qos-ok` → `Qos-Ok`.
pub fn title(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-' || c == '_';
    }
    out
}

/// `Basic.Publish`: the method's class and name as tshark's Info column shows them.
pub fn method_label(method: &Method) -> String {
    let info = method.info();
    format!("{}.{}", title(info.class_name), title(info.method_name))
}

/// Wireshark's name for a field value's type (its AMQP dissector's labels).
pub fn type_name(value: &FieldValue) -> &'static str {
    match value {
        FieldValue::Boolean(_) => "boolean",
        FieldValue::ShortShortInt(_) => "byte",
        FieldValue::ShortShortUInt(_) => "unsigned byte",
        FieldValue::ShortInt(_) => "short int",
        FieldValue::ShortUInt(_) => "short uint",
        FieldValue::LongInt(_) => "integer",
        FieldValue::LongUInt(_) => "unsigned integer",
        FieldValue::LongLongInt(_) => "long int",
        FieldValue::Float(_) => "float",
        FieldValue::Double(_) => "double",
        FieldValue::Decimal(_) => "decimal",
        FieldValue::LongString(_) => "string",
        FieldValue::ByteArray(_) => "byte array",
        FieldValue::FieldArray(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::FieldTable(_) => "field table",
        FieldValue::Void => "void",
    }
}

/// Lowercase hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Text when the bytes are UTF-8 without control characters (escaped as [`escape`] does for the
/// invisible ones), else hex.
pub fn text_or_hex(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => escape(bytes),
        _ => hex(bytes),
    }
}

/// An exact decimal: `value / 10^scale`.
pub fn decimal(scale: u8, value: u32) -> String {
    let digits = value.to_string();
    let scale = usize::from(scale);
    if scale == 0 {
        return digits;
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int, frac) = padded.split_at(padded.len() - scale);
    format!("{int}.{frac}")
}

/// Seconds since the epoch as a UTC date and time.
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rem = seconds % 86_400;
    // Days to civil date (proleptic Gregorian), after H. Hinnant's public-domain algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A method argument's value as one line of text (tables are printed by the caller).
pub fn arg_text(value: &ArgValue<'_>) -> String {
    match value {
        ArgValue::Bit(b) => if *b { "True" } else { "False" }.to_string(),
        ArgValue::Octet(v) => v.to_string(),
        ArgValue::Short(v) => v.to_string(),
        ArgValue::Long(v) => v.to_string(),
        ArgValue::LongLong(v) => v.to_string(),
        ArgValue::Timestamp(v) => format!("{} ({v})", utc(*v)),
        ArgValue::ShortStr(s) => escape(s.as_bytes()),
        ArgValue::LongStr(s) => text_or_hex(s.as_bytes()),
        ArgValue::Table(t) => format!("{} entries", t.len()),
    }
}

/// A field value as one line of text (nested tables and arrays are printed by the caller).
pub fn field_text(value: &FieldValue) -> String {
    match value {
        FieldValue::Boolean(b) => b.to_string(),
        FieldValue::ShortShortInt(v) => v.to_string(),
        FieldValue::ShortShortUInt(v) => v.to_string(),
        FieldValue::ShortInt(v) => v.to_string(),
        FieldValue::ShortUInt(v) => v.to_string(),
        FieldValue::LongInt(v) => v.to_string(),
        FieldValue::LongUInt(v) => v.to_string(),
        FieldValue::LongLongInt(v) => v.to_string(),
        FieldValue::Float(v) => v.to_string(),
        FieldValue::Double(v) => v.to_string(),
        FieldValue::Decimal(d) => decimal(d.scale, d.value),
        FieldValue::LongString(s) => escape(s.as_bytes()),
        FieldValue::ByteArray(b) => hex(b),
        FieldValue::Timestamp(t) => utc(*t),
        FieldValue::FieldTable(t) => format!("{} entries", t.len()),
        FieldValue::FieldArray(a) => format!("{} values", a.len()),
        FieldValue::Void => String::new(),
    }
}

/// Bytes from the wire as text that is safe on a terminal: UTF-8 is kept except control
/// characters (C0, DEL, C1: `\n`, `\r`, the ESC that starts an ANSI sequence) and the invisible
/// characters that reorder or hide text (bidi overrides, zero-width), which become `\u{…}`;
/// bytes that are not UTF-8 become `\xNN`; a backslash becomes `\\`, so the escapes read back
/// unambiguously.
pub fn escape(bytes: &[u8]) -> String {
    // Nearly every string on the wire is printable ASCII: copied as it is, it costs a scan and a
    // copy; char by char, escaping added ~10 % to the tree and summary views (callgrind).
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'\\')
    {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return s.to_owned();
        }
    }
    let mut s = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                c if c.is_control() || is_invisible(c) => {
                    s.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
                }
                c => s.push(c),
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// Characters that change how the text around them shows without showing themselves (Unicode
/// bidi controls, zero-width characters): a queue name must not be able to reorder a line.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

/// A short printable preview of a body: up to `max` bytes as text, `…` when cut.
pub fn preview(body: &[u8], max: usize) -> String {
    let shown = body.get(..max).unwrap_or(body);
    let mut s: String = shown
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect();
    if shown.len() < body.len() {
        s.push('…');
    }
    s
}

/// tshark-style Info text for a frame: `Basic.Publish x= rk=rpc_queue`, `Content-Header`, …
pub fn info(frame: &Frame) -> String {
    match frame {
        Frame::ProtocolHeader(h) => {
            let v = h.0;
            format!("Protocol-Header {}-{}-{}", v[5], v[6], v[7])
        }
        Frame::Method(_, m) => {
            let mut s = method_label(m);
            let short = short_args(m);
            if !short.is_empty() {
                s.push(' ');
                s.push_str(&short);
            }
            s
        }
        Frame::Header(_, h) => {
            let mut s = format!("Content-Header size={}", h.body_size);
            if let Some(c) = &h.properties.correlation_id {
                s.push_str(&format!(" corr={}", escape(c.as_bytes())));
            }
            if let Some(r) = &h.properties.reply_to {
                s.push_str(&format!(" reply-to={}", escape(r.as_bytes())));
            }
            s
        }
        Frame::Body(_, b) => format!("Content-Body {} bytes \"{}\"", b.len(), preview(b, 24)),
        Frame::Heartbeat => "Heartbeat".to_string(),
    }
}

/// The arguments tshark's Info column shows: `x=` exchange, `rk=` routing key, `q=` queue,
/// `tag=` delivery tag, `reply=` code and text.
pub fn short_args(method: &Method) -> String {
    let mut parts: Vec<String> = Vec::new();
    let args = method.arguments();
    let text = |v: &ArgValue<'_>| arg_text(v);
    let code = args.iter().find(|(n, _)| *n == "reply-code");
    for (name, value) in &args {
        let key = match *name {
            "exchange" => "x",
            "routing-key" => "rk",
            "queue" => "q",
            "delivery-tag" => "tag",
            "destination" => "dst",
            "source" => "src",
            "type" => "type",
            "reply-text" => {
                let code = code.map(|(_, c)| text(c)).unwrap_or_default();
                parts.push(format!("reply={code} {}", text(value)));
                continue;
            }
            _ => continue,
        };
        parts.push(format!("{key}={}", text(value)));
    }
    parts.join(" ")
}

/// A display for a frame's type: `Method (1)`, `Content header (2)` …
pub fn frame_type(frame: &Frame) -> &'static str {
    match frame {
        Frame::ProtocolHeader(_) => "Protocol header",
        Frame::Method(..) => "Method (1)",
        Frame::Header(..) => "Content header (2)",
        Frame::Body(..) => "Content body (3)",
        Frame::Heartbeat => "Heartbeat (8)",
    }
}

/// Whether an event is an error.
pub fn is_error(event: &Event) -> bool {
    matches!(event.what, What::Error { .. })
}

fn short<'a>(
    name: &'static str,
    v: &'a Option<amqp_codec::ShortString>,
) -> Option<(&'static str, &'a amqp_codec::ShortString)> {
    v.as_ref().map(|s| (name, s))
}

/// The properties present, by spec name, in wire order (as `amqp_codec::properties::PROPERTIES`).
pub fn properties(p: &amqp_codec::BasicProperties) -> Vec<(&'static str, ArgValue<'_>)> {
    let mut out = Vec::new();
    let strings = [
        short("content-type", &p.content_type),
        short("content-encoding", &p.content_encoding),
    ];
    out.extend(
        strings
            .into_iter()
            .flatten()
            .map(|(n, s)| (n, ArgValue::ShortStr(s))),
    );
    if let Some(t) = &p.headers {
        out.push(("headers", ArgValue::Table(t)));
    }
    if let Some(v) = p.delivery_mode {
        out.push(("delivery-mode", ArgValue::Octet(v)));
    }
    if let Some(v) = p.priority {
        out.push(("priority", ArgValue::Octet(v)));
    }
    let strings = [
        short("correlation-id", &p.correlation_id),
        short("reply-to", &p.reply_to),
        short("expiration", &p.expiration),
        short("message-id", &p.message_id),
    ];
    out.extend(
        strings
            .into_iter()
            .flatten()
            .map(|(n, s)| (n, ArgValue::ShortStr(s))),
    );
    if let Some(v) = p.timestamp {
        out.push(("timestamp", ArgValue::Timestamp(v)));
    }
    let strings = [
        short("type", &p.kind),
        short("user-id", &p.user_id),
        short("app-id", &p.app_id),
        short("cluster-id", &p.cluster_id),
    ];
    out.extend(
        strings
            .into_iter()
            .flatten()
            .map(|(n, s)| (n, ArgValue::ShortStr(s))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_dates_and_decimals() {
        assert_eq!(title("routing-key"), "Routing-Key");
        assert_eq!(title("qos-ok"), "Qos-Ok");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(1_704_164_645), "2024-01-02 03:04:05 UTC");
        assert_eq!(decimal(3, 12345), "12.345");
        assert_eq!(decimal(2, 5), "0.05");
        assert_eq!(decimal(0, 7), "7");
    }

    #[test]
    fn wire_strings_are_escaped_for_the_terminal() {
        assert_eq!(escape(b"rpc_queue"), "rpc_queue");
        assert_eq!(escape("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(escape(b"\0\r\n\x1b[31m"), "\\u{0}\\u{d}\\u{a}\\u{1b}[31m");
        assert_eq!(escape(b"a\\b"), "a\\\\b");
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape("x\u{202e}y\u{85}".as_bytes()), "x\\u{202e}y\\u{85}");
        assert!(!escape(&(0u8..=255).collect::<Vec<_>>())
            .chars()
            .any(char::is_control));
    }
}
