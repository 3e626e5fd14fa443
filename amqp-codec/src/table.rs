//! Field tables, field arrays and field values, with the type letters RabbitMQ uses.
//!
//! RabbitMQ's errata to the 0-9-1 spec (which every client follows) differ from the spec's own
//! table: `s` is a *signed* 16-bit int, `l` a signed 64-bit int, `u`/`U` of the spec are replaced
//! by `u` = unsigned 16-bit, `x` is a byte array, and `D` is a decimal with a one-octet scale and
//! a 32-bit value.
//!
//! # Decoded tables are validated bytes, read lazily
//! Decoding a table checks its whole structure once (every length against the bytes present and
//! against its enclosing table, every type letter), with the same errors and offsets as a full
//! decode, and then keeps the table as a zero-copy slice of the frame, in one small box (an empty
//! table has none): no entry is built. Entries are decoded when asked for:
//! - [`FieldTable::lookup`], [`FieldTable::lookup_str`], [`FieldTable::entries`] and
//!   [`FieldTable::len`] read the bytes in place (a lookup of `x-deadline` in a request's headers
//!   builds only that value; `lookup_str("traceparent")` borrows the string from the frame);
//! - [`FieldTable::get`] and [`FieldTable::iter`], which hand out references, decode every entry
//!   once, on first use, and keep them (nested tables stay undecoded until they are asked for).
//!
//! A table that is never modified re-encodes by copying its bytes. Inserting into a decoded table
//! turns it into an ordinary owned table (its entries decoded, its bytes dropped).
//!
//! Before, every entry was built on decode (72 bytes each, and a reference count per string):
//! callgrind counted 1,036 instructions per frame on the tutorial-six captures with their handshake,
//! 682 since (BENCHMARKS.md has the figures).
//!
//! Tables nest to any depth the input has. Validation, encoding and dropping are iterative (an explicit
//! stack, not recursion), so hostile input several thousand levels deep cannot overflow the stack;
//! the validator's stack holds one entry per open level, and a level takes at least 5 bytes of the
//! frame. A table keeps its entries in wire order, so a decoded table re-encodes to the same bytes.

