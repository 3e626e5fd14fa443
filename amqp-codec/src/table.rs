//! Field tables, field arrays and field values, with the type letters RabbitMQ uses.
//!
//! RabbitMQ's errata to the 0-9-1 spec (which every client follows) differ from the spec's own
//! table: `s` is a *signed* 16-bit int, `l` a signed 64-bit int, `u`/`U` of the spec are replaced
//! by `u` = unsigned 16-bit, `x` is a byte array, and `D` is a decimal with a one-octet scale and
//! a 32-bit value.
//!
//! Tables nest to any depth the input has. Decoding, encoding and dropping are iterative (an explicit
//! stack, not recursion), so hostile input several thousand levels deep cannot overflow the stack.
//! A table keeps its entries in wire order, so a decoded table re-encodes to the same bytes.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::wire::{put_long_bytes, put_short_string, LongString, Reader, ShortString};

/// A decimal: `value / 10^scale`, kept exactly as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    /// Number of decimal digits after the point.
    pub scale: u8,
    /// The unscaled value.
    pub value: u32,
}

/// One typed value in a field table or array.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`: boolean (one octet, non-zero is true).
    Boolean(bool),
    /// `b`: signed 8-bit.
    ShortShortInt(i8),
    /// `B`: unsigned 8-bit.
    ShortShortUInt(u8),
    /// `s`: signed 16-bit (RabbitMQ errata).
    ShortInt(i16),
    /// `u`: unsigned 16-bit.
    ShortUInt(u16),
    /// `I`: signed 32-bit.
    LongInt(i32),
    /// `i`: unsigned 32-bit.
    LongUInt(u32),
    /// `l`: signed 64-bit (RabbitMQ errata).
    LongLongInt(i64),
    /// `f`: IEEE-754 single.
    Float(f32),
    /// `d`: IEEE-754 double.
    Double(f64),
    /// `D`: decimal.
    Decimal(Decimal),
    /// `S`: long string.
    LongString(LongString),
    /// `x`: byte array.
    ByteArray(Bytes),
    /// `A`: field array.
    FieldArray(FieldArray),
    /// `T`: timestamp, seconds since the epoch.
    Timestamp(u64),
    /// `F`: nested field table.
    FieldTable(FieldTable),
    /// `V`: no value.
    Void,
}

