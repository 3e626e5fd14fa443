//! `--json`: JSON Lines, one object per frame (schema in the README section).

use std::io::{self, Write};

use amqp_codec::method::ArgValue;
use amqp_codec::{FieldTable, FieldValue, Frame};
use serde_json::{json, Map, Value};

use super::{decimal, hex, properties, type_name, Printer};
use amqp_dissect::{Event, What};

/// Nesting beyond which tables are cut off in JSON (serde_json's serializer recurses).
const MAX_DEPTH: usize = 64;

/// Prints JSON Lines.
#[derive(Debug, Default)]
pub struct JsonPrinter;

impl Printer for JsonPrinter {
    fn event(&mut self, event: &Event, out: &mut dyn Write) -> io::Result<()> {
        if let What::Closed { .. } = event.what {
            return Ok(());
        }
        let value = to_json(event);
        serde_json::to_writer(&mut *out, &value)?;
        out.write_all(b"\n")
    }

    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// One event as its JSON object.
pub fn to_json(event: &Event) -> Value {
    let mut o = Map::new();
    o.insert("packet".into(), json!(event.packet));
    if let Some(t) = event.time {
        o.insert("time".into(), json!(t));
    }
    o.insert("stream".into(), json!(event.stream));
    o.insert("direction".into(), json!(event.side.name()));
    o.insert("offset".into(), json!(event.offset));
    match &event.what {
        What::Frame { frame, length } => frame_fields(&mut o, frame, *length),
        What::Error {
            channel,
            length,
            at,
            message,
        } => {
            o.insert("type".into(), json!("error"));
            o.insert("channel".into(), json!(channel));
            o.insert("length".into(), json!(length));
            o.insert("error".into(), json!(message));
            o.insert("error_offset".into(), json!(at));
        }
        What::Closed { reset } => {
            o.insert("type".into(), json!(if *reset { "rst" } else { "fin" }));
        }
    }
    Value::Object(o)
}

fn frame_fields(o: &mut Map<String, Value>, frame: &Frame, length: u32) {
    let kind = match frame {
        Frame::ProtocolHeader(_) => "protocol-header",
        Frame::Method(..) => "method",
        Frame::Header(..) => "header",
        Frame::Body(..) => "body",
        Frame::Heartbeat => "heartbeat",
    };
    o.insert("type".into(), json!(kind));
    match frame {
        Frame::ProtocolHeader(h) => {
            o.insert("channel".into(), Value::Null);
            o.insert("length".into(), Value::Null);
            o.insert("protocol".into(), json!(hex(&h.0)));
        }
        _ => {
            o.insert("channel".into(), json!(frame.channel()));
            o.insert("length".into(), json!(length));
        }
    }
    match frame {
        Frame::Method(_, m) => {
            let info = m.info();
            o.insert("class_id".into(), json!(info.class_id));
            o.insert("method_id".into(), json!(info.method_id));
            o.insert("class".into(), json!(info.class_name));
            o.insert("method".into(), json!(info.method_name));
            let args: Map<String, Value> = m
                .arguments()
                .iter()
                .map(|(name, v)| (name.to_string(), arg_json(v)))
                .collect();
            o.insert("arguments".into(), Value::Object(args));
        }
        Frame::Header(_, h) => {
            o.insert("class_id".into(), json!(h.class_id));
            o.insert("weight".into(), json!(h.weight));
            o.insert("body_size".into(), json!(h.body_size));
            o.insert("property_flags".into(), json!(h.properties.flags()));
            let props: Map<String, Value> = properties(&h.properties)
                .iter()
                .map(|(name, v)| (name.to_string(), arg_json(v)))
                .collect();
            o.insert("properties".into(), Value::Object(props));
        }
        Frame::Body(_, b) => {
            o.insert("payload_len".into(), json!(b.len()));
            o.insert("payload_hex".into(), json!(hex(b)));
        }
        Frame::ProtocolHeader(_) | Frame::Heartbeat => {}
    }
}

/// Strings that are not UTF-8 become `{"hex": …}` so no byte is lost.
fn bytes_json(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(s) => json!(s),
        Err(_) => json!({ "hex": hex(bytes) }),
    }
}

fn arg_json(value: &ArgValue<'_>) -> Value {
    match value {
        ArgValue::Bit(b) => json!(b),
        ArgValue::Octet(v) => json!(v),
        ArgValue::Short(v) => json!(v),
        ArgValue::Long(v) => json!(v),
        ArgValue::LongLong(v) => json!(v),
        ArgValue::Timestamp(v) => json!(v),
        ArgValue::ShortStr(s) => bytes_json(s.as_bytes()),
        ArgValue::LongStr(s) => bytes_json(s.as_bytes()),
        ArgValue::Table(t) => table_json(t, 0),
    }
}

/// A table as an object of `{"type": …, "value": …}` (the AMQP type is kept for every value,
/// since JSON has one number type and no bytes, decimals or timestamps).
pub fn table_json(table: &FieldTable, depth: usize) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into_owned(), field_json(v, depth + 1)))
            .collect(),
    )
}

fn field_json(value: &FieldValue, depth: usize) -> Value {
    if depth > MAX_DEPTH {
        return json!({ "type": type_name(value), "value": null, "truncated": true });
    }
    let v = match value {
        FieldValue::Boolean(b) => json!(b),
        FieldValue::ShortShortInt(v) => json!(v),
        FieldValue::ShortShortUInt(v) => json!(v),
        FieldValue::ShortInt(v) => json!(v),
        FieldValue::ShortUInt(v) => json!(v),
        FieldValue::LongInt(v) => json!(v),
        FieldValue::LongUInt(v) => json!(v),
        FieldValue::LongLongInt(v) => json!(v),
        // NaN and infinities have no JSON number: they become null (json! does that).
        FieldValue::Float(v) => json!(v),
        FieldValue::Double(v) => json!(v),
        FieldValue::Decimal(d) => json!(decimal(d.scale, d.value)),
        FieldValue::LongString(s) => bytes_json(s.as_bytes()),
        FieldValue::ByteArray(b) => json!(hex(b)),
        FieldValue::Timestamp(t) => json!(t),
        FieldValue::FieldTable(t) => table_json(t, depth),
        FieldValue::FieldArray(a) => {
            Value::Array(a.iter().map(|v| field_json(v, depth + 1)).collect())
        }
        FieldValue::Void => Value::Null,
    };
    json!({ "type": type_name(value), "value": v })
}