use std::fmt;
use std::ops::Range;
use std::sync::OnceLock;

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

    /// True for a container holding decoded children: what dropping must dismantle by hand.
    fn has_children(&self) -> bool {
        match self {
            FieldValue::FieldTable(t) => matches!(t.0.view(), View::Entries(e) if !e.is_empty()),
            FieldValue::FieldArray(a) => matches!(a.0.view(), View::Entries(v) if !v.is_empty()),
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
impl From<LongString> for FieldValue {
    fn from(v: LongString) -> Self {
        FieldValue::LongString(v)
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
/// keeps whatever the peer sent (so it re-encodes byte-exact). A decoded table is its validated wire
/// bytes, decoded on demand (see the [module docs](self)); a built one holds its entries. Equality,
/// `Debug` and encoding do not depend on which.
#[derive(Clone, Default)]
pub struct FieldTable(Lazy<(ShortString, FieldValue)>);

/// A field array: values in order.
///
/// Decoded lazily, as [`FieldTable`] is.
#[derive(Clone, Default)]
pub struct FieldArray(Lazy<FieldValue>);

/// The two states of a table or array.
///
/// 24 bytes, as a bare `Vec` is: a decoded container keeps its bytes and its cache behind one box
/// (an allocation per decoded non-empty table, as the eager decoder's `Vec` was). Kept inline, the
/// two made a table 64 bytes, and every `Method` and `Frame` 40 bytes larger: +5 % instructions
/// per frame on table-free traffic (callgrind), all of it in moving frames.
#[derive(Clone)]
enum Lazy<E> {
    /// Built in memory, or changed after decoding: the entries are the truth.
    Built(Vec<E>),
    /// As decoded; never empty (an empty container is `Built`).
    Decoded(Box<Decoded<E>>),
}

#[derive(Clone)]
struct Decoded<E> {
    /// The validated wire bytes, without the length prefix: exactly the encoding of the entries.
    raw: Bytes,
    /// The entries, decoded from `raw` on the first call that lends references.
    cache: OnceLock<Vec<E>>,
}

/// What a container can be read from without decoding it.
enum View<'a, E> {
    Entries(&'a [E]),
    Raw(&'a Bytes),
}

impl<E> Default for Lazy<E> {
    fn default() -> Self {
        Lazy::Built(Vec::new())
    }
}

impl<E> Lazy<E> {
    /// Over bytes `validate` accepted.
    fn from_validated(raw: Bytes) -> Self {
        if raw.is_empty() {
            return Lazy::Built(Vec::new());
        }
        Lazy::Decoded(Box::new(Decoded {
            raw,
            cache: OnceLock::new(),
        }))
    }

    /// The decoded entries if there are any, else the bytes.
    fn view(&self) -> View<'_, E> {
        match self {
            Lazy::Built(entries) => View::Entries(entries),
            Lazy::Decoded(d) => match d.cache.get() {
                Some(entries) => View::Entries(entries),
                None => View::Raw(&d.raw),
            },
        }
    }

    /// The entries, decoded (and kept) on first use.
    fn decoded(&self, decode: fn(&Bytes) -> Vec<E>) -> &[E] {
        match self {
            Lazy::Built(entries) => entries,
            Lazy::Decoded(d) => d.cache.get_or_init(|| decode(&d.raw)),
        }
    }

    /// The wire bytes of an untouched decoded container.
    #[cfg(test)]
    fn raw(&self) -> Option<&Bytes> {
        match self {
            Lazy::Built(_) => None,
            Lazy::Decoded(d) => Some(&d.raw),
        }
    }

    /// The entries built or decoded so far, without decoding any.
    fn cached_mut(&mut self) -> Option<&mut Vec<E>> {
        match self {
            Lazy::Built(entries) => Some(entries),
            Lazy::Decoded(d) => d.cache.get_mut(),
        }
    }

    /// Change the entries: from here on the container is built, not decoded.
    fn modify<R>(
        &mut self,
        decode: fn(&Bytes) -> Vec<E>,
        change: impl FnOnce(&mut Vec<E>) -> R,
    ) -> R {
        let mut entries = match std::mem::take(self) {
            Lazy::Built(entries) => entries,
            Lazy::Decoded(mut d) => d.cache.take().unwrap_or_else(|| decode(&d.raw)),
        };
        let out = change(&mut entries);
        *self = Lazy::Built(entries);
        out
    }

    /// The entries, taken out.
    fn take_entries(&mut self, decode: fn(&Bytes) -> Vec<E>) -> Vec<E> {
        match std::mem::take(self) {
            Lazy::Built(entries) => entries,
            Lazy::Decoded(mut d) => d.cache.take().unwrap_or_else(|| decode(&d.raw)),
        }
    }
}

impl FieldTable {
    /// An empty table.
    pub const fn new() -> Self {
        FieldTable(Lazy::Built(Vec::new()))
    }

    /// A table over bytes `validate` accepted.
    fn from_validated(raw: Bytes) -> Self {
        FieldTable(Lazy::from_validated(raw))
    }

    fn from_entries(entries: Vec<(ShortString, FieldValue)>) -> Self {
        FieldTable(Lazy::Built(entries))
    }

    /// The entries, decoding them on first use.
    fn decoded(&self) -> &[(ShortString, FieldValue)] {
        self.0.decoded(decode_entries)
    }

    /// Change the entries: from here on the table is built, not decoded.
    fn modify<R>(&mut self, change: impl FnOnce(&mut Vec<(ShortString, FieldValue)>) -> R) -> R {
        self.0.modify(decode_entries, change)
    }

    /// Set `name` to `value`, replacing an existing entry of that name in place.
    pub fn insert(&mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) {
        let name = name.into();
        let value = value.into();
        self.modify(
            |entries| match entries.iter_mut().find(|(k, _)| *k == name) {
                Some(slot) => slot.1 = value,
                None => entries.push((name, value)),
            },
        );
    }

    /// Builder form of [`insert`](Self::insert).
    pub fn with(mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) -> Self {
        self.insert(name, value);
        self
    }

    /// Append an entry without checking for a duplicate name.
    pub fn push(&mut self, name: impl Into<ShortString>, value: impl Into<FieldValue>) {
        let entry = (name.into(), value.into());
        self.modify(|entries| entries.push(entry));
    }

    /// The value of the first entry named `name`.
    ///
    /// On a decoded table this decodes every entry, once (to hand out a reference that lives as
    /// long as the table); [`lookup`](Self::lookup) reads one value without doing so.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.decoded()
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The value of the first entry named `name`, decoded from the table's bytes in place: a scan
    /// of the names, and only the value asked for is built (a string is a zero-copy slice, a
    /// nested table stays undecoded). The cheap way to read one header of a message.
    pub fn lookup(&self, name: &str) -> Option<FieldValue> {
        let raw = match self.0.view() {
            View::Entries(entries) => {
                return entries
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.clone())
            }
            View::Raw(raw) => raw,
        };
        let mut walk = Walk::new(raw);
        while !walk.at_end() {
            let at = walk.name()?;
            if raw.get(at) == Some(name.as_bytes()) {
                return walk.value();
            }
            walk.skip_value()?;
        }
        None
    }

    /// The bytes of the first entry named `name` when its value is a long string (`S`) or a byte
    /// array (`x`), borrowed from the table: no copy, no reference count. `None` when there is no
    /// such entry or its value has another type. For headers such as `traceparent` or `x-error`.
    pub fn lookup_bytes(&self, name: &str) -> Option<&[u8]> {
        let raw = match self.0.view() {
            View::Entries(entries) => {
                return match entries.iter().find(|(k, _)| *k == name)?.1 {
                    FieldValue::LongString(ref s) => Some(s.as_bytes()),
                    FieldValue::ByteArray(ref b) => Some(b),
                    _ => None,
                }
            }
            View::Raw(raw) => raw,
        };
        let mut walk = Walk::new(raw);
        while !walk.at_end() {
            let at = walk.name()?;
            if raw.get(at) == Some(name.as_bytes()) {
                return match walk.u8()? {
                    b'S' | b'x' => raw.get(walk.long()?),
                    _ => None,
                };
            }
            walk.skip_value()?;
        }
        None
    }

    /// [`lookup_bytes`](Self::lookup_bytes) as text: `None` also when the bytes are not UTF-8.
    pub fn lookup_str(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.lookup_bytes(name)?).ok()
    }

    /// True when an entry is named `name` (a scan of the names; nothing is decoded).
    pub fn contains_key(&self, name: &str) -> bool {
        let raw = match self.0.view() {
            View::Entries(entries) => return entries.iter().any(|(k, _)| *k == name),
            View::Raw(raw) => raw,
        };
        let mut walk = Walk::new(raw);
        while !walk.at_end() {
            let Some(at) = walk.name() else { break };
            if raw.get(at) == Some(name.as_bytes()) {
                return true;
            }
            if walk.skip_value().is_none() {
                break;
            }
        }
        false
    }

    /// The entries in wire order, by reference (decodes a decoded table's entries once; see
    /// [`entries`](Self::entries) for an iteration that does not keep them).
    pub fn iter(&self) -> std::slice::Iter<'_, (ShortString, FieldValue)> {
        self.decoded().iter()
    }

    /// The entries in wire order as owned values, decoded one at a time from the table's bytes
    /// (or cloned from a built table). Nothing is kept: the table stays as cheap as it was.
    pub fn entries(&self) -> Entries<'_> {
        match self.0.view() {
            View::Entries(entries) => Entries(EntriesInner::Built(entries.iter())),
            View::Raw(raw) => Entries(EntriesInner::Raw {
                src: raw,
                walk: Walk::new(raw),
            }),
        }
    }

    /// Number of entries (counted in the bytes of a decoded table, without decoding them).
    pub fn len(&self) -> usize {
        match self.0.view() {
            View::Entries(entries) => entries.len(),
            View::Raw(raw) => count(raw, true),
        }
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        match self.0.view() {
            View::Entries(entries) => entries.is_empty(),
            View::Raw(raw) => raw.is_empty(),
        }
    }

    /// The entries, taken out.
    pub fn into_entries(mut self) -> Vec<(ShortString, FieldValue)> {
        self.0.take_entries(decode_entries)
    }

    /// Decode one length-prefixed table from `src`, which must hold exactly that. Offsets in errors
    /// count from the start of `src`. Strings in the table are zero-copy slices of `src`.
    pub fn decode(src: &Bytes) -> Result<FieldTable, DecodeError> {
        let mut r = Reader::new(src, 0);
        let table = FieldTable::decode_from(&mut r, "field table")?;
        r.finish("field table")?;
        Ok(table)
    }

    /// Append the table, length-prefixed, as it goes in a method argument or the `headers`
    /// property. On error nothing is appended.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let start = dst.len();
        let result = self.encode_to(dst, "field table");
        if result.is_err() {
            dst.truncate(start);
        }
        result
    }
}

