//! Hex dumps as people paste them, back into packets.
//!
//! Two shapes:
//! - **Offset dumps**: `tshark -x` and Wireshark's "Copy as Hex Dump" (offset, hex, ASCII
//!   column), `xxd` (`00000010: 4500 003c …  E..<`), `hexdump -C` (`|ASCII|`, `*` for repeated
//!   lines, a final offset-only line), `od -Ax -tx1` (no ASCII) and text2pcap's input. A packet
//!   ends at a blank line or where the offset restarts at 0. In tshark's labelled sections
//!   (`Frame (N bytes):`, `Reassembled TCP (N bytes):`) only the frame's own bytes are kept:
//!   reassembly is ours to do.
//! - **Plain hex**: digits with spaces, colons, commas or `0x` prefixes; blank lines separate
//!   packets.
//!
//! The ASCII column is never read as hex: how many bytes a line holds comes from the next line's
//! offset when there is one, and otherwise from the candidate split whose remainder *is* the
//! ASCII rendering of the bytes before it.

use std::io::BufRead;

/// A line we could not read as hex, in plain-hex input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct HexError {
    /// 1-based line number.
    pub line: u64,
    /// What was wrong.
    pub message: String,
}

/// Largest packet an offset dump may describe (offsets beyond are refused, so a typo'd offset
/// cannot make us allocate gigabytes of padding).
const MAX_PACKET: u64 = 64 * 1024 * 1024;

/// Largest jump in offsets between two lines without a `*` between them: more than a line's
/// worth is a typo or noise, not bytes to pad with zeros.
const MAX_GAP: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Offsets,
    Plain,
}

#[derive(Debug)]
enum Line {
    Data { offset: u64, text: String },
    Repeat,
}

/// The packets of a hex dump, read line by line.
#[derive(Debug)]
pub struct HexPackets<R> {
    input: R,
    mode: Mode,
    line_no: u64,
    /// Offset-dump lines of the section being read.
    lines: Vec<Line>,
    /// The label of that section when it is not the frame's own bytes.
    section: Option<String>,
    /// The frame's own bytes, once its section is over.
    frame: Option<Vec<u8>>,
    /// Other labelled sections of the packet (tshark's reassembled PDUs).
    extras: Vec<(String, Vec<u8>)>,
    /// Plain-hex digits of the packet being read.
    plain: Vec<u8>,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> HexPackets<R> {
    /// Read packets from `input`.
    pub fn new(input: R) -> Self {
        HexPackets {
            input,
            mode: Mode::Undecided,
            line_no: 0,
            lines: Vec::new(),
            section: None,
            frame: None,
            extras: Vec::new(),
            plain: Vec::new(),
            done: false,
            buf: Vec::new(),
        }
    }

    /// Close the section being read.
    fn end_section(&mut self) {
        if self.lines.is_empty() {
            return;
        }
        let bytes = assemble(&self.lines);
        self.lines.clear();
        match self.section.take() {
            Some(label) => self.extras.push((label, bytes)),
            None => {
                self.frame
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&bytes);
            }
        }
    }

    /// The packet being gathered, if any, now complete.
    fn take(&mut self) -> Option<HexPacket> {
        if self.mode == Mode::Plain {
            return (!self.plain.is_empty()).then(|| HexPacket {
                bytes: std::mem::take(&mut self.plain),
                sections: Vec::new(),
            });
        }
        self.end_section();
        self.section = None;
        let sections = std::mem::take(&mut self.extras);
        let bytes = self.frame.take().filter(|b| !b.is_empty())?;
        Some(HexPacket { bytes, sections })
    }

