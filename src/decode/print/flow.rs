//! `--flow`: the conversation as a sequence diagram, like Wireshark's Flow Graph: one column per
//! peer, time going down, one arrow per method with its content folded in.
//!
//! The diagram needs every peer before its first line, so arrows are kept until the end (a
//! method's worth of text each); use it on conversations, not on 100 MB captures.

use std::collections::HashMap;
use std::io::{self, Write};

use amqp_codec::{Frame, Method};

use super::{escape, info, preview, Printer};
use amqp_dissect::{Event, Side, What};

/// Arrows kept at most; the rest are counted, not drawn.
const MAX_ARROWS: usize = 100_000;
/// Longest label kept.
const MAX_LABEL: usize = 96;
/// Widest column: longer labels are cut in the drawing and printed whole after it.
const COLUMN_MAX: usize = 48;

/// One arrow: a method frame (its content folded in), or, when collected for HTML, a malformed
/// frame.
#[derive(Debug)]
pub struct Arrow {
    /// Capture time of the packet.
    pub time: Option<f64>,
    /// Packet number.
    pub packet: u64,
    /// Sending peer (index into the peers).
    pub from: usize,
    /// Receiving peer.
    pub to: usize,
    /// tshark-style Info text, content folded in.
    pub label: String,
    /// TCP stream.
    pub stream: u32,
    /// Sender's side of the stream.
    pub side: Side,
    /// Frame offset in its stream direction.
    pub offset: u64,
    /// AMQP channel (0 for a malformed frame with no readable header).
    pub channel: u16,
    /// A method frame (not a protocol header, heartbeat or malformed frame).
    pub method: bool,
    /// What it stands for, for colouring.
    pub kind: ArrowKind,
    /// The frame (and its content frames) as the tree view prints them: only when details are
    /// collected.
    pub detail: String,
}

/// What an arrow stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrowKind {
    /// A frame like any other.
    Normal,
    /// A method that reports trouble: a close with a code other than 200, a reject or nack, or a
    /// message whose header carries `x-error`.
    Error,
    /// `basic.return`: a message the broker could not route.
    Return,
    /// Bytes that are no frame (HTML only).
    Malformed,
}

/// A content-carrying method waiting for its header and body.
#[derive(Debug)]
struct Pending {
    arrow: usize,
    body_size: Option<u64>,
    received: u64,
    first_bytes: Vec<u8>,
    reply_to: Option<String>,
    /// The client that sent it, when it did.
    client: Option<usize>,
}

/// Prints the flow graph.
#[derive(Debug)]
pub struct FlowPrinter {
    mermaid: bool,
    flow: Flow,
}

impl FlowPrinter {
    /// A flow printer; Mermaid or text.
    pub fn new(mermaid: bool) -> Self {
        FlowPrinter {
            mermaid,
            flow: Flow::new(MAX_ARROWS, false),
        }
    }
}

/// The conversation's peers and arrows, collected for a flow view (text, Mermaid, HTML).
#[derive(Debug)]
pub struct Flow {
    /// Peers by address, in order of appearance, with whether each is a broker.
    peers: Vec<(String, bool)>,
    index: HashMap<String, usize>,
    /// The arrows, in order.
    pub arrows: Vec<Arrow>,
    pending: HashMap<(u32, Side, u16), Pending>,
    /// Arrows not kept (beyond `max_arrows`).
    pub dropped: u64,
    /// Clients that published with a reply-to: RPC callers, drawn left of the broker.
    callers: Vec<usize>,
    max_arrows: usize,
    /// Collect each arrow's detail and draw malformed frames too (HTML).
    details: bool,
}

/// Detail kept per arrow, at most (the tree of a frame with a big table or body is cut).
const MAX_DETAIL: usize = 8 * 1024;

impl Flow {
    /// A collector keeping up to `max_arrows` arrows, with details (for HTML) or without.
    pub fn new(max_arrows: usize, details: bool) -> Self {
        Flow {
            peers: Vec::new(),
            index: HashMap::new(),
            arrows: Vec::new(),
            pending: HashMap::new(),
            dropped: 0,
            callers: Vec::new(),
            max_arrows,
            details,
        }
    }