impl fmt::Debug for FieldTable {
    /// `FieldTable([("name", value), …])`, whether decoded or built.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<'a>(&'a FieldTable);
        impl fmt::Debug for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.entries()).finish()
            }
        }
        f.debug_tuple("FieldTable").field(&List(self)).finish()
    }
}

impl PartialEq for FieldTable {
    /// Entry by entry, in order (so a NaN value is unequal to itself, as `f64` is).
    fn eq(&self, other: &Self) -> bool {
        match (self.0.view(), other.0.view()) {
            (View::Entries(a), View::Entries(b)) => a == b,
            _ => self.entries().eq(other.entries()),
        }
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

impl From<Vec<(ShortString, FieldValue)>> for FieldTable {
    /// The entries as given, duplicate names included (as a decoded table keeps them).
    fn from(entries: Vec<(ShortString, FieldValue)>) -> Self {
        FieldTable::from_entries(entries)
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = &'a (ShortString, FieldValue);
    type IntoIter = std::slice::Iter<'a, (ShortString, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The entries of a [`FieldTable`] as owned values: see [`FieldTable::entries`].
#[derive(Clone)]
pub struct Entries<'a>(EntriesInner<'a>);

#[derive(Clone)]
enum EntriesInner<'a> {
    Built(std::slice::Iter<'a, (ShortString, FieldValue)>),
    Raw { src: &'a Bytes, walk: Walk<'a> },
}

impl Iterator for Entries<'_> {
    type Item = (ShortString, FieldValue);
    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.0 {
            EntriesInner::Built(it) => it.next().cloned(),
            EntriesInner::Raw { src, walk } => {
                if walk.at_end() {
                    return None;
                }
                let name = walk.name()?;
                let value = walk.value()?;
                Some((ShortString::from(src.slice(name)), value))
            }
        }
    }
}

impl fmt::Debug for Entries<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

impl FieldArray {
    /// An empty array.
    pub const fn new() -> Self {
        FieldArray(Lazy::Built(Vec::new()))
    }