impl FieldValue {
    /// The type letter on the wire.
    pub fn type_letter(&self) -> u8 {
        match self {
            FieldValue::Boolean(_) => b't',
            FieldValue::ShortShortInt(_) => b'b',
            FieldValue::ShortShortUInt(_) => b'B',
            FieldValue::ShortInt(_) => b's',
            FieldValue::ShortUInt(_) => b'u',
            FieldValue::LongInt(_) => b'I',
            FieldValue::LongUInt(_) => b'i',
            FieldValue::LongLongInt(_) => b'l',
            FieldValue::Float(_) => b'f',
            FieldValue::Double(_) => b'd',
            FieldValue::Decimal(_) => b'D',
            FieldValue::LongString(_) => b'S',
            FieldValue::ByteArray(_) => b'x',
            FieldValue::FieldArray(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::FieldTable(_) => b'F',
            FieldValue::Void => b'V',
        }
    }

    /// A readable name of the type, as Wireshark labels it.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Boolean(_) => "boolean",
            FieldValue::ShortShortInt(_) => "short short int",
            FieldValue::ShortShortUInt(_) => "short short uint",
            FieldValue::ShortInt(_) => "short int",
            FieldValue::ShortUInt(_) => "short uint",
            FieldValue::LongInt(_) => "long int",
            FieldValue::LongUInt(_) => "long uint",
            FieldValue::LongLongInt(_) => "long long int",
            FieldValue::Float(_) => "float",
            FieldValue::Double(_) => "double",
            FieldValue::Decimal(_) => "decimal",
            FieldValue::LongString(_) => "long string",
            FieldValue::ByteArray(_) => "byte array",
            FieldValue::FieldArray(_) => "field array",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::FieldTable(_) => "field table",
            FieldValue::Void => "void",
        }
    }

    fn has_children(&self) -> bool {
        match self {
            FieldValue::FieldTable(t) => !t.0.is_empty(),
            FieldValue::FieldArray(a) => !a.0.is_empty(),
            _ => false,
        }
    }
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Boolean(v)
    }
}
impl From<i32> for FieldValue {
    fn from(v: i32) -> Self {
        FieldValue::LongInt(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::LongLongInt(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::LongString(v.into())
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::LongString(v.into())
    }
}
impl From<FieldTable> for FieldValue {
    fn from(v: FieldTable) -> Self {
        FieldValue::FieldTable(v)
    }
}
impl From<FieldArray> for FieldValue {
    fn from(v: FieldArray) -> Self {
        FieldValue::FieldArray(v)
    }
}

/// A field table: name/value pairs in wire order.
///
/// Names are unique in a well-formed table; [`FieldTable::insert`] keeps them so, while decoding
/// keeps whatever the peer sent (so it re-encodes byte-exact).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldTable(Vec<(ShortString, FieldValue)>);

/// A field array: values in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldArray(Vec<FieldValue>);

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }
    /// Set `name` to `value`, replacing an existing entry of that name in place.
    pub fn insert(&mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }
    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) -> Self {
        self.insert(name, value);
        self
    }
    /// The value of the first entry named `name`.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// The entries in wire order.
    pub fn iter(&self) -> std::slice::Iter<'_, (ShortString, FieldValue)> {
        self.0.iter()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The entries, taken out.
    pub fn into_entries(mut self) -> Vec<(ShortString, FieldValue)> {
        std::mem::take(&mut self.0)
    }
    /// Append an entry without checking for a duplicate name.
    pub fn push(&mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) {
        self.0.push((name.into(), value.into()));
    }
}

impl<K: Into<ShortString>, V: Into<FieldValue>> FromIterator<(K, V)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut t = FieldTable::new();
        for (k, v) in iter {
            t.insert(k, v);
        }
        t
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = &'a (ShortString, FieldValue);
    type IntoIter = std::slice::Iter<'a, (ShortString, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FieldArray {
    /// An empty array.
    pub fn new() -> Self {
        FieldArray(Vec::new())
    }
    /// Append a value.
    pub fn push(&mut self, value: impl Into<FieldValue>) {
        self.0.push(value.into());
    }
    /// The values in order.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldValue> {
        self.0.iter()
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The values, taken out.
    pub fn into_values(mut self) -> Vec<FieldValue> {
        std::mem::take(&mut self.0)
    }
}

impl From<Vec<FieldValue>> for FieldArray {
    fn from(v: Vec<FieldValue>) -> Self {
        FieldArray(v)
    }
}

impl<V: Into<FieldValue>> FromIterator<V> for FieldArray {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        FieldArray(iter.into_iter().map(Into::into).collect())
    }
}

