//! The default output: a tree with Wireshark's AMQP labels, each frame headed by where it came
//! from.

use std::io::{self, Write};

use amqp_codec::method::ArgValue;
use amqp_codec::{FieldTable, FieldValue, Frame};

use super::{arg_text, escape, field_text, frame_type, properties, title, type_name, Printer};
use amqp_dissect::{Event, What};

/// Bytes of a body shown in the preview.
const PREVIEW: usize = 32;

/// Prints the tree.
#[derive(Debug)]
pub struct TreePrinter {
    colour: bool,
    first_time: Option<f64>,
}

impl TreePrinter {
    /// A tree printer, with ANSI colour or without.
    pub fn new(colour: bool) -> Self {
        TreePrinter {
            colour,
            first_time: None,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

impl Printer for TreePrinter {
    fn event(&mut self, event: &Event, out: &mut dyn Write) -> io::Result<()> {
        if let What::Closed { .. } = event.what {
            return Ok(());
        }
        let (from, to) = match event.side {
            amqp_dissect::Side::Client => (&event.endpoints.client, &event.endpoints.broker),
            amqp_dissect::Side::Broker => (&event.endpoints.broker, &event.endpoints.client),
        };
        // The head line is written in pieces rather than built as a string: one line per frame,
        // and growing a String piece by piece was ~5 % of the tree's instructions (callgrind).
        if self.colour {
            out.write_all(b"\x1b[1;36m")?;
        }
        write!(
            out,
            "Packet {}, stream {}, {} → {}",
            event.packet,
            event.stream,
            event.side.name(),
            event.side.peer().name()
        )?;
        // A raw stream's endpoints are just "client" and "broker": no addresses to show.
        if from.contains(':') {
            write!(out, " ({from} → {to})")?;
        }
        write!(out, ", offset {}", event.offset)?;
        if let Some(t) = event.time {
            let first = *self.first_time.get_or_insert(t);
            write!(out, ", +{:.6} s", t - first)?;
        }
        if self.colour {
            out.write_all(b"\x1b[0m")?;
        }
        out.write_all(b"\n")?;
        match &event.what {
            What::Frame { frame, length } => write_frame(out, frame, *length),
            What::Error {
                channel,
                length,
                at,
                message,
            } => {
                let line = format!("    Malformed: {message}");
                writeln!(out, "{}", self.paint("1;31", &line))?;
                if let Some(c) = channel {
                    writeln!(out, "    Channel: {c}")?;
                }
                if let Some(l) = length {
                    writeln!(out, "    Length: {l}")?;
                }
                writeln!(out, "    Error at stream offset: {at}")
            }
            What::Closed { .. } => Ok(()),
        }
    }

    fn finish(&mut self, _out: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
}

/// A frame's tree, without the head line: what `--html` shows when an arrow is clicked.
pub fn write_frame(out: &mut dyn Write, frame: &Frame, length: u32) -> io::Result<()> {
    if let Frame::ProtocolHeader(h) = frame {
        let v = h.0;
        writeln!(out, "    Protocol: {}", escape(&v[..4]))?;
        return writeln!(out, "    Version: {}-{}-{} (id {})", v[5], v[6], v[7], v[4]);
    }
    writeln!(out, "    Type: {}", frame_type(frame))?;
    writeln!(out, "    Channel: {}", frame.channel())?;
    writeln!(out, "    Length: {length}")?;
    match frame {
        Frame::Method(_, m) => {
            let info = m.info();
            writeln!(
                out,
                "    Class: {} ({})",
                title(info.class_name),
                info.class_id
            )?;
            writeln!(
                out,
                "    Method: {} ({})",
                title(info.method_name),
                info.method_id
            )?;
            let args = m.arguments();
            if !args.is_empty() {
                writeln!(out, "    Arguments")?;
            }
            for (name, value) in &args {
                write_value(out, 2, &title(name), value)?;
            }
        }
        Frame::Header(_, h) => {
            writeln!(
                out,
                "    Class ID: {} ({})",
                class_name(h.class_id),
                h.class_id
            )?;
            writeln!(out, "    Weight: {}", h.weight)?;
            writeln!(out, "    Body size: {}", h.body_size)?;
            writeln!(out, "    Property flags: 0x{:04x}", h.properties.flags())?;
            let props = properties(&h.properties);
            if !props.is_empty() {
                writeln!(out, "    Properties")?;
            }
            for (name, value) in &props {
                write_value(out, 2, &title(name), value)?;
            }
        }
        Frame::Body(_, b) => {
            writeln!(out, "    Payload: {} bytes", b.len())?;
            let shown = b.get(..PREVIEW).unwrap_or(b);
            let more = if shown.len() < b.len() { " …" } else { "" };
            writeln!(
                out,
                "        {}{more}  \"{}\"",
                spaced_hex(shown),
                super::preview(b, PREVIEW)
            )?;
        }
        Frame::Heartbeat | Frame::ProtocolHeader(_) => {}
    }
    Ok(())
}

fn class_name(class_id: u16) -> &'static str {
    amqp_codec::method::ALL_METHODS
        .iter()
        .find(|m| m.class_id == class_id)
        .map(|m| match m.class_name {
            "basic" => "Basic",
            other => other,
        })
        .unwrap_or("Unknown")
}

fn spaced_hex(bytes: &[u8]) -> String {
    let hex = super::hex(bytes);
    let mut s = String::with_capacity(hex.len() * 3 / 2);
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(std::str::from_utf8(pair).unwrap_or_default());
    }
    s
}

/// Indentation stops growing at this depth: past it each line says its depth instead, so hostile
/// nesting (a 128 KiB frame can nest 25,000 levels) gives output linear in the input, not quadratic.
const MAX_INDENT: usize = 24;

fn indent(depth: usize) -> String {
    if depth <= MAX_INDENT {
        "    ".repeat(depth)
    } else {
        format!("{}[depth {depth}] ", "    ".repeat(MAX_INDENT))
    }
}

fn write_value(
    out: &mut dyn Write,
    depth: usize,
    label: &str,
    value: &ArgValue<'_>,
) -> io::Result<()> {
    match value {
        ArgValue::Table(t) => {
            writeln!(out, "{}{label}", indent(depth))?;
            write_table(out, depth + 1, t)
        }
        other => writeln!(out, "{}{label}: {}", indent(depth), arg_text(other)),
    }
}

/// Nested tables and arrays, iteratively (an explicit stack: hostile nesting cannot overflow).
fn write_table(out: &mut dyn Write, depth: usize, table: &FieldTable) -> io::Result<()> {
    enum Item<'a> {
        Entry(usize, String, &'a FieldValue),
    }
    let mut stack: Vec<Item<'_>> = table
        .iter()
        .rev()
        .map(|(k, v)| Item::Entry(depth, escape(k.as_bytes()), v))
        .collect();
    while let Some(Item::Entry(depth, name, value)) = stack.pop() {
        let pad = indent(depth);
        match value {
            FieldValue::FieldTable(t) => {
                writeln!(out, "{pad}{name} ({})", type_name(value))?;
                stack.extend(
                    t.iter()
                        .rev()
                        .map(|(k, v)| Item::Entry(depth + 1, escape(k.as_bytes()), v)),
                );
            }
            FieldValue::FieldArray(a) => {
                writeln!(out, "{pad}{name} ({})", type_name(value))?;
                let items: Vec<_> = a.iter().enumerate().collect();
                stack.extend(
                    items
                        .into_iter()
                        .rev()
                        .map(|(i, v)| Item::Entry(depth + 1, format!("[{i}]"), v)),
                );
            }
            _ => writeln!(
                out,
                "{pad}{name} ({}): {}",
                type_name(value),
                field_text(value)
            )?,
        }
    }
    Ok(())
}
