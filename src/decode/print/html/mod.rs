//! `--html OUT.html`: one self-contained page (inline CSS, JS and SVG; nothing fetched) with the
//! flow graph as an SVG sequence diagram, the RPC calls with a latency bar per leg, and the decoded
//! frame shown on click.
//!
//! The page is built by its own script from one JSON document embedded in it: the peers, the
//! arrows (one per method frame, content folded in as `--flow` does; malformed frames too), each
//! arrow's tree as `decode` prints it, the calls as `--rpc --json` writes them, and the `--rpc`
//! summary. Strings from the wire reach the page only as JSON data and are put in the DOM as text,
//! never as markup. The script reports on itself in `#status` (`data-state`, counts), which is
//! what the browser test reads.

use std::collections::HashMap;
use std::io::{self, Write};

use amqp_dissect::rpc::{Call, Leg, Limits, Pairing, Report};
use amqp_dissect::{Event, Side, What};
use serde_json::{json, Value};

use super::flow::{ArrowKind, Flow};
use super::rpc::{correlation_text, ms, write_call_json, Summary};
use super::{escape, preview, Printer};

/// Arrows drawn at most; the rest are counted. Measured on the 100,000-call capture of
/// `bench/decode_speed.py`: with 20,000 arrows and 20,000 calls the page was 40 MB and headless
/// Chromium had not laid it out after two minutes; with 5,000 of each, 10 MB and 15 s.
const MAX_ARROWS: usize = 5_000;
/// Calls listed at most; the rest are counted (all are in the summary).
const MAX_CALLS: usize = 5_000;
/// Body bytes previewed per call.
const BODY: usize = 24;

const PAGE: &str = include_str!("page.html");
const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// Collects the flow and the calls, and writes the page at the end.
#[derive(Debug)]
pub struct HtmlPrinter {
    title: String,
    flow: Flow,
    pairing: Pairing,
    calls: Vec<Call>,
    calls_dropped: u64,
    summary: Summary,
    frames: u64,
    errors: u64,
}

impl HtmlPrinter {
    /// A page titled after the input.
    pub fn new(title: &str) -> Self {
        HtmlPrinter {
            title: title.to_string(),
            flow: Flow::new(MAX_ARROWS, true),
            pairing: Pairing::new(Limits::default()),
            calls: Vec::new(),
            calls_dropped: 0,
            summary: Summary::default(),
            frames: 0,
            errors: 0,
        }
    }

    fn report(&mut self, report: Report) {
        match report {
            Report::Call(call) => {
                self.summary.call(&call);
                if self.calls.len() < MAX_CALLS {
                    self.calls.push(call);
                } else {
                    self.calls_dropped += 1;
                }
            }
            Report::Problem(problem) => self.summary.problem(&problem),
        }
    }