    fn next_packet(&mut self) -> Option<Result<HexPacket, HexError>> {
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            // Bytes, not `read_line`: an ASCII column in Latin-1 must not end the dump.
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    return self.take().map(Ok);
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(HexError {
                        line: self.line_no + 1,
                        message: format!("unreadable: {e}"),
                    }));
                }
            }
            self.line_no += 1;
            let bytes = std::mem::take(&mut self.buf);
            let line = String::from_utf8_lossy(&bytes);
            let result = self.line(line.trim_end_matches(['\n', '\r']));
            drop(line);
            self.buf = bytes;
            match result {
                Ok(Some(packet)) => return Some(Ok(packet)),
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// Take one line; a packet it completes comes back.
    fn line(&mut self, raw: &str) -> Result<Option<HexPacket>, HexError> {
        let line = raw.trim();
        if line.is_empty() {
            return Ok(self.take());
        }
        if let Some(label) = section_label(line) {
            if self.mode == Mode::Undecided {
                self.mode = Mode::Offsets;
            }
            if label.starts_with("Frame") {
                return Ok(self.take());
            }
            self.end_section();
            self.section = Some(label.to_string());
            return Ok(None);
        }
        if line.starts_with('#') {
            return Ok(None);
        }
        if self.mode == Mode::Undecided {
            if let Some((0, _)) = offset_line(line) {
                self.mode = Mode::Offsets;
            } else if is_plain_hex(line) {
                self.mode = Mode::Plain;
            } else {
                // Text before the first dump (a tshark -V tree, a heading): not ours to read.
                return Ok(None);
            }
        }
        match self.mode {
            Mode::Plain => {
                self.plain_line(line)?;
                Ok(None)
            }
            _ => Ok(self.offset_line(line)),
        }
    }

    fn offset_line(&mut self, line: &str) -> Option<HexPacket> {
        if line == "*" {
            if !self.lines.is_empty() {
                self.lines.push(Line::Repeat);
            }
            return None;
        }
        let (offset, rest) = offset_line(line)?;
        if offset > MAX_PACKET {
            return None;
        }
        // Offsets restarting at 0 start the next packet (or the next section of this one).
        let done = match (offset, &self.section) {
            (0, None) => self.take(),
            (0, Some(_)) => {
                self.end_section();
                None
            }
            _ => None,
        };
        self.lines.push(Line::Data {
            offset,
            text: rest.to_string(),
        });
        done
    }

    fn plain_line(&mut self, line: &str) -> Result<(), HexError> {
        let mut pending: Option<u8> = None;
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("0x") || rest.starts_with("0X") {
                if pending.is_some() {
                    return Err(self.plain_error("`0x` inside a byte"));
                }
                rest = &rest[2..];
                continue;
            }
            rest = &rest[c.len_utf8()..];
            if let Some(v) = c.to_digit(16) {
                match pending.take() {
                    Some(hi) => self.plain.push(hi << 4 | v as u8),
                    None => pending = Some(v as u8),
                }
            } else if c.is_whitespace() || matches!(c, ':' | ',' | '-' | ';' | '"' | '\'') {
                if pending.is_some() && !c.is_whitespace() {
                    return Err(self.plain_error("odd number of hex digits in a byte"));
                }
                if let Some(hi) = pending.take() {
                    // A lone digit between separators is a byte written without its leading 0.
                    self.plain.push(hi);
                }
            } else {
                return Err(self.plain_error(&format!("{c:?} is not a hex digit")));
            }
        }
        if let Some(hi) = pending {
            self.plain.push(hi);
        }
        Ok(())
    }

    fn plain_error(&self, message: &str) -> HexError {
        HexError {
            line: self.line_no,
            message: message.to_string(),
        }
    }
}

/// One packet of a hex dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HexPacket {
    /// The packet's own bytes.
    pub bytes: Vec<u8>,
    /// tshark's other labelled sections, e.g. `("Reassembled TCP", pdu)`.
    pub sections: Vec<(String, Vec<u8>)>,
}

impl<R: BufRead> Iterator for HexPackets<R> {
    type Item = Result<HexPacket, HexError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_packet()
    }
}