impl<'a> IntoIterator for &'a FieldArray {
    type Item = &'a FieldValue;
    type IntoIter = std::slice::Iter<'a, FieldValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Dismantle nested containers with a worklist: the default drop glue would recurse once per
/// nesting level, and a decoded table may be as deep as the frame is long.
fn drop_deep(mut work: Vec<FieldValue>) {
    while let Some(mut v) = work.pop() {
        match &mut v {
            FieldValue::FieldTable(t) => work.extend(
                t.0.drain(..)
                    .map(|(_, c)| c)
                    .filter(FieldValue::has_children),
            ),
            FieldValue::FieldArray(a) => {
                work.extend(a.0.drain(..).filter(FieldValue::has_children))
            }
            _ => {}
        }
    }
}

impl Drop for FieldTable {
    fn drop(&mut self) {
        if self.0.iter().any(|(_, v)| v.has_children()) {
            drop_deep(
                self.0
                    .drain(..)
                    .map(|(_, v)| v)
                    .filter(FieldValue::has_children)
                    .collect(),
            );
        }
    }
}

impl Drop for FieldArray {
    fn drop(&mut self) {
        if self.0.iter().any(FieldValue::has_children) {
            drop_deep(self.0.drain(..).filter(FieldValue::has_children).collect());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding

enum Open {
    Table(Vec<(ShortString, FieldValue)>),
    Array(Vec<FieldValue>),
}

/// One container being filled: its entries so far, the name it will have in its parent table, and
/// the reader limit of its parent, restored when it closes.
struct Level {
    open: Open,
    name: ShortString,
    parent_end: usize,
}

/// Read a length-prefixed field table (a `table` argument or the `headers` property).
pub(crate) fn read_table(
    r: &mut Reader<'_>,
    what: &'static str,
) -> Result<FieldTable, DecodeError> {
    let len = r.u32(what)? as usize;
    if len == 0 {
        return Ok(FieldTable::new());
    }
    let parent_end = r.limit(len, what)?;
    let mut stack: Vec<Level> = Vec::new();
    let mut cur = Level {
        open: Open::Table(Vec::new()),
        name: ShortString::default(),
        parent_end,
    };
    loop {
        if r.remaining() == 0 {
            r.restore(cur.parent_end);
            let value = match cur.open {
                Open::Table(entries) => FieldValue::FieldTable(FieldTable(entries)),
                Open::Array(values) => FieldValue::FieldArray(FieldArray(values)),
            };
            let Some(mut parent) = stack.pop() else {
                return match value {
                    FieldValue::FieldTable(mut t) => Ok(FieldTable(std::mem::take(&mut t.0))),
                    // The root is always a table.
                    _ => Ok(FieldTable::new()),
                };
            };
            match &mut parent.open {
                Open::Table(entries) => entries.push((cur.name, value)),
                Open::Array(values) => values.push(value),
            }
            cur = parent;
            continue;
        }
        let name = match cur.open {
            Open::Table(_) => r.short_string("field name")?,
            Open::Array(_) => ShortString::default(),
        };
        let letter_offset = r.offset();
        let letter = r.u8("field type")?;
        let value = match letter {
            b'F' | b'A' => {
                let what = if letter == b'F' {
                    "nested field table"
                } else {
                    "field array"
                };
                let len = r.u32(what)? as usize;
                let parent_end = r.limit(len, what)?;
                let open = if letter == b'F' {
                    Open::Table(Vec::new())
                } else {
                    Open::Array(Vec::new())
                };
                stack.push(std::mem::replace(
                    &mut cur,
                    Level {
                        open,
                        name,
                        parent_end,
                    },
                ));
                continue;
            }
            _ => read_scalar(r, letter, letter_offset)?,
        };
        match &mut cur.open {
            Open::Table(entries) => entries.push((name, value)),
            Open::Array(values) => values.push(value),
        }
    }
}

/// One field value after its type letter: the grammar of RabbitMQ's field types, as nom parsers.
fn read_scalar(r: &mut Reader<'_>, letter: u8, offset: usize) -> Result<FieldValue, DecodeError> {
    use nom::number::complete::{
        be_f32, be_f64, be_i16, be_i32, be_i64, be_i8, be_u16, be_u32, be_u64, be_u8,
    };
    use nom::Parser;
    Ok(match letter {
        b't' => FieldValue::Boolean(r.parse(be_u8, "boolean field", 1)? != 0),
        b'b' => FieldValue::ShortShortInt(r.parse(be_i8, "short-short-int field", 1)?),
        b'B' => FieldValue::ShortShortUInt(r.parse(be_u8, "short-short-uint field", 1)?),
        b's' => FieldValue::ShortInt(r.parse(be_i16, "short-int field", 2)?),
        b'u' => FieldValue::ShortUInt(r.parse(be_u16, "short-uint field", 2)?),
        b'I' => FieldValue::LongInt(r.parse(be_i32, "long-int field", 4)?),
        b'i' => FieldValue::LongUInt(r.parse(be_u32, "long-uint field", 4)?),
        b'l' => FieldValue::LongLongInt(r.parse(be_i64, "long-long-int field", 8)?),
        b'f' => FieldValue::Float(r.parse(be_f32, "float field", 4)?),
        b'd' => FieldValue::Double(r.parse(be_f64, "double field", 8)?),
        // A decimal is a scale octet then a 32-bit unscaled value.
        b'D' => r.parse(
            (be_u8, be_u32).map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
            "decimal field",
            5,
        )?,
        b'S' => FieldValue::LongString(r.long_string("long-string field")?),
        b'x' => FieldValue::ByteArray(r.long_bytes("byte-array field")?),
        b'T' => FieldValue::Timestamp(r.parse(be_u64, "timestamp field", 8)?),
        b'V' => FieldValue::Void,
        _ => return Err(DecodeError::UnknownFieldType { letter, offset }),
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

enum Pending<'t> {
    Table(std::slice::Iter<'t, (ShortString, FieldValue)>),
    Array(std::slice::Iter<'t, FieldValue>),
}

/// Append a length-prefixed field table.
pub(crate) fn write_table(
    buf: &mut BytesMut,
    table: &FieldTable,
    what: &'static str,
) -> Result<(), EncodeError> {
    if table.0.is_empty() {
        buf.put_u32(0);
        return Ok(());
    }
    let mut stack: Vec<(Pending<'_>, usize)> = Vec::with_capacity(4);
    stack.push((Pending::Table(table.0.iter()), buf.len()));
    buf.put_u32(0);
    while let Some((pending, len_at)) = stack.last_mut() {
        let next = match pending {
            Pending::Table(it) => match it.next() {
                Some((name, v)) => {
                    put_short_string(buf, name.as_bytes(), "field name")?;
                    Some(v)
                }
                None => None,
            },
            Pending::Array(it) => it.next(),
        };
        let Some(value) = next else {
            let len_at = *len_at;
            let len = buf.len() - len_at - 4;
            let len = u32::try_from(len).map_err(|_| EncodeError::TooLong { what, len })?;
            buf[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
            stack.pop();
            continue;
        };
        buf.put_u8(value.type_letter());
        match value {
            FieldValue::FieldTable(t) => {
                stack.push((Pending::Table(t.0.iter()), buf.len()));
                buf.put_u32(0);
            }
            FieldValue::FieldArray(a) => {
                stack.push((Pending::Array(a.0.iter()), buf.len()));
                buf.put_u32(0);
            }
            scalar => write_scalar(buf, scalar)?,
        }
    }
    Ok(())
}

fn write_scalar(buf: &mut BytesMut, v: &FieldValue) -> Result<(), EncodeError> {
    match v {
        FieldValue::Boolean(b) => buf.put_u8(u8::from(*b)),
        FieldValue::ShortShortInt(n) => buf.put_i8(*n),
        FieldValue::ShortShortUInt(n) => buf.put_u8(*n),
        FieldValue::ShortInt(n) => buf.put_i16(*n),
        FieldValue::ShortUInt(n) => buf.put_u16(*n),
        FieldValue::LongInt(n) => buf.put_i32(*n),
        FieldValue::LongUInt(n) => buf.put_u32(*n),
        FieldValue::LongLongInt(n) => buf.put_i64(*n),
        FieldValue::Float(n) => buf.put_f32(*n),
        FieldValue::Double(n) => buf.put_f64(*n),
        FieldValue::Decimal(d) => {
            buf.put_u8(d.scale);
            buf.put_u32(d.value);
        }
        FieldValue::LongString(s) => put_long_bytes(buf, s.as_bytes(), "long-string field")?,
        FieldValue::ByteArray(b) => put_long_bytes(buf, b, "byte-array field")?,
        FieldValue::Timestamp(t) => buf.put_u64(*t),
        FieldValue::Void => {}
        // Containers are handled by the caller's worklist.
        FieldValue::FieldTable(_) | FieldValue::FieldArray(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<FieldTable, DecodeError> {
        let src = Bytes::copy_from_slice(bytes);
        let mut r = Reader::new(&src, 0);
        let t = read_table(&mut r, "table")?;
        r.finish("table")?;
        Ok(t)
    }

    fn encode(t: &FieldTable) -> Vec<u8> {
        let mut buf = BytesMut::new();
        write_table(&mut buf, t, "table").unwrap();
        buf.to_vec()
    }

    #[test]
    fn every_type_letter_round_trips() {
        let inner = FieldTable::new().with("k", FieldValue::Void);
        let t = FieldTable::new()
            .with("t", true)
            .with("b", FieldValue::ShortShortInt(-2))
            .with("B", FieldValue::ShortShortUInt(250))
            .with("s", FieldValue::ShortInt(-300))
            .with("u", FieldValue::ShortUInt(65000))
            .with("I", FieldValue::LongInt(-70000))
            .with("i", FieldValue::LongUInt(4_000_000_000))
            .with("l", FieldValue::LongLongInt(-5_000_000_000))
            .with("f", FieldValue::Float(1.5))
            .with("d", FieldValue::Double(-2.25))
            .with(
                "D",
                FieldValue::Decimal(Decimal {
                    scale: 2,
                    value: 12345,
                }),
            )
            .with("S", "text")
            .with("x", FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")))
            .with(
                "A",
                FieldArray::from(vec![FieldValue::LongInt(1), "two".into()]),
            )
            .with("T", FieldValue::Timestamp(1_700_000_000))
            .with("F", inner)
            .with("V", FieldValue::Void);
        let bytes = encode(&t);
        let back = decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(encode(&back), bytes);
        assert_eq!(
            back.get("D"),
            Some(&FieldValue::Decimal(Decimal {
                scale: 2,
                value: 12345
            }))
        );
    }

    #[test]
    fn signed_short_and_long_long_follow_rabbitmq_errata() {
        // "s" is a signed 16-bit int, "l" a signed 64-bit int.
        let t = decode(&[
            0, 0, 0, 16, 1, b'a', b's', 0xff, 0xfe, 1, b'b', b'l', 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xfd,
        ])
        .unwrap();
        assert_eq!(t.get("a"), Some(&FieldValue::ShortInt(-2)));
        assert_eq!(t.get("b"), Some(&FieldValue::LongLongInt(-3)));
    }

    #[test]
    fn unknown_letter_names_letter_and_offset() {
        let err = decode(&[0, 0, 0, 4, 1, b'k', b'Z', 0]).unwrap_err();
        assert_eq!(
            err,
            DecodeError::UnknownFieldType {
                letter: b'Z',
                offset: 6
            }
        );
        assert!(err.to_string().contains("'Z'"), "{err}");
    }

    #[test]
    fn nested_length_past_parent_is_truncation() {
        // Outer table of 7 bytes claims an inner table of 100.
        let err = decode(&[0, 0, 0, 7, 1, b'k', b'F', 0, 0, 0, 100]).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Truncated {
                    offset: 11,
                    needed: 100,
                    available: 0,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn hostile_depth_does_not_overflow_the_stack() {
        // 200_000 nested arrays: ~1 MB of input, far deeper than any recursion could survive.
        let depth = 200_000usize;
        let mut bytes = Vec::with_capacity(depth * 5 + 16);
        let total = 2 + depth * 5;
        bytes.extend_from_slice(&(total as u32).to_be_bytes());
        bytes.extend_from_slice(&[1, b'k']);
        for level in 0..depth {
            bytes.push(b'A');
            let inner = (depth - level - 1) * 5;
            bytes.extend_from_slice(&(inner as u32).to_be_bytes());
        }
        // The innermost array is empty; fix the outer length (name + letter + len per level).
        let total = bytes.len() - 4;
        bytes[..4].copy_from_slice(&(total as u32).to_be_bytes());
        let t = decode(&bytes).unwrap();
        assert_eq!(encode(&t), bytes);
        drop(t);
    }
}