    fn from_validated(raw: Bytes) -> Self {
        FieldArray(Lazy::from_validated(raw))
    }

    /// Append a value.
    pub fn push(&mut self, value: impl Into<FieldValue>) {
        let value = value.into();
        self.0.modify(decode_values, |values| values.push(value));
    }

    /// The values in order, by reference (decodes a decoded array's values once).
    pub fn iter(&self) -> std::slice::Iter<'_, FieldValue> {
        self.0.decoded(decode_values).iter()
    }

    /// The values in order as owned values, decoded one at a time; nothing is kept.
    pub fn values(&self) -> Values<'_> {
        match self.0.view() {
            View::Entries(values) => Values(ValuesInner::Built(values.iter())),
            View::Raw(raw) => Values(ValuesInner::Raw(Walk::new(raw))),
        }
    }

    /// Number of values (counted in the bytes of a decoded array, without decoding them).
    pub fn len(&self) -> usize {
        match self.0.view() {
            View::Entries(values) => values.len(),
            View::Raw(raw) => count(raw, false),
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        match self.0.view() {
            View::Entries(values) => values.is_empty(),
            View::Raw(raw) => raw.is_empty(),
        }
    }

    /// The values, taken out.
    pub fn into_values(mut self) -> Vec<FieldValue> {
        self.0.take_entries(decode_values)
    }
}