/// `Frame (74 bytes):`, `Reassembled TCP (131072 bytes):` …: the label of a tshark section.
fn section_label(line: &str) -> Option<&str> {
    let head = line.strip_suffix("bytes):")?.trim_end();
    let (label, count) = head.rsplit_once('(')?;
    count
        .chars()
        .all(|c| c.is_ascii_digit())
        .then_some(label.trim())
        .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// A line of plain hex: hex digits and separators only.
fn is_plain_hex(line: &str) -> bool {
    let cleaned = line.replace("0x", "").replace("0X", "");
    cleaned.chars().any(|c| c.is_ascii_hexdigit())
        && cleaned.chars().all(|c| {
            c.is_ascii_hexdigit() || c.is_whitespace() || matches!(c, ':' | ',' | '-' | ';')
        })
}

/// An offset dump line: its offset and the text after it. The offset is hex, with a `:` (xxd)
/// or followed by two spaces (tshark, hexdump -C, Wireshark), or long enough that no plain hex
/// byte group looks like it (od's 6–7 digits); a line of only an offset ends a dump.
fn offset_line(line: &str) -> Option<(u64, &str)> {
    let end = line.find(char::is_whitespace).unwrap_or(line.len());
    let (token, rest) = line.split_at(end);
    let (digits, colon) = match token.strip_suffix(':') {
        Some(d) => (d, true),
        None => (token, false),
    };
    if digits.len() < 2 || digits.len() > 16 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let offset = u64::from_str_radix(digits, 16).ok()?;
    let wide_gap = rest.starts_with("  ") || rest.starts_with('\t');
    let accepted = colon
        || (digits.len() >= 4 && (wide_gap || rest.is_empty()))
        || digits.len() >= 6
        || (digits.len() >= 3 && rest.starts_with(' '));
    accepted.then_some((offset, rest))
}

/// Bytes of one packet from its offset lines.
fn assemble(lines: &[Line]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    let mut repeat = false;
    for (i, line) in lines.iter().enumerate() {
        match line {
            Line::Data { offset, text } => {
                let want = match lines.get(i + 1) {
                    Some(Line::Data { offset: n, .. }) if n > offset => {
                        usize::try_from(n - offset).ok()
                    }
                    _ => None,
                };
                let Ok(offset) = usize::try_from(*offset) else {
                    continue;
                };
                let gap = offset.saturating_sub(out.len());
                if repeat {
                    // `*` (hexdump -C, od): the line before repeats up to this offset.
                    while out.len() < offset && !last.is_empty() {
                        let n = (offset - out.len()).min(last.len());
                        out.extend_from_slice(last.get(..n).unwrap_or_default());
                    }
                } else if gap > MAX_GAP {
                    // An offset far past the bytes so far is no offset of this dump.
                    continue;
                }
                repeat = false;
                out.resize(offset, 0);
                let bytes = line_bytes(text, want);
                out.extend_from_slice(&bytes);
                last = bytes;
            }
            Line::Repeat => repeat = true,
        }
    }
    out
}

/// One token of hex digits: where it ends in the line and its bytes.
fn hex_token(token: &str) -> Option<Vec<u8>> {
    if token.is_empty() || token.len() % 2 != 0 || token.len() > 16 {
        return None;
    }
    let digits: Option<Vec<u8>> = token
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect();
    digits
}

/// The bytes of a line's data part (after the offset). `want`: how many the offsets say.
fn line_bytes(text: &str, want: Option<usize>) -> Vec<u8> {
    // hexdump -C puts its ASCII column between bars, od -tx1z between angle brackets.
    let text = text.split(['|', '>']).next().unwrap_or_default();
    let mut bytes = Vec::new();
    // (bytes so far, end of the token in `text`) after each hex token.
    let mut prefixes: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    for token in text.split_whitespace() {
        let Some(start) = text.get(pos..).and_then(|t| t.find(token)).map(|i| i + pos) else {
            break;
        };
        let Some(token_bytes) = hex_token(token) else {
            break;
        };
        bytes.extend_from_slice(&token_bytes);
        pos = start + token.len();
        prefixes.push((bytes.len(), pos));
    }
    if let Some(want) = want {
        if let Some(&(n, _)) = prefixes.iter().rev().find(|(n, _)| *n <= want) {
            bytes.truncate(n);
            return bytes;
        }
    }
    let mut empty_rest = None;
    for &(n, end) in prefixes.iter().rev() {
        let rest = text.get(end..).unwrap_or_default();
        let trimmed = rest.trim();
        if trimmed.is_empty() {
            empty_rest.get_or_insert(n);
            continue;
        }
        let gap = rest.len() - rest.trim_start().len();
        if gap >= 2 && ascii_column(bytes.get(..n).unwrap_or_default()).trim() == trimmed {
            bytes.truncate(n);
            return bytes;
        }
    }
    if let Some(n) = empty_rest {
        bytes.truncate(n);
        return bytes;
    }
    // No ASCII column matched (another tool's rendering): stop at the widest gap.
    let cut = prefixes
        .iter()
        .find(|(_, end)| {
            text.get(*end..)
                .is_some_and(|r| r.starts_with("  ") || r.starts_with('\t'))
        })
        .map(|(n, _)| *n)
        .unwrap_or(bytes.len());
    bytes.truncate(cut);
    bytes
}

/// How dump tools render bytes in the ASCII column: printable ASCII as is, the rest as `.`.
fn ascii_column(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                '.'
            }
        })
        .collect()
}

