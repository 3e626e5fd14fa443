//! The wire primitives: integers, short and long strings, packed bits.
//!
//! Decoding goes through `Reader`, a cursor over one frame's payload that never indexes out of
//! bounds: every read checks the bytes present first and fails with the offset *within the frame*
//! and what it was reading. Two kinds of reads, on purpose:
//! - the fixed-layout fields of methods and headers (the hot path: every RPC call) are
//!   `first_chunk` + `from_be_bytes`, because nom's `be_*` read byte by byte and were not inlined
//!   here: they cost 15-30% of decode time in the benches (see BENCHMARKS.md);
//! - field tables are validated in place with `Reader::skip` and kept as slices (see
//!   `table.rs`), and the protocol header is parsed with nom's streaming parsers (whose
//!   `Incomplete` is exactly the "need more bytes" a stream decoder reports).
//!
//! Strings are zero-copy `Bytes` slices of the frame. Encoding goes through `Writer`, which
//! appends to a `BytesMut` and refuses (rather than truncates) a value too long for its length
//! field.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

macro_rules! byte_string {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// AMQP strings are octet sequences; RabbitMQ and every client put UTF-8 in them, but the
        /// codec keeps the exact bytes so that whatever a peer sends decodes and re-encodes
        /// byte-for-byte. [`Self::as_str`] gives the text when it is UTF-8.
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Bytes);

        impl $name {
            /// A string from a `&'static str`, without copying.
            pub const fn from_static(s: &'static str) -> Self {
                Self(Bytes::from_static(s.as_bytes()))
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.0
            }
            /// The text, if the bytes are UTF-8.
            pub fn as_str(&self) -> Option<&str> {
                std::str::from_utf8(&self.0).ok()
            }
            /// The text, with invalid UTF-8 replaced by U+FFFD.
            pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
                String::from_utf8_lossy(&self.0)
            }
            /// Length in bytes.
            pub fn len(&self) -> usize {
                self.0.len()
            }
            /// True when empty.
            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
            /// The underlying shared buffer.
            pub fn into_bytes(self) -> Bytes {
                self.0
            }
        }
        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(Bytes::copy_from_slice(s.as_bytes()))
            }
        }
        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(Bytes::from(s))
            }
        }
        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self::from(s.as_str())
            }
        }
        impl From<Bytes> for $name {
            fn from(b: Bytes) -> Self {
                Self(b)
            }
        }
        impl From<&[u8]> for $name {
            fn from(b: &[u8]) -> Self {
                Self(Bytes::copy_from_slice(b))
            }
        }
        impl From<Vec<u8>> for $name {
            fn from(b: Vec<u8>) -> Self {
                Self(Bytes::from(b))
            }
        }
        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other.as_bytes()
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == other.as_bytes()
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_string_lossy())
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.as_str() {
                    Some(s) => fmt::Debug::fmt(s, f),
                    None => write!(f, "b{:?}", self.0),
                }
            }
        }
    };
}

byte_string!(
    /// An AMQP `shortstr`: at most 255 bytes, preceded on the wire by a one-octet length.
    ShortString
);
byte_string!(
    /// An AMQP `longstr`: up to 2^32-1 bytes, preceded on the wire by a four-octet length.
    LongString
);

/// A bounds-checked cursor over one frame payload.
///
/// `base` is the offset of the payload within its frame (7 for a frame payload), so that errors
/// report offsets a reader of a hex dump can find.
pub(crate) struct Reader<'a> {
    src: &'a Bytes,
    pos: usize,
    end: usize,
    base: usize,
    /// The octet holding the bits being unpacked, and the next bit to read (8 = none open).
    bits: u8,
    bit_pos: u8,
}

