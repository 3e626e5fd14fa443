//! Tables: the lazy view against the eager one, and the validator against the decoder it replaced.

use super::*;
use proptest::collection::vec;
use proptest::prelude::*;

fn decode(bytes: &[u8]) -> Result<FieldTable, DecodeError> {
    FieldTable::decode(&Bytes::copy_from_slice(bytes))
}

fn encode(t: &FieldTable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    t.encode(&mut buf).unwrap();
    buf.to_vec()
}

/// The decoder tables had before they were decoded lazily, kept verbatim as the reference: it
/// builds every entry, and the validator must accept exactly what it accepted, with the same
/// error for everything else.
mod reference {
    use super::*;

    enum Open {
        Table(Vec<(ShortString, FieldValue)>),
        Array(Vec<FieldValue>),
    }

    struct Level {
        open: Open,
        name: ShortString,
        parent_end: usize,
    }

    pub fn read_table(r: &mut Reader<'_>, what: &'static str) -> Result<FieldTable, DecodeError> {
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
                    Open::Table(entries) => {
                        FieldValue::FieldTable(FieldTable::from_entries(entries))
                    }
                    Open::Array(values) => FieldValue::FieldArray(FieldArray::from(values)),
                };
                let Some(mut parent) = stack.pop() else {
                    return match value {
                        FieldValue::FieldTable(t) => Ok(t),
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

    fn read_scalar(
        r: &mut Reader<'_>,
        letter: u8,
        offset: usize,
    ) -> Result<FieldValue, DecodeError> {
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

    pub fn decode(bytes: &[u8]) -> Result<FieldTable, DecodeError> {
        let src = Bytes::copy_from_slice(bytes);
        let mut r = Reader::new(&src, 0);
        let t = read_table(&mut r, "field table")?;
        r.finish("field table")?;
        Ok(t)
    }
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
    assert_eq!(format!("{back:?}"), format!("{t:?}"));
}

#[test]
fn signed_short_and_long_long_follow_rabbitmq_errata() {
    // "s" is a signed 16-bit int, "l" a signed 64-bit int.
    let t = decode(&[
        0, 0, 0, 16, 1, b'a', b's', 0xff, 0xfe, 1, b'b', b'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xfd,
    ])
    .unwrap();
    assert_eq!(t.lookup("a"), Some(FieldValue::ShortInt(-2)));
    assert_eq!(t.lookup("b"), Some(FieldValue::LongLongInt(-3)));
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
fn a_malformed_entry_after_a_nested_table_is_found() {
    // {"n": {"k": V}, "z": <unknown letter 'Z'>}: the error is past the nested table's end.
    let bytes = [
        0, 0, 0, 14, 1, b'n', b'F', 0, 0, 0, 3, 1, b'k', b'V', 1, b'z', b'Z', 0,
    ];
    assert_eq!(
        decode(&bytes).unwrap_err(),
        DecodeError::UnknownFieldType {
            letter: b'Z',
            offset: 16
        }
    );
    assert_eq!(decode(&bytes), reference::decode(&bytes));
}

/// The headers the RPC layer puts on every request, read without decoding the table.
#[test]
fn deadline_and_traceparent_are_read_in_place() {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    assert_eq!(traceparent.len(), 55);
    let t = FieldTable::new()
        .with("x-deadline", 1_700_000_030_000i64)
        .with("traceparent", traceparent);
    let bytes = Bytes::from(encode(&t));
    let d = FieldTable::decode(&bytes).unwrap();
    assert_eq!(
        d.lookup("x-deadline"),
        Some(FieldValue::LongLongInt(1_700_000_030_000))
    );
    match d.lookup("traceparent") {
        Some(FieldValue::LongString(s)) => {
            assert_eq!(s, traceparent);
            // A slice of the decoded bytes, not a copy.
            let within = bytes.as_ptr_range();
            assert!(within.contains(&s.as_bytes().as_ptr()));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(d.lookup_str("traceparent"), Some(traceparent));
    assert_eq!(d.lookup_str("x-deadline"), None, "not a string");
    assert_eq!(d.lookup("x-error"), None);
    assert!(d.contains_key("traceparent") && !d.contains_key("trace"));
    assert_eq!(d.len(), 2);
    assert!(
        matches!(d.0.view(), View::Raw(_)),
        "nothing was decoded and kept"
    );
}

#[test]
fn an_untouched_decoded_table_re_encodes_its_bytes() {
    let t = FieldTable::new()
        .with("a", 1i32)
        .with("n", FieldTable::new().with("b", "c"))
        .with("l", FieldArray::from(vec![FieldValue::Void]));
    let bytes = Bytes::from(encode(&t));
    let d = FieldTable::decode(&bytes).unwrap();
    assert_eq!(encode(&d), bytes);
    assert!(matches!(d.0.view(), View::Raw(_)));
    // Decoding the entries (for `get`) keeps the bytes: still copied as they came.
    assert!(matches!(d.get("n"), Some(FieldValue::FieldTable(_))));
    assert!(matches!(d.0.view(), View::Entries(_)) && d.0.raw().is_some());
    assert_eq!(encode(&d), bytes);
    // A change makes it a built table; a re-encoding then comes from the entries.
    let mut changed = d.clone();
    changed.insert("a", 2i32);
    assert!(changed.0.raw().is_none());
    assert_eq!(changed, t.clone().with("a", 2i32));
    assert_eq!(encode(&changed), encode(&t.clone().with("a", 2i32)));
    assert_eq!(d, t, "the clone's change leaves the original alone");
}

#[test]
fn decode_refuses_trailing_bytes() {
    assert_eq!(
        decode(&[0, 0, 0, 0, 9]).unwrap_err(),
        DecodeError::TrailingBytes {
            offset: 4,
            count: 1,
            after: "field table"
        }
    );
}

#[test]
fn hostile_depth_does_not_overflow_the_stack() {
    // 200_000 nested arrays: ~1 MB of input, far deeper than any recursion could survive.
    let depth = 200_000usize;
    let mut bytes = Vec::with_capacity(depth * 5 + 16);
    bytes.extend_from_slice(&[0, 0, 0, 0, 1, b'k']);
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
    // (Equality and `Debug` recurse, as derived ones do: compare what the decoders encode.)
    assert_eq!(encode(&reference::decode(&bytes).unwrap()), bytes);

    // Decode every level (each hands out references into its parent), then drop them all.
    let Some(FieldValue::FieldArray(level)) = t.get("k") else {
        panic!("k is an array");
    };
    let mut level: &FieldArray = level;
    let mut seen = 1;
    while let Some(FieldValue::FieldArray(inner)) = level.iter().next() {
        level = inner;
        seen += 1;
    }
    assert_eq!(seen, depth);
    drop(t);
}

/// Every byte of a table with every type letter, overwritten with values chosen to hit lengths,
/// letters and names: the validator judges each damaged table as the full decoder did.
#[test]
fn every_single_byte_damage_is_judged_as_before() {
    let t = FieldTable::new()
        .with("t", true)
        .with("s", FieldValue::ShortInt(-300))
        .with("D", FieldValue::Decimal(Decimal { scale: 2, value: 7 }))
        .with("S", "text")
        .with("x", FieldValue::ByteArray(Bytes::from_static(b"\x00\xff")))
        .with(
            "A",
            FieldArray::from(vec![FieldValue::LongInt(1), "two".into()]),
        )
        .with(
            "F",
            FieldTable::new()
                .with("k", FieldValue::Void)
                .with("l", 5i64),
        )
        .with("d", FieldValue::Double(0.5));
    let bytes = encode(&t);
    let (mut refused, mut accepted) = (0, 0);
    for at in 0..bytes.len() {
        let original = bytes[at];
        for value in [
            0,
            1,
            2,
            3,
            0x7f,
            0x80,
            0xff,
            b'F',
            b'A',
            b'S',
            b'V',
            b'Z',
            original ^ 1,
        ] {
            let mut damaged = bytes.clone();
            damaged[at] = value;
            match (decode(&damaged), reference::decode(&damaged)) {
                (Ok(lazy), Ok(before)) => {
                    assert_eq!(
                        format!("{lazy:?}"),
                        format!("{before:?}"),
                        "byte {at} = {value}"
                    );
                    assert_eq!(encode(&lazy), damaged);
                    accepted += 1;
                }
                (lazy, before) => {
                    assert_eq!(lazy.map(drop), before.map(drop), "byte {at} = {value}");
                    refused += 1;
                }
            }
        }
    }
    assert!(
        refused > 100 && accepted > 100,
        "{refused} refused, {accepted} accepted"
    );
}

/// The table fuzz target's corpus (inputs libFuzzer found interesting against the old decoder,
/// `fuzz/corpus/table`), each the body of a table: judged as the old decoder judged it.
#[test]
fn the_fuzz_corpus_is_judged_as_before() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/table");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/table") {
        let body = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
        let Ok(len) = u32::try_from(body.len()) else {
            continue;
        };
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        match (decode(&bytes), reference::decode(&bytes)) {
            (Ok(lazy), Ok(before)) => {
                assert_eq!(format!("{lazy:?}"), format!("{before:?}"));
                assert_eq!(encode(&lazy), bytes);
            }
            (lazy, before) => assert_eq!(lazy.map(drop), before.map(drop)),
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} corpus inputs");
}

// --- properties ---------------------------------------------------------------------------------

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..12),
        Just(b"x-deadline".to_vec()),
        Just(b"traceparent".to_vec()),
    ]
}

fn field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Boolean),
        any::<i8>().prop_map(FieldValue::ShortShortInt),
        any::<u8>().prop_map(FieldValue::ShortShortUInt),
        any::<i16>().prop_map(FieldValue::ShortInt),
        any::<u16>().prop_map(FieldValue::ShortUInt),
        any::<i32>().prop_map(FieldValue::LongInt),
        any::<u32>().prop_map(FieldValue::LongUInt),
        any::<i64>().prop_map(FieldValue::LongLongInt),
        any::<f32>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::Float),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::Double),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| FieldValue::Decimal(Decimal { scale, value })),
        vec(any::<u8>(), 0..60).prop_map(|v| FieldValue::LongString(v.into())),
        vec(any::<u8>(), 0..20).prop_map(|v| FieldValue::ByteArray(Bytes::from(v))),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
    ];
    leaf.prop_recursive(4, 64, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|v| FieldValue::FieldArray(FieldArray::from(v))),
            vec((key(), inner), 0..6).prop_map(|kv| {
                let mut t = FieldTable::new();
                for (k, v) in kv {
                    t.push(k, v);
                }
                FieldValue::FieldTable(t)
            }),
        ]
    })
}