    /// The peers: address and whether it is a broker.
    pub fn peers(&self) -> &[(String, bool)] {
        &self.peers
    }

    fn peer(&mut self, name: &str, broker: bool) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.peers.push((name.to_string(), broker));
        self.index.insert(name.to_string(), self.peers.len() - 1);
        self.peers.len() - 1
    }

    /// Fold in whatever content is still pending (end of input).
    pub fn finish(&mut self) {
        let keys: Vec<_> = self.pending.keys().copied().collect();
        for key in keys {
            self.complete(key);
        }
    }

    fn complete(&mut self, key: (u32, Side, u16)) {
        let Some(p) = self.pending.remove(&key) else {
            return;
        };
        let Some(arrow) = self.arrows.get_mut(p.arrow) else {
            return;
        };
        if let (Some(r), Some(client)) = (p.reply_to, p.client) {
            arrow.label.push_str(&format!(" reply-to={r}"));
            if !self.callers.contains(&client) {
                self.callers.push(client);
            }
        }
        if let Some(size) = p.body_size {
            arrow
                .label
                .push_str(&format!(" [{size} B \"{}\"]", preview(&p.first_bytes, 12)));
        }
    }

    /// Columns left to right: RPC callers, the brokers, the other clients — so a request reads
    /// left to right and its reply right to left. Without callers, clients alternate sides.
    pub fn columns(&self) -> Vec<usize> {
        let clients: Vec<usize> = (0..self.peers.len())
            .filter(|&i| !self.peers[i].1)
            .collect();
        let brokers: Vec<usize> = (0..self.peers.len()).filter(|&i| self.peers[i].1).collect();
        let (left, right): (Vec<usize>, Vec<usize>) = if self.callers.is_empty() {
            (
                clients.iter().step_by(2).rev().copied().collect(),
                clients.iter().skip(1).step_by(2).copied().collect(),
            )
        } else {
            clients.iter().partition(|&c| self.callers.contains(c))
        };
        left.into_iter().chain(brokers).chain(right).collect()
    }

    fn when(&self, arrow: &Arrow, first: Option<f64>) -> String {
        match (arrow.time, first) {
            (Some(t), Some(f)) => format!("{:.6}", t - f),
            _ => format!("#{}", arrow.packet),
        }
    }

    /// `broker ADDR` or `client ADDR`.
    pub fn name(&self, peer: usize) -> String {
        match self.peers.get(peer) {
            Some((addr, true)) => format!("broker {addr}"),
            Some((addr, false)) => format!("client {addr}"),
            None => String::new(),
        }
    }

    /// The first arrow's time: times are shown relative to it.
    pub fn first_time(&self) -> Option<f64> {
        self.arrows.iter().find_map(|a| a.time)
    }

    fn write_mermaid(&self, out: &mut dyn Write) -> io::Result<()> {
        let first = self.first_time();
        writeln!(out, "sequenceDiagram")?;
        let cols = self.columns();
        for &p in &cols {
            writeln!(
                out,
                "    participant P{p} as {}",
                mermaid_text(&self.name(p))
            )?;
        }
        for a in &self.arrows {
            writeln!(
                out,
                "    P{}->>P{}: {} {}",
                a.from,
                a.to,
                self.when(a, first),
                mermaid_text(&a.label)
            )?;
        }
        Ok(())
    }

    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let first = self.first_time();
        let cols = self.columns();
        let pos: HashMap<usize, usize> = cols.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let longest = self.arrows.iter().map(|a| a.label.chars().count()).max();
        let width = (longest.unwrap_or(0) + 6).clamp(24, COLUMN_MAX);
        let time_width = self
            .arrows
            .iter()
            .map(|a| self.when(a, first).len())
            .max()
            .unwrap_or(4)
            .max(4);
        let half = width / 2;
        let line_len = half + (cols.len().saturating_sub(1)) * width + half;
        // Header: each peer's name centred on its column.
        let mut head = vec![' '; line_len + width];
        for (i, &p) in cols.iter().enumerate() {
            let name: Vec<char> = self.name(p).chars().take(width - 2).collect();
            let centre = half + i * width;
            let start = centre.saturating_sub(name.len() / 2);
            for (k, c) in name.into_iter().enumerate() {
                if let Some(slot) = head.get_mut(start + k) {
                    *slot = c;
                }
            }
        }
        writeln!(
            out,
            "{:>time_width$}  {}",
            "time",
            head.iter().collect::<String>().trim_end()
        )?;
        for a in &self.arrows {
            let mut line = vec![' '; line_len];
            for i in 0..cols.len() {
                if let Some(slot) = line.get_mut(half + i * width) {
                    *slot = '|';
                }
            }
            let (Some(&from), Some(&to)) = (pos.get(&a.from), pos.get(&a.to)) else {
                continue;
            };
            if from == to {
                // A peer talking to itself (a connection between two equal addresses).
                continue;
            }
            let (l, r) = (half + from.min(to) * width, half + from.max(to) * width);
            for slot in line.iter_mut().take(r).skip(l + 1) {
                *slot = '-';
            }
            if from < to {
                if let Some(slot) = line.get_mut(r - 1) {
                    *slot = '>';
                }
            } else if let Some(slot) = line.get_mut(l + 1) {
                *slot = '<';
            }
            let room = (r - l).saturating_sub(5);
            let label: Vec<char> = a.label.chars().collect();
            let shown: Vec<char> = if label.len() > room {
                let mut s: Vec<char> = label.iter().take(room.saturating_sub(1)).copied().collect();
                s.push('…');
                s
            } else {
                label.clone()
            };
            let start = l + 1 + ((r - l - 1).saturating_sub(shown.len())) / 2;
            for (k, c) in shown.iter().enumerate() {
                if let Some(slot) = line.get_mut(start + k) {
                    *slot = *c;
                }
            }
            let mut text: String = line.iter().collect::<String>().trim_end().to_string();
            if shown.len() < label.len() {
                text.push_str("   ");
                text.push_str(&a.label);
            }
            writeln!(out, "{:>time_width$}  {text}", self.when(a, first))?;
        }
        Ok(())
    }
}

