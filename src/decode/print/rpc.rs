//! `--rpc`: the calls in a capture, paired by `amqp_dissect::rpc`. Text: one line per call, then a
//! summary (outcomes, latency percentiles per leg and per server, problems found). `--rpc --json`:
//! JSON Lines, one object per call (schema in the README).
//!
//! Every string from the wire goes through [`escape`] (or serde_json's escaping)
//! before it is printed.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Write};

use amqp_dissect::rpc::{
    Call, CallOutcome, Latency, Leg, Limits, Pairing, Problem, Report, Unacked,
};
use amqp_dissect::{Event, Side};
use hdrhistogram::Histogram;

use super::{escape, hex, preview, Printer};

/// Body bytes shown per call in the text view.
const BODY: usize = 16;
/// Problems of one kind listed one by one; the rest are counted.
const LISTED: usize = 20;
/// Servers with a row of their own in the summary; the rest share one.
const SERVERS: usize = 32;

/// Prints calls as text or JSON Lines.
#[derive(Debug)]
pub struct RpcPrinter {
    pairing: Pairing,
    sink: Sink,
}

impl RpcPrinter {
    /// An `--rpc` printer; JSON Lines or text (with ANSI colour or not).
    pub fn new(json: bool, colour: bool) -> Self {
        RpcPrinter::with_limits(json, colour, Limits::default())
    }

    /// An `--rpc` printer pairing within `limits` (the proxy's live view reports calls as they
    /// finish, not in order: a call that never gets its reply must not hold back the others).
    pub fn with_limits(json: bool, colour: bool, limits: Limits) -> Self {
        RpcPrinter {
            pairing: Pairing::new(limits),
            sink: Sink {
                json,
                colour,
                summary: Summary::default(),
            },
        }
    }
}