/// Tables as peers send them, duplicate names included (decoding keeps them).
fn table() -> impl Strategy<Value = FieldTable> {
    vec((key(), field_value()), 0..10).prop_map(|kv| {
        let mut t = FieldTable::new();
        for (k, v) in kv {
            t.push(k, v);
        }
        t
    })
}

/// Every way of reading `lazy` (decoded, nothing kept) agrees with the built `eager`, level by
/// level into nested tables and arrays.
fn assert_views_agree(lazy: &FieldTable, eager: &FieldTable) {
    assert_eq!(lazy.len(), eager.len());
    assert_eq!(lazy.is_empty(), eager.is_empty());
    let entries: Vec<_> = lazy.entries().collect();
    assert_eq!(entries.len(), eager.len());
    for ((name, value), (e_name, e_value)) in entries.iter().zip(eager.iter()) {
        assert_eq!(name, e_name);
        assert_eq!(value, e_value);
        // The first entry of a name is the one both kinds of lookup find.
        let first = eager.iter().find(|(k, _)| k == name).map(|(_, v)| v);
        if let Some(name) = name.as_str() {
            assert_eq!(lazy.lookup(name).as_ref(), first);
            assert!(lazy.contains_key(name));
            let bytes = match first {
                Some(FieldValue::LongString(s)) => Some(s.as_bytes()),
                Some(FieldValue::ByteArray(b)) => Some(&b[..]),
                _ => None,
            };
            assert_eq!(lazy.lookup_bytes(name), bytes);
            assert_eq!(eager.lookup_bytes(name), bytes);
        }
        match (value, e_value) {
            (FieldValue::FieldTable(l), FieldValue::FieldTable(e)) => assert_views_agree(l, e),
            (FieldValue::FieldArray(l), FieldValue::FieldArray(e)) => {
                assert_eq!(l.len(), e.len());
                assert_eq!(
                    l.values().collect::<Vec<_>>(),
                    e.iter().cloned().collect::<Vec<_>>()
                );
            }
            _ => {}
        }
    }
    assert_eq!(lazy.lookup("no such name, longer than any key"), None);
    assert_eq!(format!("{lazy:?}"), format!("{eager:?}"));
}