macro_rules! read_num {
    ($($(#[$doc:meta])* $fn:ident -> $ty:ty;)*) => {$(
        $(#[$doc])*
        // Forced: a call per field read showed in profiles once the content header was inlined.
        #[inline(always)]
        pub fn $fn(&mut self, what: &'static str) -> Result<$ty, DecodeError> {
            const SIZE: usize = std::mem::size_of::<$ty>();
            match self.rest().first_chunk::<SIZE>() {
                Some(bytes) => {
                    self.pos += SIZE;
                    Ok(<$ty>::from_be_bytes(*bytes))
                }
                None => Err(self.truncated(what, SIZE)),
            }
        }
    )*};
}

impl<'a> Reader<'a> {
    /// A reader over all of `src`, which starts at byte `base` of its frame.
    pub fn new(src: &'a Bytes, base: usize) -> Self {
        Reader {
            src,
            pos: 0,
            end: src.len(),
            base,
            bits: 0,
            bit_pos: 8,
        }
    }

    /// A reader over `src[start..end]`, where `src` starts with the frame: offsets are indices
    /// into `src`. `end` must not exceed `src.len()`.
    #[inline]
    pub fn window(src: &'a Bytes, start: usize, end: usize) -> Self {
        Reader {
            src,
            pos: start,
            end,
            base: 0,
            bits: 0,
            bit_pos: 8,
        }
    }

    /// Offset of the next byte within the frame.
    #[inline]
    pub fn offset(&self) -> usize {
        self.base + self.pos
    }

    /// Bytes left before this reader's end.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    fn rest(&self) -> &'a [u8] {
        let all: &'a [u8] = self.src;
        &all[self.pos..self.end]
    }

    #[cold]
    pub fn truncated(&self, expected: &'static str, needed: usize) -> DecodeError {
        DecodeError::Truncated {
            offset: self.offset(),
            expected,
            needed,
            available: self.remaining(),
        }
    }

    read_num! {
        /// An `octet`.
        u8 -> u8;
        /// A `short`.
        u16 -> u16;
        /// A `long`.
        u32 -> u32;
        /// A `longlong` or `timestamp`.
        u64 -> u64;
    }

    /// Position in the source (not offset in the frame): a mark for [`slice_from`](Self::slice_from).
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The bytes from `mark` (a [`position`](Self::position)) to here, zero-copy.
    #[inline]
    pub fn slice_from(&self, mark: usize) -> Bytes {
        self.src.slice(mark.min(self.pos)..self.pos)
    }

    /// Step over the next `n` bytes: checked exactly as [`take`](Self::take), without a handle.
    #[inline]
    pub fn skip(&mut self, n: usize, what: &'static str) -> Result<(), DecodeError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        self.pos += n;
        Ok(())
    }

    /// The next `n` bytes, zero-copy.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        let b = self.src.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// A `shortstr`: one length octet, then that many bytes.
    #[inline]
    pub fn short_string(&mut self, what: &'static str) -> Result<ShortString, DecodeError> {
        let len = self.u8(what)? as usize;
        Ok(ShortString(self.take(len, what)?))
    }

    /// A `longstr`: a four-octet length, then that many bytes.
    #[inline]
    pub fn long_string(&mut self, what: &'static str) -> Result<LongString, DecodeError> {
        Ok(LongString(self.long_bytes(what)?))
    }

    /// Four-octet length-prefixed bytes (longstr, byte array `x`).
    #[inline]
    pub fn long_bytes(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    /// One `bit` argument. Consecutive bits share an octet, least significant bit first (spec
    /// 4.2.5.2: "bits are accumulated into whole octets"); any other field closes the octet.
    #[inline]
    pub fn bit(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        if self.bit_pos >= 8 {
            self.bits = self.u8(what)?;
            self.bit_pos = 0;
        }
        let v = self.bits & (1 << self.bit_pos) != 0;
        self.bit_pos += 1;
        Ok(v)
    }

    /// Close the octet of packed bits, if one is open: the next bit starts a new octet.
    #[inline]
    pub fn end_bits(&mut self) {
        self.bit_pos = 8;
    }

    /// Fail if any byte is left: method and header payloads must be consumed exactly.
    #[inline]
    pub fn finish(&self, after: &'static str) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                offset: self.offset(),
                count: self.remaining(),
                after,
            });
        }
        Ok(())
    }

    /// Narrow the reader to the next `len` bytes (a nested table or array); returns the old end
    /// for [`restore`](Self::restore). A length past the current end is a truncation.
    #[inline]
    pub fn limit(&mut self, len: usize, what: &'static str) -> Result<usize, DecodeError> {
        if len > self.remaining() {
            return Err(self.truncated(what, len));
        }
        let old = self.end;
        self.end = self.pos + len;
        Ok(old)
    }

    /// Run a nom parser on the rest of this reader and step past what it consumed. A parser that
    /// fails is a truncation of `what`, a field of `needed` bytes. (Only the tests' reference
    /// decoder of field tables still parses with nom.)
    #[cfg(test)]
    pub fn parse<T, P>(
        &mut self,
        mut parser: P,
        what: &'static str,
        needed: usize,
    ) -> Result<T, DecodeError>
    where
        P: nom::Parser<&'a [u8], Output = T, Error = nom::error::Error<&'a [u8]>>,
    {
        let rest = self.rest();
        match parser.parse(rest) {
            Ok((tail, v)) => {
                self.pos += rest.len() - tail.len();
                Ok(v)
            }
            Err(_) => Err(self.truncated(what, needed)),
        }
    }

    /// Undo a [`limit`](Self::limit) once the nested value is read.
    #[inline]
    pub fn restore(&mut self, end: usize) {
        self.end = end;
    }
}

