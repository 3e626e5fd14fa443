//! W3C trace context on the wire: the `traceparent` application header.
//!
//! `traceparent: 00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>` (W3C Trace Context,
//! version 00). A caller sends its span as the parent; a server continues the trace (same trace
//! id) under a span of its own and names that span in its reply's `traceparent`.

use std::fmt;

use amqp_codec::BasicProperties;

/// The application header carrying the trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// A parsed `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace (never 0).
    pub trace_id: u128,
    /// The span of the sender (never 0).
    pub span_id: u64,
    /// Trace flags (`01` = sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses the header's text; `None` for anything W3C says to ignore (wrong version or length,
    /// uppercase or non-hex digits, an all-zero trace or span id).
    pub fn parse(text: &[u8]) -> Option<TraceParent> {
        if text.len() != 55 || text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
            return None;
        }
        if &text[..2] != b"00" {
            return None;
        }
        // Lowercase hex only (W3C: uppercase is invalid), decoded by hand through a table, in
        // 64-bit halves: this runs for every request a server takes (a u128 fold over all 50
        // digits was ~3% of a server's CPU at 64 calls in flight).
        // Eight digits at a time, as one u64 (SWAR): ~4 instructions a digit where the table
        // took ~8 (callgrind), for every request a server takes.
        let trace_id = (u128::from(hex16(&text[3..19])?) << 64) | u128::from(hex16(&text[19..35])?);
        let span_id = hex16(&text[36..52])?;
        let flags = hex64(&text[53..55])? as u8;
        (trace_id != 0 && span_id != 0).then_some(TraceParent {
            trace_id,
            span_id,
            flags,
        })
    }

    /// The same trace, a new span: what a server (or a nested call) sends on.
    pub fn child(self, span_id: u64) -> TraceParent {
        TraceParent { span_id, ..self }
    }

    /// The trace id as 32 lowercase hex digits (the `trace_id` of logs).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl TraceParent {
    /// The header's 55 bytes, written without a formatter (this runs for every request).
    pub fn to_bytes(&self) -> [u8; 55] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        // Eight digits at a time, as one u64 (SWAR), rather than a table look-up per digit.
        out[3..19].copy_from_slice(&hex_digits((self.trace_id >> 64) as u64));
        out[19..35].copy_from_slice(&hex_digits(self.trace_id as u64));
        out[36..52].copy_from_slice(&hex_digits(self.span_id));
        out[53] = HEX[usize::from(self.flags >> 4)];
        out[54] = HEX[usize::from(self.flags & 0xf)];
        out
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always ASCII.
        f.write_str(std::str::from_utf8(&self.to_bytes()).unwrap_or_default())
    }
}

tokio::task_local! {
    static CURRENT: TraceParent;
}

/// The trace context of the task running now: the one a server set for the handler it runs
/// (so a call the handler makes continues the trace), or one set with [`scope`]. `None` outside
/// any.
pub fn current() -> Option<TraceParent> {
    CURRENT.try_with(|tp| *tp).ok()
}

/// Runs `future` with `context` as the [`current`] trace context: calls made inside it carry
/// `context`'s trace id, with `context`'s span as their parent.
pub async fn scope<F: std::future::Future>(context: TraceParent, future: F) -> F::Output {
    CURRENT.scope(context, future).await
}

/// A fresh, random id for a span (never 0), from the same source as [`new_trace`].
pub fn new_span_id() -> u64 {
    loop {
        let id = random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// A fresh trace: random trace and span ids, sampled.
pub fn new_trace() -> TraceParent {
    let trace_id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    TraceParent {
        trace_id: if trace_id == 0 { 1 } else { trace_id },
        span_id: new_span_id(),
        flags: 1,
    }
}

/// 64 random bits from a per-thread wyrand generator, seeded once per thread from std's random
/// hash keys, a global counter and the clock. Trace ids must be unique, not secret (W3C asks for
/// randomness to avoid collisions, not unpredictability); this is on every request's path, so it
/// costs a multiply, not a hash of the clock (measured: the SipHash-per-id version was a third
/// of what the trace context added to a call).
fn random_u64() -> u64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    fn seed() -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    }
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|state| {
        // wyrand (Wang Yi): a 64-bit state stepped by an odd constant, mixed by one 128-bit
        // multiply; passes BigCrush and PractRand.
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        (t as u64) ^ ((t >> 64) as u64)
    })
}

/// Each byte of `0x01` repeated: the SWAR constants below are multiples of it.
const ONES: u64 = 0x0101_0101_0101_0101;

/// The eight nibbles of `x`, one per byte, most significant first in big-endian order.
fn spread_nibbles(x: u32) -> u64 {
    let mut x = u64::from(x);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f
}

