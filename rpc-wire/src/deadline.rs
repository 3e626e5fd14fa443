//! Deadlines on the wire: a call's timeout travels with its request.
//!
//! A request carries its caller's deadline twice:
//!
//! * `expiration` = the time left, in milliseconds, as a decimal string (the 0-9-1 property
//!   RabbitMQ applies per message): a request still queued when it expires is dropped by the
//!   broker and never reaches a server;
//! * the application header [`DEADLINE_HEADER`] (`x-deadline`) = the absolute deadline as a
//!   signed 64-bit count of milliseconds since the Unix epoch (field type `l`): a server reads it
//!   on delivery, never starts a request whose deadline has passed, and cancels one that runs past
//!   it — the caller has given up, and an answer would only be dropped.
//!
//! **Clock skew**: `x-deadline` compares the caller's clock with the server's. Hosts kept in step
//! by NTP differ by milliseconds, far below RPC timeouts; a server whose clock runs ahead by `d`
//! gives up `d` early (and the caller would still time out on its own clock). `expiration` is
//! relative and immune to skew, but is only applied while the message waits in the queue.
//! Requests without `x-deadline` (pika's, the other tutorials') are served as always.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amqp_codec::{BasicProperties, FieldValue};

/// The application header holding a request's absolute deadline (ms since the Unix epoch, `l`).
pub const DEADLINE_HEADER: &str = "x-deadline";

/// Milliseconds since the Unix epoch of `t` (negative before 1970; saturating).
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The deadline a request carries in [`DEADLINE_HEADER`], in ms since the epoch. Any integer
/// field type is accepted (other clients may send `I` or `L`); anything else is no deadline.
pub fn deadline_of(properties: &BasicProperties) -> Option<i64> {
    match properties.headers.as_ref()?.lookup(DEADLINE_HEADER)? {
        FieldValue::LongLongInt(v) => Some(v),
        FieldValue::LongUInt(v) => Some(i64::from(v)),
        FieldValue::LongInt(v) => Some(i64::from(v)),
        FieldValue::ShortInt(v) => Some(i64::from(v)),
        FieldValue::ShortUInt(v) => Some(i64::from(v)),
        FieldValue::Timestamp(secs) => i64::try_from(secs).ok()?.checked_mul(1000),
        _ => None,
    }
}

/// How long is left before `deadline_ms` at `now` (`None` once it has passed).
pub fn time_left(deadline_ms: i64, now: SystemTime) -> Option<Duration> {
    let left = deadline_ms.checked_sub(unix_millis(now))?;
    (left > 0).then(|| Duration::from_millis(left as u64))
}

/// The `expiration` property for `left`: whole milliseconds, at least 1 (RabbitMQ treats 0 as
/// "expire unless a consumer is ready this instant").
pub fn expiration(left: Duration) -> String {
    let (digits, from) = expiration_digits(left);
    String::from_utf8_lossy(&digits[from..]).into_owned()
}

/// [`expiration`] written into a stack buffer, without a formatter or an allocation (for a
/// request's properties encoded in place): the text is `digits[from..]`.
pub fn expiration_digits(left: Duration) -> ([u8; 10], usize) {
    // At most u32::MAX: ten digits.
    let mut ms = left.as_millis().clamp(1, u128::from(u32::MAX)) as u32;
    let mut digits = [b'0'; 10];
    let mut from = digits.len();
    while ms > 0 {
        from -= 1;
        digits[from] = b'0' + (ms % 10) as u8;
        ms /= 10;
    }
    (digits, from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::FieldTable;

    #[test]
    fn deadlines_round_trip_and_run_out() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(unix_millis(now), 1_700_000_000_123);
        let props = BasicProperties::default()
            .with_headers(FieldTable::new().with(DEADLINE_HEADER, 1_700_000_001_000i64));
        let d = deadline_of(&props).unwrap();
        assert_eq!(time_left(d, now), Some(Duration::from_millis(877)));
        assert_eq!(time_left(d, now + Duration::from_secs(1)), None);
        assert_eq!(deadline_of(&BasicProperties::default()), None);
        let text = BasicProperties::default()
            .with_headers(FieldTable::new().with(DEADLINE_HEADER, "soon"));
        assert_eq!(deadline_of(&text), None);
        assert_eq!(expiration(Duration::from_micros(10)), "1");
        assert_eq!(expiration(Duration::from_millis(1500)), "1500");
        assert_eq!(expiration(Duration::from_millis(30_000)), "30000");
        assert_eq!(
            expiration(Duration::from_secs(1 << 40)),
            u32::MAX.to_string()
        );
        for ms in [1u64, 9, 10, 99, 100, 4_294_967_295] {
            assert_eq!(expiration(Duration::from_millis(ms)), ms.to_string());
        }
        assert!(unix_millis(UNIX_EPOCH - Duration::from_secs(1)) < 0);
    }
}