/// Every packet of a hex dump held in memory (tests, fuzzing).
pub fn parse(text: &str) -> Result<Vec<Vec<u8>>, HexError> {
    HexPackets::new(text.as_bytes())
        .map(|p| p.map(|p| p.bytes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tshark_ascii_column_that_looks_like_hex_is_not_read() {
        // The last line's ASCII column "de" is itself valid hex.
        let dump = "0000  41 4d 51 50 00 00 09 01 41 4d 51 50 00 00 09 01   AMQP....AMQP....\n\
                    0010  64 65                                             de\n";
        let p = parse(dump).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].len(), 18);
        assert_eq!(&p[0][16..], b"de");
    }

    #[test]
    fn xxd_hexdump_od_and_plain() {
        let xxd = "00000000: 414d 5150 0000 0901  AMQP....\n";
        assert_eq!(parse(xxd).unwrap(), [b"AMQP\0\0\x09\x01".to_vec()]);
        let hd = "00000000  41 4d 51 50 00 00 09 01  41 41 41 41 41 41 41 41  |AMQP....AAAAAAAA|\n\
                  *\n\
                  00000030  42                                               |B|\n\
                  00000031\n";
        let p = parse(hd).unwrap();
        assert_eq!(p[0].len(), 49);
        assert_eq!(&p[0][16..24], b"AMQP\0\0\x09\x01");
        assert_eq!(p[0][48], b'B');
        let od = "000000 41 4d 51 50 00 00 09 01\n000008\n";
        assert_eq!(parse(od).unwrap(), [b"AMQP\0\0\x09\x01".to_vec()]);
        let plain = "0x41, 0x4d 51:50 00000901\n\n08 00 00 00 00 00 00 ce\n";
        assert_eq!(
            parse(plain).unwrap(),
            [
                b"AMQP\0\0\x09\x01".to_vec(),
                vec![8, 0, 0, 0, 0, 0, 0, 0xce]
            ]
        );
        // Text that is no hex dump yields nothing; a bad digit inside plain hex is an error.
        assert!(parse("hello world").unwrap().is_empty());
        assert!(parse("41 4d\n4g").is_err());
    }

    #[test]
    fn tshark_sections_keep_the_frame_only_and_offsets_restart_packets() {
        let dump = "Frame (2 bytes):\n0000  41 42                                             AB\n\
                    Reassembled TCP (4 bytes):\n0000  01 02 03 04                                       ....\n\n\
                    0000  43                                                C\n";
        assert_eq!(parse(dump).unwrap(), [b"AB".to_vec(), b"C".to_vec()]);
    }
}
