//! Peer strings made safe to print.
//!
//! Every string in AMQP is octets chosen by the peer: a reply text, a queue name, a consumer tag
//! or a body preview may hold a NUL, a carriage return or an ANSI escape that would rewrite the
//! reader's terminal or forge a log line. [`Escaped`] shows printable UTF-8 as itself and
//! everything else as a Rust-style escape, so what is printed is one line and says exactly which
//! bytes came.

use std::fmt;

/// Displays bytes from the wire as one printable line: printable UTF-8 unchanged (including
/// non-ASCII letters), `\n`, `\r`, `\t`, `\0` and `\\` escaped, other control characters as
/// `\u{1b}`, and bytes that are not UTF-8 as `\xff`.
///
/// ```
/// use amqp_codec::Escaped;
/// assert_eq!(Escaped(b"NOT_FOUND - no queue 'q'").to_string(), "NOT_FOUND - no queue 'q'");
/// assert_eq!(Escaped(b"\0\r\n\x1b[31m").to_string(), r"\0\r\n\u{1b}[31m");
/// assert_eq!(Escaped(b"caf\xc3\xa9 \xff").to_string(), r"café \xff");
/// ```
#[derive(Clone, Copy)]
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            let valid = chunk.valid();
            // Fast path: nothing to escape in this run of text.
            if !valid.chars().any(|c| c.is_control() || c == '\\') {
                f.write_str(valid)?;
            } else {
                for c in valid.chars() {
                    match c {
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        '\0' => f.write_str("\\0")?,
                        '\\' => f.write_str("\\\\")?,
                        c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                        c => fmt::Write::write_char(f, c)?,
                    }
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_control_character_and_invalid_byte() {
        for b in 0u8..=255 {
            let shown = Escaped(&[b]).to_string();
            assert!(
                !shown.chars().any(char::is_control),
                "byte {b:#04x} printed as {shown:?}"
            );
        }
        // C1 controls (U+0080..U+009F) arrive as valid UTF-8 and are escaped too.
        assert_eq!(Escaped("\u{9b}31m".as_bytes()).to_string(), r"\u{9b}31m");
        assert_eq!(Escaped(br"a\b").to_string(), r"a\\b");
    }
}