    /// The page's data.
    fn data(&self) -> Value {
        let columns = self.flow.columns();
        let column_of: HashMap<usize, usize> =
            columns.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let peers: Vec<Value> = columns
            .iter()
            .map(|&p| {
                json!({
                    "name": escape(self.flow.name(p).as_bytes()),
                    "broker": self.flow.peers().get(p).is_some_and(|x| x.1),
                })
            })
            .collect();
        let first = self.flow.first_time();
        let mut arrow_at: HashMap<(u32, Side, u64), usize> = HashMap::new();
        let arrows: Vec<Value> = self
            .flow
            .arrows
            .iter()
            .enumerate()
            .map(|(i, a)| {
                arrow_at.insert((a.stream, a.side, a.offset), i);
                json!({
                    "t": a.time.zip(first).map(|(t, f)| t - f),
                    "p": a.packet,
                    "f": column_of.get(&a.from),
                    "o": column_of.get(&a.to),
                    // Labels and trees escape the wire's strings already (print::escape).
                    "l": a.label,
                    "m": a.method,
                    "k": match a.kind {
                        ArrowKind::Normal => "normal",
                        ArrowKind::Error => "error",
                        ArrowKind::Return => "return",
                        ArrowKind::Malformed => "malformed",
                    },
                    "s": a.stream,
                    "c": a.channel,
                    "d": a.detail,
                })
            })
            .collect();
        let arrow = |leg: &Option<Leg>| -> Value {
            leg.as_ref()
                .and_then(|l| arrow_at.get(&(l.stream, l.side, l.offset)))
                .map_or(Value::Null, |&i| json!(i))
        };
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|c| {
                let l = c.latency();
                let mut full = Vec::new();
                // Writing to a Vec cannot fail.
                let _ = write_call_json(&mut full, c);
                let reply_size = c
                    .reply
                    .as_ref()
                    .or(c.reply_delivery.as_ref())
                    .and_then(|l| l.body_size);
                json!({
                    "n": c.number,
                    "q": c.queue.as_deref().map(escape),
                    "cl": c.client().map(|s| escape(s.as_bytes())),
                    "sv": c.server().map(|s| escape(s.as_bytes())),
                    "id": correlation_text(c.correlation_id.as_deref()),
                    "rq": preview(&c.request_body, BODY),
                    "rp": reply_size.map(|_| preview(&c.reply_body, BODY)),
                    "o": c.outcome().name(),
                    "e": c.error.as_deref().map(escape),
                    "dup": c.duplicates,
                    "lat": {
                        "total": ms(l.total),
                        "to_server": ms(l.to_server),
                        "server": ms(l.server),
                        "to_client": ms(l.to_client),
                    },
                    "legs": [
                        arrow(&c.request),
                        arrow(&c.delivery),
                        arrow(&c.reply),
                        arrow(&c.reply_delivery),
                        arrow(&c.ack),
                        arrow(&c.returned),
                    ],
                    "json": String::from_utf8_lossy(&full),
                })
            })
            .collect();
        let mut summary = Vec::new();
        let _ = self.summary.write(&mut summary);
        json!({
            "title": escape(self.title.as_bytes()),
            "peers": peers,
            "arrows": arrows,
            "dropped": self.flow.dropped,
            "calls": calls,
            "calls_dropped": self.calls_dropped,
            "summary": String::from_utf8_lossy(&summary).trim_start(),
            "frames": self.frames,
            "errors": self.errors,
        })
    }
}

/// JSON that can sit in a `<script>` element: `<`, `>` and `&` only occur inside JSON strings,
/// where their `\u` escapes mean the same, so no `</script>` or `<!--` can end the element early.
pub fn script_safe(json: &str) -> String {
    let mut s = String::with_capacity(json.len());
    for c in json.chars() {
        match c {
            '<' => s.push_str("\\u003c"),
            '>' => s.push_str("\\u003e"),
            '&' => s.push_str("\\u0026"),
            c => s.push(c),
        }
    }
    s
}

/// Text for an HTML element's content (the page title).
fn html_text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Printer for HtmlPrinter {
    fn event(&mut self, event: &Event, _out: &mut dyn Write) -> io::Result<()> {
        match event.what {
            What::Frame { .. } => self.frames += 1,
            What::Error { .. } => self.errors += 1,
            What::Closed { .. } => {}
        }
        self.flow.event(event);
        let mut reports = Vec::new();
        self.pairing.event(event, &mut |r| reports.push(r));
        for r in reports {
            self.report(r);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.flow.finish();
        let mut reports = Vec::new();
        self.pairing.finish(&mut |r| reports.push(r));
        for r in reports {
            self.report(r);
        }
        let data = script_safe(&self.data().to_string());
        // The template's markers are replaced in one pass, in order, so nothing inserted (the
        // data least of all) is ever searched for a marker.
        let mut rest = PAGE;
        for (marker, value) in [
            ("{{TITLE}}", html_text(&escape(self.title.as_bytes()))),
            ("{{CSS}}", CSS.to_string()),
            ("{{DATA}}", data),
            ("{{JS}}", JS.to_string()),
        ] {
            let Some((before, after)) = rest.split_once(marker) else {
                return Err(io::Error::other(format!("page template has no {marker}")));
            };
            out.write_all(before.as_bytes())?;
            out.write_all(value.as_bytes())?;
            rest = after;
        }
        out.write_all(rest.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_end_its_script_element() {
        let s = script_safe(r#"{"q":"</script><script>alert(1)</script><!--&"}"#);
        assert!(!s.contains('<') && !s.contains('>') && !s.contains('&'));
        let back: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back["q"], "</script><script>alert(1)</script><!--&");
    }
}