/// An appender that packs bits and checks lengths.
pub(crate) struct Writer<'a> {
    pub buf: &'a mut BytesMut,
    /// Index in `buf` of the octet receiving bits, and the next bit (8 = none open).
    bit_octet: usize,
    bit_pos: u8,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut BytesMut) -> Self {
        Writer {
            buf,
            bit_octet: 0,
            bit_pos: 8,
        }
    }

    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.put_u8(v);
    }
    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.buf.put_u16(v);
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.buf.put_u32(v);
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.buf.put_u64(v);
    }

    /// A `shortstr`; longer than 255 bytes is an error, never a truncation.
    #[inline]
    pub fn short_string(&mut self, s: &ShortString, what: &'static str) -> Result<(), EncodeError> {
        put_short_string(self.buf, s.as_bytes(), what)
    }

    /// A `longstr`.
    #[inline]
    pub fn long_string(&mut self, s: &LongString, what: &'static str) -> Result<(), EncodeError> {
        put_long_bytes(self.buf, s.as_bytes(), what)
    }

    /// One packed `bit` (see [`Reader::bit`]).
    #[inline]
    pub fn bit(&mut self, v: bool) {
        if self.bit_pos >= 8 {
            self.bit_octet = self.buf.len();
            self.buf.put_u8(0);
            self.bit_pos = 0;
        }
        if v {
            self.buf[self.bit_octet] |= 1 << self.bit_pos;
        }
        self.bit_pos += 1;
    }

    /// Close the octet of packed bits.
    #[inline]
    pub fn end_bits(&mut self) {
        self.bit_pos = 8;
    }
}

/// Append a `shortstr`.
#[inline]
pub(crate) fn put_short_string(
    buf: &mut BytesMut,
    s: &[u8],
    what: &'static str,
) -> Result<(), EncodeError> {
    let len = u8::try_from(s.len())
        .map_err(|_| EncodeError::ShortStringTooLong { what, len: s.len() })?;
    buf.reserve(1 + s.len());
    buf.put_u8(len);
    buf.put_slice(s);
    Ok(())
}

/// Append four-octet length-prefixed bytes.
#[inline]
pub(crate) fn put_long_bytes(
    buf: &mut BytesMut,
    s: &[u8],
    what: &'static str,
) -> Result<(), EncodeError> {
    let len = u32::try_from(s.len()).map_err(|_| EncodeError::TooLong { what, len: s.len() })?;
    buf.reserve(4 + s.len());
    buf.put_u32(len);
    buf.put_slice(s);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_lsb_first_and_reset_on_other_fields() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        for v in [true, false, true, true, false, false, false, false, true] {
            w.bit(v);
        }
        w.end_bits();
        w.u8(7);
        w.bit(true);
        assert_eq!(&buf[..], &[0b0000_1101, 0b0000_0001, 7, 1]);
        let src = buf.freeze();
        let mut r = Reader::new(&src, 7);
        let got: Vec<bool> = (0..9).map(|_| r.bit("b").unwrap()).collect();
        assert_eq!(
            got,
            [true, false, true, true, false, false, false, false, true]
        );
        r.end_bits();
        assert_eq!(r.u8("o").unwrap(), 7);
        assert!(r.bit("b").unwrap());
        r.finish("test").unwrap();
    }

    #[test]
    fn truncation_names_offset_and_field() {
        let src = Bytes::from_static(&[5, b'a', b'b']);
        let mut r = Reader::new(&src, 11);
        let err = r.short_string("routing-key").unwrap_err();
        assert_eq!(
            err,
            DecodeError::Truncated {
                offset: 12,
                expected: "routing-key",
                needed: 5,
                available: 2
            }
        );
    }

    #[test]
    fn short_string_over_255_is_an_error_not_a_truncation() {
        let mut buf = BytesMut::new();
        let long = ShortString::from("x".repeat(256));
        let err = Writer::new(&mut buf).short_string(&long, "reply-to");
        assert_eq!(
            err,
            Err(EncodeError::ShortStringTooLong {
                what: "reply-to",
                len: 256
            })
        );
        assert!(buf.is_empty());
    }
}
