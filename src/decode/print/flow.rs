//! `--flow`: the conversation as a sequence diagram, like Wireshark's Flow Graph: one column per
//! peer, time going down, one arrow per method with its content folded in.
//!
//! The diagram needs every peer before its first line, so arrows are kept until the end (a
//! method's worth of text each); use it on conversations, not on 100 MB captures.

use std::collections::HashMap;
use std::io::{self, Write};

use amqp_codec::Frame;

use super::{info, preview, Printer};
use amqp_dissect::{Event, Side, What};

/// Arrows kept at most; the rest are counted, not drawn.
const MAX_ARROWS: usize = 100_000;
/// Longest label kept.
const MAX_LABEL: usize = 96;
/// Widest column: longer labels are cut in the drawing and printed whole after it.
const COLUMN_MAX: usize = 48;

#[derive(Debug)]
struct Arrow {
    time: Option<f64>,
    packet: u64,
    from: usize,
    to: usize,
    label: String,
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
    /// Peers by address, in order of appearance, with whether each is a broker.
    peers: Vec<(String, bool)>,
    index: HashMap<String, usize>,
    arrows: Vec<Arrow>,
    pending: HashMap<(u32, Side, u16), Pending>,
    dropped: u64,
    /// Clients that published with a reply-to: RPC callers, drawn left of the broker.
    callers: Vec<usize>,
}

impl FlowPrinter {
    /// A flow printer; Mermaid or text.
    pub fn new(mermaid: bool) -> Self {
        FlowPrinter {
            mermaid,
            peers: Vec::new(),
            index: HashMap::new(),
            arrows: Vec::new(),
            pending: HashMap::new(),
            dropped: 0,
            callers: Vec::new(),
        }
    }

    fn peer(&mut self, name: &str, broker: bool) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.peers.push((name.to_string(), broker));
        self.index.insert(name.to_string(), self.peers.len() - 1);
        self.peers.len() - 1
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
    fn columns(&self) -> Vec<usize> {
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

    fn when(&self, arrow: &Arrow) -> String {
        let first = self.arrows.iter().find_map(|a| a.time);
        match (arrow.time, first) {
            (Some(t), Some(f)) => format!("{:.6}", t - f),
            _ => format!("#{}", arrow.packet),
        }
    }

    fn name(&self, peer: usize) -> String {
        match self.peers.get(peer) {
            Some((addr, true)) => format!("broker {addr}"),
            Some((addr, false)) => format!("client {addr}"),
            None => String::new(),
        }
    }

    fn write_mermaid(&self, out: &mut dyn Write) -> io::Result<()> {
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
                self.when(a),
                mermaid_text(&a.label)
            )?;
        }
        Ok(())
    }

    fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        let cols = self.columns();
        let pos: HashMap<usize, usize> = cols.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        let longest = self.arrows.iter().map(|a| a.label.chars().count()).max();
        let width = (longest.unwrap_or(0) + 6).clamp(24, COLUMN_MAX);
        let time_width = self
            .arrows
            .iter()
            .map(|a| self.when(a).len())
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
            writeln!(out, "{:>time_width$}  {text}", self.when(a))?;
        }
        Ok(())
    }
}

/// Mermaid ends a message at `;` and reads `#…;` as an entity: keep labels plain.
fn mermaid_text(s: &str) -> String {
    s.replace(';', ",").replace('#', "no.")
}

impl Printer for FlowPrinter {
    fn event(&mut self, event: &Event, _out: &mut dyn Write) -> io::Result<()> {
        if let What::Closed { .. } = event.what {
            return Ok(());
        }
        let client = self.peer(&event.endpoints.client, false);
        let broker = self.peer(&event.endpoints.broker, true);
        let (from, to) = match event.side {
            Side::Client => (client, broker),
            Side::Broker => (broker, client),
        };
        let What::Frame { frame, .. } = &event.what else {
            return Ok(());
        };
        let key = (event.stream, event.side, frame.channel());
        match frame {
            Frame::Header(_, h) => {
                if let Some(p) = self.pending.get_mut(&key) {
                    p.body_size = Some(h.body_size);
                    p.reply_to = h
                        .properties
                        .reply_to
                        .as_ref()
                        .map(|r| r.to_string_lossy().into_owned());
                    if h.body_size == 0 {
                        self.complete(key);
                    }
                }
                return Ok(());
            }
            Frame::Body(_, b) => {
                if let Some(p) = self.pending.get_mut(&key) {
                    p.received += b.len() as u64;
                    if p.first_bytes.len() < 16 {
                        p.first_bytes
                            .extend_from_slice(b.get(..16 - p.first_bytes.len()).unwrap_or(b));
                    }
                    if p.received >= p.body_size.unwrap_or(u64::MAX) {
                        self.complete(key);
                    }
                }
                return Ok(());
            }
            _ => {}
        }
        self.complete(key);
        if self.arrows.len() >= MAX_ARROWS {
            self.dropped += 1;
            return Ok(());
        }
        let mut label = info(frame);
        if label.chars().count() > MAX_LABEL {
            label = label.chars().take(MAX_LABEL - 1).chain(['…']).collect();
        }
        self.arrows.push(Arrow {
            time: event.time,
            packet: event.packet,
            from,
            to,
            label,
        });
        if let Frame::Method(_, m) = frame {
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
        Ok(())
    }

    fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let keys: Vec<_> = self.pending.keys().copied().collect();
        for key in keys {
            self.complete(key);
        }
        if self.mermaid {
            self.write_mermaid(out)?;
        } else {
            self.write_text(out)?;
        }
        if self.dropped > 0 {
            writeln!(out, "({} more frames not drawn)", self.dropped)?;
        }
        Ok(())
    }
}