/// Eight nibbles (one per byte, 0..=15) as lowercase hex digits: `'0' + n`, plus 39 more
/// (`'a' - '0' - 10`) where `n > 9`, which is where `n + 6` reaches 16.
fn nibbles_to_hex(n: u64) -> u64 {
    let letters = ((n + 6 * ONES) >> 4) & ONES;
    n + 0x30 * ONES + 39 * letters
}

/// `v` as 16 lowercase hex digits.
pub(crate) fn hex_digits(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&nibbles_to_hex(spread_nibbles((v >> 32) as u32)).to_be_bytes());
    out[8..].copy_from_slice(&nibbles_to_hex(spread_nibbles(v as u32)).to_be_bytes());
    out
}

/// Eight lowercase hex digits (big-endian in `c`) as a number; `None` on anything else.
fn hex8(c: u64) -> Option<u32> {
    const HIGH: u64 = 0x80 * ONES;
    // For bytes below 0x80 (checked first), `b + (0x80 - lo)` has its high bit set iff
    // `b >= lo`, and `b + (0x7f - hi)` iff `b > hi`; neither carries into the next byte.
    if c & HIGH != 0 {
        return None;
    }
    let at_least = |lo: u64| (c + (0x80 - lo) * ONES) & HIGH;
    let above = |hi: u64| (c + (0x7f - hi) * ONES) & HIGH;
    let digit = at_least(0x30) & !above(0x39);
    let letter = at_least(0x61) & !above(0x66);
    if digit | letter != HIGH {
        return None;
    }
    // A digit's value is its low nibble; a letter's is its low nibble plus 9.
    let mut x = (c & (0x0f * ONES)) + (letter >> 7) * 9;
    x = (x | (x >> 4)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    Some(((x | (x >> 16)) & 0xffff_ffff) as u32)
}

/// Sixteen lowercase hex digits as a number; `None` on anything else.
fn hex16(digits: &[u8]) -> Option<u64> {
    let hi = u64::from_be_bytes(digits.get(..8)?.try_into().ok()?);
    let lo = u64::from_be_bytes(digits.get(8..16)?.try_into().ok()?);
    Some((u64::from(hex8(hi)?) << 32) | u64::from(hex8(lo)?))
}

/// The value of each byte as a lowercase hex digit, or 0xff.
const HEX_DIGIT: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Up to 16 lowercase hex digits as a number; `None` on anything else.
fn hex64(digits: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    let mut bad = 0u8;
    for &b in digits {
        let d = HEX_DIGIT[usize::from(b)];
        bad |= d;
        value = (value << 4) | u64::from(d & 0xf);
    }
    // A 0xff anywhere sets the high bits, which no digit has.
    (bad & 0xf0 == 0).then_some(value)
}

/// The `traceparent` a message carries, if valid.
pub fn traceparent_of(properties: &BasicProperties) -> Option<TraceParent> {
    TraceParent::parse(
        properties
            .headers
            .as_ref()?
            .lookup_bytes(TRACEPARENT_HEADER)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_ids_differ_and_scopes_nest() {
        let a = new_trace();
        let b = new_trace();
        assert_ne!(a.trace_id, b.trace_id);
        assert_ne!(a.span_id, 0);
        assert_eq!(TraceParent::parse(a.to_string().as_bytes()), Some(a));
        assert_eq!(current(), None);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(scope(a, async move {
            assert_eq!(current(), Some(a));
            scope(b, async move { assert_eq!(current(), Some(b)) }).await;
            assert_eq!(current(), Some(a));
        }));
    }

    #[test]
    fn parses_what_w3c_allows_and_nothing_else() {
        let text = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let tp = TraceParent::parse(text.as_bytes()).unwrap();
        assert_eq!(tp.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(tp.span_id, 0x00f067aa0ba902b7);
        assert_eq!(tp.flags, 1);
        assert_eq!(tp.to_string(), text);
        assert_eq!(&tp.to_bytes()[..], text.as_bytes());
        assert_eq!(
            tp.child(7).to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000007-01"
        );
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736x00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn eight_digits_at_a_time_agree_with_the_table_on_every_byte() {
        // Every byte value at every position of a chunk of valid digits.
        let base = *b"0123456789abcdef";
        for at in 0..16 {
            for b in 0..=255u8 {
                let mut digits = base;
                digits[at] = b;
                assert_eq!(hex16(&digits), hex64(&digits), "byte {b:#04x} at {at}");
            }
        }
        for v in [
            0u64,
            1,
            0x0123_4567_89ab_cdef,
            u64::MAX,
            0xfedc_ba98_7654_3210,
        ] {
            let text = hex_digits(v);
            assert_eq!(text, *format!("{v:016x}").as_bytes());
            assert_eq!(hex16(&text), Some(v));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            assert_eq!(hex_digits(x), *format!("{x:016x}").as_bytes());
            assert_eq!(hex16(&hex_digits(x)), Some(x));
        }
    }
}
