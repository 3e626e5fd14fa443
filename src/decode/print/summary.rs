//! `--summary`: one line per frame, like tshark's packet list, then counts by method.

use std::collections::HashMap;
use std::io::{self, Write};

use amqp_codec::Frame;

use super::{info, method_label, Printer};
use amqp_dissect::{Event, Side, What};

/// Prints the summary.
#[derive(Debug)]
pub struct SummaryPrinter {
    colour: bool,
    first_time: Option<f64>,
    counts: HashMap<String, u64>,
    frames: u64,
    errors: u64,
}

impl SummaryPrinter {
    /// A summary printer.
    pub fn new(colour: bool) -> Self {
        SummaryPrinter {
            colour,
            first_time: None,
            counts: HashMap::new(),
            frames: 0,
            errors: 0,
        }
    }
}

impl Printer for SummaryPrinter {
    fn event(&mut self, event: &Event, out: &mut dyn Write) -> io::Result<()> {
        let arrow = match event.side {
            Side::Client => "C→B",
            Side::Broker => "B→C",
        };
        let time = match event.time {
            Some(t) => format!("{:>11.6}", t - *self.first_time.get_or_insert(t)),
            None => format!("{:>11}", ""),
        };
        let (channel, text) = match &event.what {
            What::Frame { frame, .. } => {
                self.frames += 1;
                let key = match frame {
                    Frame::Method(_, m) => method_label(m),
                    Frame::ProtocolHeader(_) => "Protocol-Header".into(),
                    Frame::Header(..) => "Content-Header".into(),
                    Frame::Body(..) => "Content-Body".into(),
                    Frame::Heartbeat => "Heartbeat".into(),
                };
                *self.counts.entry(key).or_default() += 1;
                (frame.channel().to_string(), info(frame))
            }
            What::Error {
                channel, message, ..
            } => {
                self.errors += 1;
                let text = format!("[Malformed] {message}");
                let text = if self.colour {
                    format!("\x1b[31m{text}\x1b[0m")
                } else {
                    text
                };
                (channel.map(|c| c.to_string()).unwrap_or("-".into()), text)
            }
            What::Closed { .. } => return Ok(()),
        };
        writeln!(
            out,
            "{:>7} {time} {:>3} {arrow} {:>10} ch{channel:<3} {text}",
            event.packet, event.stream, event.offset
        )
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut counts: Vec<_> = self.counts.iter().collect();
        counts.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        writeln!(out)?;
        writeln!(out, "{:>8}  frame", "count")?;
        for (name, n) in counts {
            writeln!(out, "{n:>8}  {name}")?;
        }
        writeln!(out, "{:>8}  frames decoded", self.frames)?;
        writeln!(out, "{:>8}  malformed", self.errors)
    }
}