impl fmt::Debug for FieldArray {
    /// `FieldArray([value, …])`, whether decoded or built.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct List<'a>(&'a FieldArray);
        impl fmt::Debug for List<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list().entries(self.0.values()).finish()
            }
        }
        f.debug_tuple("FieldArray").field(&List(self)).finish()
    }
}

impl PartialEq for FieldArray {
    fn eq(&self, other: &Self) -> bool {
        match (self.0.view(), other.0.view()) {
            (View::Entries(a), View::Entries(b)) => a == b,
            _ => self.values().eq(other.values()),
        }
    }
}

impl From<Vec<FieldValue>> for FieldArray {
    fn from(v: Vec<FieldValue>) -> Self {
        FieldArray(Lazy::Built(v))
    }
}

impl<V: Into<FieldValue>> FromIterator<V> for FieldArray {
    fn from_iter<I: IntoIterator<Item = V>>(iter: I) -> Self {
        FieldArray::from(iter.into_iter().map(Into::into).collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a FieldArray {
    type Item = &'a FieldValue;
    type IntoIter = std::slice::Iter<'a, FieldValue>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The values of a [`FieldArray`] as owned values: see [`FieldArray::values`].
#[derive(Clone)]
pub struct Values<'a>(ValuesInner<'a>);

#[derive(Clone)]
enum ValuesInner<'a> {
    Built(std::slice::Iter<'a, FieldValue>),
    Raw(Walk<'a>),
}

impl Iterator for Values<'_> {
    type Item = FieldValue;
    fn next(&mut self) -> Option<FieldValue> {
        match &mut self.0 {
            ValuesInner::Built(it) => it.next().cloned(),
            ValuesInner::Raw(walk) if walk.at_end() => None,
            ValuesInner::Raw(walk) => walk.value(),
        }
    }
}

impl fmt::Debug for Values<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.clone()).finish()
    }
}

/// Dismantle nested containers with a worklist: the default drop glue would recurse once per
/// nesting level, and decoded entries may be as deep as the frame is long.
fn drop_deep(mut work: Vec<FieldValue>) {
    while let Some(mut v) = work.pop() {
        match &mut v {
            FieldValue::FieldTable(t) => {
                if let Some(entries) = t.0.cached_mut() {
                    work.extend(
                        entries
                            .drain(..)
                            .map(|(_, c)| c)
                            .filter(FieldValue::has_children),
                    );
                }
            }
            FieldValue::FieldArray(a) => {
                if let Some(values) = a.0.cached_mut() {
                    work.extend(values.drain(..).filter(FieldValue::has_children));
                }
            }
            _ => {}
        }
    }
}

impl Drop for FieldTable {
    fn drop(&mut self) {
        if let Some(entries) = self.0.cached_mut() {
            if entries.iter().any(|(_, v)| v.has_children()) {
                drop_deep(
                    entries
                        .drain(..)
                        .map(|(_, v)| v)
                        .filter(FieldValue::has_children)
                        .collect(),
                );
            }
        }
    }
}