/// Mermaid ends a message at `;` and reads `#…;` as an entity: keep labels plain.
fn mermaid_text(s: &str) -> String {
    s.replace(';', ",").replace('#', "no.")
}

impl Flow {
    /// Take one event.
    pub fn event(&mut self, event: &Event) {
        let malformed = match &event.what {
            What::Closed { .. } => return,
            What::Error { .. } => !self.details,
            What::Frame { .. } => false,
        };
        if malformed {
            return;
        }
        let client = self.peer(&event.endpoints.client, false);
        let broker = self.peer(&event.endpoints.broker, true);
        let (from, to) = match event.side {
            Side::Client => (client, broker),
            Side::Broker => (broker, client),
        };
        let (frame, length) = match &event.what {
            What::Frame { frame, length } => (frame, *length),
            What::Error {
                channel, message, ..
            } => {
                self.push(Arrow {
                    time: event.time,
                    packet: event.packet,
                    from,
                    to,
                    label: cut(format!("Malformed: {message}"), MAX_LABEL),
                    stream: event.stream,
                    side: event.side,
                    offset: event.offset,
                    channel: channel.unwrap_or(0),
                    method: false,
                    kind: ArrowKind::Malformed,
                    detail: cut(message.clone(), MAX_DETAIL),
                });
                return;
            }
            What::Closed { .. } => return,
        };
        let key = (event.stream, event.side, frame.channel());
        match frame {
            Frame::Header(_, h) => {
                let details = self.details;
                if let Some(p) = self.pending.get_mut(&key) {
                    p.body_size = Some(h.body_size);
                    p.reply_to = h.properties.reply_to.as_ref().map(|r| escape(r.as_bytes()));
                    if details {
                        let has_error = h
                            .properties
                            .headers
                            .as_ref()
                            .is_some_and(|t| t.get("x-error").is_some());
                        if let Some(arrow) = self.arrows.get_mut(p.arrow) {
                            if has_error {
                                arrow.kind = ArrowKind::Error;
                            }
                            add_detail(&mut arrow.detail, frame, length);
                        }
                    }
                    if h.body_size == 0 {
                        self.complete(key);
                    }
                }
                return;
            }
            Frame::Body(_, b) => {
                let details = self.details;
                if let Some(p) = self.pending.get_mut(&key) {
                    p.received += b.len() as u64;
                    if p.first_bytes.len() < 16 {
                        p.first_bytes
                            .extend_from_slice(b.get(..16 - p.first_bytes.len()).unwrap_or(b));
                    }
                    if details {
                        if let Some(arrow) = self.arrows.get_mut(p.arrow) {
                            add_detail(&mut arrow.detail, frame, length);
                        }
                    }
                    if p.received >= p.body_size.unwrap_or(u64::MAX) {
                        self.complete(key);
                    }
                }
                return;
            }
            _ => {}
        }
        self.complete(key);
        let mut detail = String::new();
        if self.details {
            add_detail(&mut detail, frame, length);
        }
        let kind = match frame {
            Frame::Method(_, m) => kind_of(m),
            _ => ArrowKind::Normal,
        };
        let pushed = self.push(Arrow {
            time: event.time,
            packet: event.packet,
            from,
            to,
            label: cut(info(frame), MAX_LABEL),
            stream: event.stream,
            side: event.side,
            offset: event.offset,
            channel: frame.channel(),
            method: matches!(frame, Frame::Method(..)),
            kind,
            detail,
        });
        if let (true, Frame::Method(_, m)) = (pushed, frame) {
            if m.has_content() {
                self.pending.insert(
                    key,
                    Pending {
                        arrow: self.arrows.len() - 1,
                        body_size: None,
                        received: 0,
                        first_bytes: Vec::new(),
                        reply_to: None,
                        client: (event.side == Side::Client).then_some(from),
                    },
                );
            }
        }
    }