/// A valid table's bytes, then damaged: bytes overwritten, the declared length changed.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        table(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        prop_oneof![Just(0i64), -8i64..8],
    )
        .prop_map(|(t, hits, len_delta)| {
            let mut bytes = encode(&t);
            for (at, byte) in hits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if len_delta != 0 && bytes.len() >= 4 {
                let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as i64;
                let len = (len + len_delta).max(0) as u32;
                bytes[..4].copy_from_slice(&len.to_be_bytes());
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lazy_and_eager_views_agree(t in table()) {
        let bytes = Bytes::from(encode(&t));
        let lazy = FieldTable::decode(&bytes).unwrap();
        assert_eq!(lazy, t);
        assert_views_agree(&lazy, &t);
        prop_assert!(lazy.is_empty() || matches!(lazy.0.view(), View::Raw(_)), "reading in place kept nothing");
        prop_assert_eq!(encode(&lazy), bytes.to_vec());

        // The eager view of a fresh decode: every entry decoded by `iter`/`get`.
        let eager = FieldTable::decode(&bytes).unwrap();
        prop_assert_eq!(eager.iter().cloned().collect::<Vec<_>>(), t.iter().cloned().collect::<Vec<_>>());
        for (name, _) in t.iter() {
            if let Some(name) = name.as_str() {
                prop_assert_eq!(eager.get(name), t.get(name));
                prop_assert_eq!(eager.lookup(name), t.get(name).cloned());
            }
        }
        prop_assert_eq!(&eager, &lazy);
        prop_assert_eq!(encode(&eager), bytes.to_vec());
        prop_assert_eq!(eager.into_entries(), t.clone().into_entries());

        // The decoder tables had before decodes the same bytes to the same table.
        let before = reference::decode(&bytes).unwrap();
        prop_assert_eq!(&before, &t);
        prop_assert_eq!(format!("{before:?}"), format!("{lazy:?}"));

        // A change to a decoded table encodes as the same change to the built one.
        let mut changed = FieldTable::decode(&bytes).unwrap();
        changed.insert("x-new", 7i32);
        prop_assert_eq!(encode(&changed), encode(&t.clone().with("x-new", 7i32)));
    }

    #[test]
    fn damaged_tables_are_refused_with_the_same_error_as_before(bytes in damaged()) {
        match (decode(&bytes), reference::decode(&bytes)) {
            (Ok(lazy), Ok(before)) => {
                // Damage may make a NaN: compare what is printed. The lazy table re-encodes the
                // bytes as they came (a boolean octet 2 stays 2, where the old decoder wrote 1).
                prop_assert_eq!(format!("{lazy:?}"), format!("{before:?}"));
                prop_assert_eq!(encode(&lazy), bytes);
            }
            (lazy, before) => prop_assert_eq!(lazy.map(drop), before.map(drop)),
        }
    }

    #[test]
    fn arbitrary_bytes_are_judged_as_before(body in vec(any::<u8>(), 0..48)) {
        let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&body);
        match (decode(&bytes), reference::decode(&bytes)) {
            (Ok(lazy), Ok(before)) => {
                prop_assert_eq!(format!("{lazy:?}"), format!("{before:?}"));
                prop_assert_eq!(encode(&lazy), bytes);
            }
            (lazy, before) => prop_assert_eq!(lazy.map(drop), before.map(drop)),
        }
    }
}