impl Drop for FieldArray {
    fn drop(&mut self) {
        if let Some(values) = self.0.cached_mut() {
            if values.iter().any(FieldValue::has_children) {
                drop_deep(values.drain(..).filter(FieldValue::has_children).collect());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The grammar of a field value after its type letter: one table for validation and lazy reads.

/// How a field value is laid out after its type letter.
#[derive(Clone, Copy)]
enum Shape {
    /// A fixed number of octets.
    Fixed(usize),
    /// A four-octet length, then that many octets (`S`, `x`).
    Long,
    /// A four-octet length, then that many octets of entries (`F`) or values (`A`).
    Table,
    /// See [`Shape::Table`].
    Array,
}

/// The layout of the value of type `letter`, and its name in errors; `None` for a letter RabbitMQ
/// does not use.
#[inline]
fn shape(letter: u8) -> Option<(Shape, &'static str)> {
    Some(match letter {
        b't' => (Shape::Fixed(1), "boolean field"),
        b'b' => (Shape::Fixed(1), "short-short-int field"),
        b'B' => (Shape::Fixed(1), "short-short-uint field"),
        b's' => (Shape::Fixed(2), "short-int field"),
        b'u' => (Shape::Fixed(2), "short-uint field"),
        b'I' => (Shape::Fixed(4), "long-int field"),
        b'i' => (Shape::Fixed(4), "long-uint field"),
        b'l' => (Shape::Fixed(8), "long-long-int field"),
        b'f' => (Shape::Fixed(4), "float field"),
        b'd' => (Shape::Fixed(8), "double field"),
        // A decimal is a scale octet then a 32-bit unscaled value.
        b'D' => (Shape::Fixed(5), "decimal field"),
        b'T' => (Shape::Fixed(8), "timestamp field"),
        b'V' => (Shape::Fixed(0), "void field"),
        b'S' => (Shape::Long, "long-string field"),
        b'x' => (Shape::Long, "byte-array field"),
        b'F' => (Shape::Table, "nested field table"),
        b'A' => (Shape::Array, "field array"),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Decoding: validate once, keep the bytes.

impl FieldTable {
    /// Read a length-prefixed field table (a `table` argument or the `headers` property): validate
    /// all of it, keep it as a slice of the frame.
    #[inline]
    pub(crate) fn decode_from(
        r: &mut Reader<'_>,
        what: &'static str,
    ) -> Result<FieldTable, DecodeError> {
        let len = r.u32(what)? as usize;
        if len == 0 {
            return Ok(FieldTable::new());
        }
        let start = r.position();
        let parent_end = r.limit(len, what)?;
        validate(r)?;
        r.restore(parent_end);
        Ok(FieldTable::from_validated(r.slice_from(start)))
    }
}

/// The ends of the containers enclosing the one being validated, innermost last, and whether each
/// is a table (its entries have names). Eight levels inline: the handshake's tables nest two deep,
/// and a table's validation should cost no allocation.
struct Open {
    inline: [(usize, bool); 8],
    depth: usize,
    spill: Vec<(usize, bool)>,
}

impl Open {
    fn push(&mut self, level: (usize, bool)) {
        match self.inline.get_mut(self.depth) {
            Some(slot) => *slot = level,
            None => self.spill.push(level),
        }
        self.depth += 1;
    }

    fn pop(&mut self) -> Option<(usize, bool)> {
        self.depth = self.depth.checked_sub(1)?;
        match self.inline.get(self.depth) {
            Some(level) => Some(*level),
            None => self.spill.pop(),
        }
    }
}

/// Check the entries from the reader's position to its limit: every name, type letter and length,
/// into nested tables and arrays. The errors (and the order in which they are found) are those a
/// full decode gives: the first malformed field, with its offset in the frame.
fn validate(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    let mut open = Open {
        inline: [(0, false); 8],
        depth: 0,
        spill: Vec::new(),
    };
    let mut in_table = true;
    loop {
        if r.remaining() == 0 {
            let Some((parent_end, parent_is_table)) = open.pop() else {
                return Ok(());
            };
            r.restore(parent_end);
            in_table = parent_is_table;
            continue;
        }
        if in_table {
            let len = r.u8("field name")?;
            r.skip(len as usize, "field name")?;
        }
        let letter_offset = r.offset();
        let letter = r.u8("field type")?;
        match shape(letter) {
            Some((Shape::Fixed(n), what)) => r.skip(n, what)?,
            Some((Shape::Long, what)) => {
                let len = r.u32(what)? as usize;
                r.skip(len, what)?;
            }
            Some((shape @ (Shape::Table | Shape::Array), what)) => {
                let len = r.u32(what)? as usize;
                let parent_end = r.limit(len, what)?;
                open.push((parent_end, in_table));
                in_table = matches!(shape, Shape::Table);
            }
            None => {
                return Err(DecodeError::UnknownFieldType {
                    letter,
                    offset: letter_offset,
                })
            }
        }
    }
}

/// A cursor over bytes [`validate`] accepted. Every read is still checked, and a failed one ends
/// the walk (`None`) rather than panicking: a broken invariant shows as a shorter table, never as
/// a crash.
#[derive(Clone)]
struct Walk<'a> {
    src: &'a Bytes,
    pos: usize,
}

impl<'a> Walk<'a> {
    fn new(src: &'a Bytes) -> Self {
        Walk { src, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<Range<usize>> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.src.len())?;
        let range = self.pos..end;
        self.pos = end;
        Some(range)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let bytes: &'a [u8] = self.src;
        let out = *bytes.get(self.pos..)?.first_chunk::<N>()?;
        self.pos += N;
        Some(out)
    }

    #[inline]
    fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    /// A name's position: its length octet, then its bytes.
    #[inline]
    fn name(&mut self) -> Option<Range<usize>> {
        let len = self.u8()?;
        self.take(len as usize)
    }

    /// The position of a four-octet length-prefixed value's bytes.
    #[inline]
    fn long(&mut self) -> Option<Range<usize>> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(len as usize)
    }

    /// A four-octet length-prefixed value's bytes, zero-copy.
    #[inline]
    fn long_bytes(&mut self) -> Option<Bytes> {
        let range = self.long()?;
        Some(self.src.slice(range))
    }

    /// Step over one value, type letter included.
    #[inline]
    fn skip_value(&mut self) -> Option<()> {
        match shape(self.u8()?)?.0 {
            Shape::Fixed(n) => self.take(n).map(drop),
            Shape::Long | Shape::Table | Shape::Array => self.long().map(drop),
        }
    }

    /// One value, type letter included: strings are slices of the source, nested containers stay
    /// undecoded.
    fn value(&mut self) -> Option<FieldValue> {
        Some(match self.u8()? {
            b't' => FieldValue::Boolean(self.u8()? != 0),
            b'b' => FieldValue::ShortShortInt(i8::from_be_bytes(self.array()?)),
            b'B' => FieldValue::ShortShortUInt(self.u8()?),
            b's' => FieldValue::ShortInt(i16::from_be_bytes(self.array()?)),
            b'u' => FieldValue::ShortUInt(u16::from_be_bytes(self.array()?)),
            b'I' => FieldValue::LongInt(i32::from_be_bytes(self.array()?)),
            b'i' => FieldValue::LongUInt(u32::from_be_bytes(self.array()?)),
            b'l' => FieldValue::LongLongInt(i64::from_be_bytes(self.array()?)),
            b'f' => FieldValue::Float(f32::from_be_bytes(self.array()?)),
            b'd' => FieldValue::Double(f64::from_be_bytes(self.array()?)),
            b'D' => FieldValue::Decimal(Decimal {
                scale: self.u8()?,
                value: u32::from_be_bytes(self.array()?),
            }),
            b'T' => FieldValue::Timestamp(u64::from_be_bytes(self.array()?)),
            b'V' => FieldValue::Void,
            b'S' => FieldValue::LongString(LongString::from(self.long_bytes()?)),
            b'x' => FieldValue::ByteArray(self.long_bytes()?),
            b'F' => FieldValue::FieldTable(FieldTable::from_validated(self.long_bytes()?)),
            b'A' => FieldValue::FieldArray(FieldArray::from_validated(self.long_bytes()?)),
            _ => return None,
        })
    }
}

/// Entries (`named`) or values in validated bytes, without decoding them.
fn count(raw: &Bytes, named: bool) -> usize {
    let mut walk = Walk::new(raw);
    let mut n = 0;
    while !walk.at_end() {
        if named && walk.name().is_none() {
            break;
        }
        if walk.skip_value().is_none() {
            break;
        }
        n += 1;
    }
    n
}

fn decode_entries(raw: &Bytes) -> Vec<(ShortString, FieldValue)> {
    if raw.is_empty() {
        return Vec::new();
    }
    let mut entries = Vec::with_capacity(count(raw, true));
    let mut walk = Walk::new(raw);
    while !walk.at_end() {
        let (Some(name), Some(value)) = (walk.name(), walk.value()) else {
            break;
        };
        entries.push((ShortString::from(raw.slice(name)), value));
    }
    entries
}

fn decode_values(raw: &Bytes) -> Vec<FieldValue> {
    if raw.is_empty() {
        return Vec::new();
    }
    let mut values = Vec::with_capacity(count(raw, false));
    let mut walk = Walk::new(raw);
    while !walk.at_end() {
        let Some(value) = walk.value() else { break };
        values.push(value);
    }
    values
}

// ---------------------------------------------------------------------------------------------
// Encoding

enum Pending<'t> {
    Table(std::slice::Iter<'t, (ShortString, FieldValue)>),
    Array(std::slice::Iter<'t, FieldValue>),
}

/// Append four-octet length-prefixed validated bytes: an untouched decoded container.
fn put_raw(buf: &mut BytesMut, raw: &Bytes, what: &'static str) -> Result<(), EncodeError> {
    put_long_bytes(buf, raw, what)
}

impl FieldTable {
    /// Append a length-prefixed field table. An untouched decoded table (or nested table) is
    /// copied as it came.
    pub(crate) fn encode_to(
        &self,
        buf: &mut BytesMut,
        what: &'static str,
    ) -> Result<(), EncodeError> {
        let entries = match &self.0 {
            Lazy::Decoded(d) => return put_raw(buf, &d.raw, what),
            Lazy::Built(entries) if entries.is_empty() => {
                buf.put_u32(0);
                return Ok(());
            }
            Lazy::Built(entries) => entries,
        };
        let mut stack: Vec<(Pending<'_>, usize)> = Vec::with_capacity(4);
        stack.push((Pending::Table(entries.iter()), buf.len()));
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
                if let Some(slot) = buf.get_mut(len_at..len_at + 4) {
                    slot.copy_from_slice(&len.to_be_bytes());
                }
                stack.pop();
                continue;
            };
            buf.put_u8(value.type_letter());
            match value {
                FieldValue::FieldTable(FieldTable(Lazy::Decoded(d))) => {
                    put_raw(buf, &d.raw, "nested field table")?
                }
                FieldValue::FieldTable(FieldTable(Lazy::Built(entries))) => {
                    stack.push((Pending::Table(entries.iter()), buf.len()));
                    buf.put_u32(0);
                }
                FieldValue::FieldArray(FieldArray(Lazy::Decoded(d))) => {
                    put_raw(buf, &d.raw, "field array")?
                }
                FieldValue::FieldArray(FieldArray(Lazy::Built(values))) => {
                    stack.push((Pending::Array(values.iter()), buf.len()));
                    buf.put_u32(0);
                }
                scalar => encode_scalar(buf, scalar)?,
            }
        }
        Ok(())
    }
}

fn encode_scalar(buf: &mut BytesMut, v: &FieldValue) -> Result<(), EncodeError> {
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
mod tests;