    /// Keep an arrow, or count it when `max_arrows` are kept; whether it was kept.
    fn push(&mut self, arrow: Arrow) -> bool {
        if self.arrows.len() >= self.max_arrows {
            self.dropped += 1;
            return false;
        }
        self.arrows.push(arrow);
        true
    }
}

/// A label cut to `max` characters, `…` marking the cut.
fn cut(label: String, max: usize) -> String {
    if label.chars().count() > max {
        label.chars().take(max - 1).chain(['…']).collect()
    } else {
        label
    }
}

/// Closes with an error code, rejects and nacks report trouble; returns are a colour of their own.
fn kind_of(method: &Method) -> ArrowKind {
    match method {
        Method::BasicReturn(_) => ArrowKind::Return,
        Method::ChannelClose(c) if c.reply_code != 200 => ArrowKind::Error,
        Method::ConnectionClose(c) if c.reply_code != 200 => ArrowKind::Error,
        Method::BasicReject(_) | Method::BasicNack(_) => ArrowKind::Error,
        _ => ArrowKind::Normal,
    }
}

/// Append a frame's tree rendering to an arrow's detail, up to `MAX_DETAIL`.
fn add_detail(detail: &mut String, frame: &Frame, length: u32) {
    if detail.len() >= MAX_DETAIL {
        return;
    }
    let mut text = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = super::tree::write_frame(&mut text, frame, length);
    if !detail.is_empty() {
        detail.push('\n');
    }
    detail.push_str(&String::from_utf8_lossy(&text));
    if detail.len() > MAX_DETAIL {
        let mut end = MAX_DETAIL;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
        detail.push_str("\n…");
    }
}

impl Printer for FlowPrinter {
    fn event(&mut self, event: &Event, _out: &mut dyn Write) -> io::Result<()> {
        self.flow.event(event);
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        self.flow.finish();
        if self.mermaid {
            self.flow.write_mermaid(out)?;
        } else {
            self.flow.write_text(out)?;
        }
        if self.flow.dropped > 0 {
            writeln!(out, "({} more frames not drawn)", self.flow.dropped)?;
        }
        Ok(())
    }
}