impl Printer for RpcPrinter {
    fn event(&mut self, event: &Event, out: &mut dyn Write) -> io::Result<()> {
        let sink = &mut self.sink;
        let mut result = Ok(());
        self.pairing.event(event, &mut |report| {
            if result.is_ok() {
                result = sink.report(report, out);
            }
        });
        result
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let sink = &mut self.sink;
        let mut result = Ok(());
        self.pairing.finish(&mut |report| {
            if result.is_ok() {
                result = sink.report(report, out);
            }
        });
        result?;
        if !self.sink.json {
            self.sink.summary.write(out)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Sink {
    json: bool,
    colour: bool,
    summary: Summary,
}

impl Sink {
    fn report(&mut self, report: Report, out: &mut dyn Write) -> io::Result<()> {
        match report {
            Report::Call(call) => {
                if self.json {
                    write_call_json(out, &call)?;
                    out.write_all(b"\n")?;
                } else {
                    writeln!(out, "{}", self.line(&call))?;
                    self.summary.call(&call);
                }
            }
            Report::Problem(problem) => {
                if !self.json {
                    self.summary.problem(&problem);
                }
            }
        }
        Ok(())
    }

    /// `#12 rpc_queue 127.0.0.1:40000 → 127.0.0.1:40002 corr 3a3e6e74…ef56 "30" → "832040" answered 1.234 ms = 0.310 + 0.600 + 0.324`
    fn line(&self, call: &Call) -> String {
        line(call, self.colour)
    }
}

/// A call's line in the text view.
pub fn line(call: &Call, colour: bool) -> String {
    let queue = call.queue.as_deref().map(escape).unwrap_or("?".into());
    let client = call.client().unwrap_or("?");
    let server = call.server().unwrap_or("?");
    let mut s = format!(
        "#{:<5} {queue}  {client} → {server}  corr {}",
        call.number,
        correlation_text(call.correlation_id.as_deref())
    );
    let body = |b: &[u8], size: Option<u64>| {
        let cut = size.is_some_and(|n| n > b.len().min(BODY) as u64) || b.len() > BODY;
        let mut shown = preview(b, BODY);
        if cut && !shown.ends_with('…') {
            shown.push('…');
        }
        format!("\"{shown}\"")
    };
    let request_size = call.request.as_ref().and_then(|l| l.body_size);
    s.push_str(&format!("  {}", body(&call.request_body, request_size)));
    if call.reply.is_some() || call.reply_delivery.is_some() {
        let size = call
            .reply
            .as_ref()
            .or(call.reply_delivery.as_ref())
            .and_then(|l| l.body_size);
        s.push_str(&format!(" → {}", body(&call.reply_body, size)));
    }
    let outcome = call.outcome();
    let mut word = outcome.name().to_string();
    if let Some(error) = &call.error {
        word.push(' ');
        word.push_str(&escape(error));
    }
    if colour {
        let code = match outcome {
            CallOutcome::Answered => "32",
            CallOutcome::NoReply => "33",
            _ => "31",
        };
        word = format!("\x1b[{code}m{word}\x1b[0m");
    }
    s.push_str(&format!("  {word}"));
    if call.duplicates > 0 {
        s.push_str(&format!(" (+{} duplicate)", call.duplicates));
    }
    if call.deliveries > 1 {
        s.push_str(&format!(" (delivered {}×)", call.deliveries));
    }
    if call.evicted {
        s.push_str(" (evicted)");
    }
    let l = call.latency();
    if l.total.is_some() || l.to_server.is_some() || l.server.is_some() {
        s.push_str(&format!(
            "  {} ms = {} + {} + {}",
            ms_text(l.total),
            ms_text(l.to_server),
            ms_text(l.server),
            ms_text(l.to_client)
        ));
    }
    s
}

/// A correlation id for the text view: text when it is printable UTF-8 (escaped otherwise),
/// hex when it is not UTF-8; long ones shortened to their head and tail.
pub fn correlation_text(id: Option<&[u8]>) -> String {
    let Some(id) = id else {
        return "-".into();
    };
    let text = match std::str::from_utf8(id) {
        Ok(_) => escape(id),
        Err(_) => format!("0x{}", hex(id)),
    };
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 16 {
        return text;
    }
    let head: String = chars.iter().take(8).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}…{tail}")
}

pub fn ms(seconds: Option<f64>) -> Option<f64> {
    // Capture times are f64 seconds since the epoch (~0.2 µs apart): microseconds are exact.
    seconds.map(|s| (s * 1e6).round() / 1e3)
}

fn ms_text(seconds: Option<f64>) -> String {
    ms(seconds).map_or("-".into(), |v| format!("{v:.3}"))
}

/// Strings that are not UTF-8 become `{"hex": …}`, as in `decode --json`; none is `null`.
fn write_bytes(out: &mut dyn Write, bytes: Option<&[u8]>) -> io::Result<()> {
    match bytes {
        None => out.write_all(b"null"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::to_writer(out, s).map_err(io::Error::from),
            Err(_) => write!(out, "{{\"hex\":\"{}\"}}", hex(b)),
        },
    }
}

/// A number (f64 as serde_json writes it, so times read as in `decode --json`), or `null`.
fn write_f64(out: &mut dyn Write, v: Option<f64>) -> io::Result<()> {
    match v {
        Some(v) => serde_json::to_writer(out, &v).map_err(io::Error::from),
        None => out.write_all(b"null"),
    }
}

fn write_leg(out: &mut dyn Write, leg: &Option<Leg>) -> io::Result<()> {
    let Some(leg) = leg else {
        return out.write_all(b"null");
    };
    write!(
        out,
        "{{\"stream\":{},\"channel\":{},\"packet\":{},\"time\":",
        leg.stream, leg.channel, leg.packet
    )?;
    write_f64(out, leg.time)?;
    if let Some(v) = leg.body_size {
        write!(out, ",\"body_size\":{v}")?;
    }
    if let Some(v) = leg.delivery_tag {
        write!(out, ",\"delivery_tag\":{v}")?;
    }
    if let Some(v) = leg.redelivered {
        write!(out, ",\"redelivered\":{v}")?;
    }
    out.write_all(b"}")
}

/// One call as one line of JSON (keys in the README). Written field by field: building a
/// `serde_json::Value` per call cost more than the pairing itself.
pub fn write_call_json(out: &mut dyn Write, call: &Call) -> io::Result<()> {
    let l: Latency = call.latency();
    write!(out, "{{\"call\":{},\"correlation_id\":", call.number)?;
    write_bytes(out, call.correlation_id.as_deref())?;
    out.write_all(b",\"queue\":")?;
    write_bytes(out, call.queue.as_deref())?;
    out.write_all(b",\"reply_to\":")?;
    write_bytes(out, call.reply_to.as_deref())?;
    write!(out, ",\"outcome\":\"{}\",\"error\":", call.outcome().name())?;
    match &call.error {
        Some(e) => serde_json::to_writer(&mut *out, &String::from_utf8_lossy(e))?,
        None => out.write_all(b"null")?,
    }
    write!(out, ",\"duplicates\":{}", call.duplicates)?;
    for (name, leg) in [
        ("request", &call.request),
        ("delivery", &call.delivery),
        ("reply", &call.reply),
        ("reply_delivery", &call.reply_delivery),
        ("ack", &call.ack),
    ] {
        write!(out, ",\"{name}\":")?;
        write_leg(out, leg)?;
    }
    out.write_all(b",\"latency_ms\":{\"total\":")?;
    write_f64(out, ms(l.total))?;
    out.write_all(b",\"to_server\":")?;
    write_f64(out, ms(l.to_server))?;
    out.write_all(b",\"server\":")?;
    write_f64(out, ms(l.server))?;
    out.write_all(b",\"to_client\":")?;
    write_f64(out, ms(l.to_client))?;
    out.write_all(b"},\"returned\":")?;
    write_leg(out, &call.returned)?;
    write!(out, ",\"deliveries\":{},\"client\":", call.deliveries)?;
    write_bytes(out, call.client().map(str::as_bytes))?;
    out.write_all(b",\"server\":")?;
    write_bytes(out, call.server().map(str::as_bytes))?;
    write!(out, ",\"evicted\":{}}}", call.evicted)
}

/// The latencies of one leg in microseconds: an HDR histogram (3 significant figures) for the
/// percentiles, and the exact maximum.
#[derive(Debug)]
struct Leg1 {
    hist: Histogram<u64>,
    max: u64,
}

/// The four legs.
#[derive(Debug)]
struct Legs([Leg1; 4]);

impl Legs {
    fn new() -> Self {
        let leg = || Leg1 {
            // 3 significant figures always fit (1..=5 are valid): the fallback is unreachable.
            hist: Histogram::new(3).unwrap_or_else(|_| Histogram::new(2).expect("sig figs")),
            max: 0,
        };
        Legs([leg(), leg(), leg(), leg()])
    }

    fn record(&mut self, l: &Latency) {
        for (leg, v) in self
            .0
            .iter_mut()
            .zip([l.total, l.to_server, l.server, l.to_client])
        {
            // A negative leg (clocks of a merged capture) is not a latency: left out.
            if let Some(us) = v.filter(|s| *s >= 0.0).map(|s| (s * 1e6).round() as u64) {
                // The histogram resizes itself; a value beyond even that is left out.
                if leg.hist.record(us).is_ok() {
                    leg.max = leg.max.max(us);
                }
            }
        }
    }
}

/// The text view's summary: counts, latency percentiles, problems, closes.
#[derive(Debug, Default)]
pub struct Summary {
    outcomes: HashMap<CallOutcome, u64>,
    calls: u64,
    duplicates: u64,
    evicted: u64,
    legs: Option<Legs>,
    /// Server address → calls and their legs; at most `SERVERS`, then `others`.
    servers: BTreeMap<String, (u64, Legs)>,
    others: Option<(u64, Legs)>,
    /// Problems by kind: a count and the first `LISTED` lines.
    problems: BTreeMap<&'static str, (u64, Vec<String>)>,
    /// Closes by (what, code, text, side): count.
    closes: BTreeMap<(String, u16, String, &'static str), u64>,
}

fn place(leg: &Leg) -> String {
    format!(
        "stream {} ch {} packet {}",
        leg.stream, leg.channel, leg.packet
    )
}

fn call_ref(call: Option<u64>) -> String {
    call.map_or("not a call".into(), |n| format!("call #{n}"))
}

impl Summary {
    /// Count a call.
    pub fn call(&mut self, call: &Call) {
        self.calls += 1;
        *self.outcomes.entry(call.outcome()).or_default() += 1;
        self.duplicates += u64::from(call.duplicates);
        self.evicted += u64::from(call.evicted);
        let latency = call.latency();
        self.legs.get_or_insert_with(Legs::new).record(&latency);
        if let Some(server) = call.server() {
            let entry = if self.servers.len() < SERVERS || self.servers.contains_key(server) {
                self.servers
                    .entry(server.to_string())
                    .or_insert_with(|| (0, Legs::new()))
            } else {
                self.others.get_or_insert_with(|| (0, Legs::new()))
            };
            entry.0 += 1;
            entry.1.record(&latency);
        }
    }

    fn note(&mut self, kind: &'static str, line: String) {
        let (count, lines) = self.problems.entry(kind).or_default();
        *count += 1;
        if lines.len() < LISTED {
            lines.push(line);
        }
    }

    /// Note a problem.
    pub fn problem(&mut self, problem: &Problem) {
        match problem {
            Problem::Redelivered { call, delivery } => self.note(
                "redelivered",
                format!(
                    "{}: tag {} at {}",
                    call_ref(*call),
                    delivery.delivery_tag.unwrap_or(0),
                    place(delivery)
                ),
            ),
            Problem::Rejected {
                call,
                delivery,
                by,
                method,
                requeue,
            } => self.note(
                "rejected or nacked",
                format!(
                    "{}: basic.{method} of tag {} (delivered at packet {}) at {}, requeue {requeue}",
                    call_ref(*call),
                    delivery.delivery_tag.unwrap_or(0),
                    delivery.packet,
                    place(by)
                ),
            ),
            Problem::Unacked {
                call,
                delivery,
                why,
                at,
            } => {
                let kind = match why {
                    Unacked::EndOfCapture => "unacked at the end of the capture",
                    _ => "unacked when their channel or connection ended",
                };
                let ended = at
                    .as_ref()
                    .map(|l| format!(", ended at packet {}", l.packet))
                    .unwrap_or_default();
                self.note(
                    kind,
                    format!(
                        "{}: tag {} delivered at {} to {}: {}{ended}",
                        call_ref(*call),
                        delivery.delivery_tag.unwrap_or(0),
                        place(delivery),
                        delivery.endpoints.client,
                        why.describe()
                    ),
                );
            }
            Problem::Closed {
                at,
                by,
                code,
                text,
                cause,
            } => {
                let what = if at.channel == 0 {
                    "connection.close".to_string()
                } else {
                    "channel.close".to_string()
                };
                let side = by.name();
                *self
                    .closes
                    .entry((what.clone(), *code, escape(text), side))
                    .or_default() += 1;
                if *code != 200 {
                    let cause = if *cause == (0, 0) {
                        String::new()
                    } else {
                        format!(" (caused by method {}.{})", cause.0, cause.1)
                    };
                    self.note(
                        "closed with an error",
                        format!(
                            "{what} {code} \"{}\" sent by the {side} at {}{cause}",
                            escape(text),
                            place(at)
                        ),
                    );
                }
            }
            Problem::HeartbeatGap {
                at,
                side,
                interval,
                gap,
                since_packet,
            } => self.note(
                "heartbeat gaps",
                format!(
                    "stream {} {}: silent {gap:.3} s (heartbeat {interval} s), packets {since_packet} to {}",
                    at.stream,
                    match side {
                        Side::Client => "client",
                        Side::Broker => "broker",
                    },
                    at.packet
                ),
            ),
            Problem::LateReply { call, at } => self.note(
                "late replies (after their call was reported)",
                format!("call #{call}: at {}", place(at)),
            ),
            Problem::Evicted { call } => self.note(
                "calls let go unfinished (too many pending)",
                format!("call #{call}"),
            ),
        }
    }

    /// Print the summary.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        writeln!(out)?;
        let outcomes: Vec<String> = CallOutcome::ALL
            .iter()
            .filter_map(|o| {
                let n = self.outcomes.get(o).copied().unwrap_or(0);
                (n > 0).then(|| format!("{} {n}", o.name()))
            })
            .collect();
        let outcomes = if outcomes.is_empty() {
            String::new()
        } else {
            format!(": {}", outcomes.join(", "))
        };
        writeln!(out, "calls: {}{outcomes}", self.calls)?;
        writeln!(out, "duplicate replies: {}", self.duplicates)?;
        if let Some(legs) = self
            .legs
            .as_ref()
            .filter(|l| l.0.iter().any(|leg| !leg.hist.is_empty()))
        {
            writeln!(out)?;
            writeln!(
                out,
                "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "latency (ms)", "calls", "p50", "p90", "p99", "max"
            )?;
            for (name, h) in ["total", "to server", "server", "to client"]
                .iter()
                .zip(&legs.0)
            {
                writeln!(out, "  {name:<12} {}", percentiles(h))?;
            }
        }
        if !self.servers.is_empty() {
            writeln!(out)?;
            writeln!(
                out,
                "{:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "per server (ms)",
                "calls",
                "server p50",
                "p90",
                "p99",
                "max",
                "total p50",
                "p90",
                "p99",
                "max"
            )?;
            let rows = self
                .servers
                .iter()
                .map(|(name, row)| (escape(name.as_bytes()), row))
                .chain(self.others.iter().map(|row| ("other servers".into(), row)));
            for (name, (calls, legs)) in rows {
                writeln!(
                    out,
                    "  {name:<30} {calls:>9} {} {}",
                    quantiles(&legs.0[2]),
                    quantiles(&legs.0[0])
                )?;
            }
        }
        writeln!(out)?;
        if self.problems.is_empty() {
            writeln!(out, "problems: none")?;
        } else {
            writeln!(out, "problems:")?;
            for (kind, (count, lines)) in &self.problems {
                writeln!(out, "  {kind}: {count}")?;
                for line in lines {
                    writeln!(out, "    {line}")?;
                }
                if *count > lines.len() as u64 {
                    writeln!(out, "    … and {} more", count - lines.len() as u64)?;
                }
            }
        }
        if !self.closes.is_empty() {
            writeln!(out)?;
            writeln!(out, "closes:")?;
            for ((what, code, text, side), n) in &self.closes {
                writeln!(
                    out,
                    "  {n:>6} × {what} {code} \"{text}\" sent by the {side}"
                )?;
            }
        }
        Ok(())
    }
}

/// `calls p50 p90 p99 max` of one leg, in ms.
fn percentiles(leg: &Leg1) -> String {
    format!("{:>9} {}", leg.hist.len(), quantiles(leg))
}

/// `p50 p90 p99 max` of one leg, in ms (`-` when empty): percentiles to the histogram's 0.1 %,
/// the maximum exact.
fn quantiles(leg: &Leg1) -> String {
    let h = &leg.hist;
    if h.is_empty() {
        return format!("{:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-");
    }
    let q = |q: f64| {
        (h.median_equivalent(h.value_at_quantile(q)) as f64 / 1e3).min(leg.max as f64 / 1e3)
    };
    format!(
        "{:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        q(0.5),
        q(0.9),
        q(0.99),
        leg.max as f64 / 1e3
    )
}
