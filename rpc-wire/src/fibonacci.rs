//! Tutorial six's Fibonacci request format, and its validation on the server's side.
//!
//! The request body is `str(n)`; the reply body is `str(fib(n))`, as decimal ASCII digits.
//!
//! The tutorial's client publishes `str(n)`: ASCII decimal digits. Its server does `int(body)` and
//! trusts the result ("it assumes only valid positive integer input"); tutorial six leaves open
//! "how to protect against invalid incoming messages (eg checking bounds) before processing". This
//! module is that protection: every body either parses to an `n` the server accepts or yields a
//! [`FibRequestError`] whose message is fit to send back to the caller.

use std::fmt;

use crate::ErrorCode;

/// Largest request body accepted, in bytes. `str(n)` for any `n` a server would accept is a few
/// digits; checking the length first means a huge body is rejected without being scanned.
pub const MAX_BODY: usize = 64;

/// Default bound on `n`: `fib(100_000)` has 20 899 digits and takes about a millisecond, so one
/// request cannot occupy a worker for long.
pub const DEFAULT_MAX_N: u64 = 100_000;

/// Why a request body is not a valid Fibonacci request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FibRequestError {
    /// The body is empty (or only whitespace).
    #[error("empty request body: expected a non-negative decimal integer such as 30")]
    Empty,
    /// The body is longer than [`MAX_BODY`].
    #[error("request body of {len} bytes is too large (at most {max} bytes): expected a decimal integer")]
    TooLarge {
        /// Length of the body.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not valid UTF-8.
    #[error("request body is not valid UTF-8 (invalid byte at offset {offset}): expected a decimal integer")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The body is text but not a decimal integer.
    #[error("request body {body:?} is not a decimal integer")]
    NotANumber {
        /// The (trimmed) body.
        body: String,
    },
    /// The body is a negative integer.
    #[error("n = {n} is negative: fib(n) is only served for n >= 0")]
    Negative {
        /// The number as sent.
        n: String,
    },
    /// The number is over the server's bound.
    #[error("n = {n} is over this server's bound of {max}")]
    OverBound {
        /// The number as sent (it may not fit in any integer type).
        n: String,
        /// The bound in force.
        max: u64,
    },
}

impl FibRequestError {
    /// The error code this error is replied with (the `x-error` header).
    pub fn code(&self) -> ErrorCode {
        match self {
            FibRequestError::TooLarge { .. } | FibRequestError::OverBound { .. } => {
                ErrorCode::TooLarge
            }
            _ => ErrorCode::BadRequest,
        }
    }
}

/// The request body for `fib(n)`: `str(n)`, as the tutorial's client sends it.
///
/// ```
/// assert_eq!(rpc_wire::fibonacci::request_body(30), "30");
/// ```
pub fn request_body(n: u64) -> String {
    n.to_string()
}

/// Parses `n` from a request body: ASCII decimal digits with an optional `+`, surrounded by
/// optional whitespace (what Python's `int(body)` accepts from `str(n)`), at most [`MAX_BODY`]
/// bytes, `0 <= n <= max_n`.
///
/// ```
/// use rpc_wire::fibonacci::{parse_n, FibRequestError};
/// assert_eq!(parse_n(b"30", 100_000), Ok(30));
/// assert_eq!(parse_n(b" 42\n", 100_000), Ok(42));
/// assert!(matches!(parse_n(b"-1", 100_000), Err(FibRequestError::Negative { .. })));
/// assert!(matches!(parse_n(b"100001", 100_000), Err(FibRequestError::OverBound { .. })));
/// ```
pub fn parse_n(body: &[u8], max_n: u64) -> Result<u64, FibRequestError> {
    if body.len() > MAX_BODY {
        return Err(FibRequestError::TooLarge {
            len: body.len(),
            max: MAX_BODY,
        });
    }
    let text = std::str::from_utf8(body).map_err(|e| FibRequestError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(FibRequestError::Empty);
    }
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FibRequestError::NotANumber {
            body: text.to_owned(),
        });
    }
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        // "0", "-0", "+000": Python's int() reads all of them as 0.
        return Ok(0);
    }
    if negative {
        return Err(FibRequestError::Negative { n: text.to_owned() });
    }
    // Over 20 significant digits cannot fit in a u64; such a number is over any bound.
    match significant.parse::<u64>() {
        Ok(n) if n <= max_n => Ok(n),
        _ => Err(FibRequestError::OverBound {
            n: Abbrev(significant).to_string(),
            max: max_n,
        }),
    }
}

/// A number shown in full up to 24 digits, abbreviated beyond.
struct Abbrev<'a>(&'a str);

impl fmt::Display for Abbrev<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s.len() <= 24 {
            f.write_str(s)
        } else {
            write!(f, "{}…({} digits)", &s[..12], s.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = DEFAULT_MAX_N;

    #[test]
    fn accepts_what_str_n_produces() {
        assert_eq!(parse_n(b"0", MAX), Ok(0));
        assert_eq!(parse_n(b"30", MAX), Ok(30));
        assert_eq!(parse_n(b"100000", MAX), Ok(100_000));
        assert_eq!(parse_n(b"+7", MAX), Ok(7));
        assert_eq!(parse_n(b"007", MAX), Ok(7));
        assert_eq!(parse_n(b"-0", MAX), Ok(0));
        assert_eq!(parse_n(b"\t 12 \r\n", MAX), Ok(12));
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        assert_eq!(parse_n(b"", MAX), Err(FibRequestError::Empty));
        assert_eq!(parse_n(b"   \n", MAX), Err(FibRequestError::Empty));
        assert!(matches!(
            parse_n(b"abc", MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_n(b"3.5", MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_n(b"1 2", MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_n(b"-", MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_n(b"+-1", MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert!(matches!(
            parse_n("٣".as_bytes(), MAX),
            Err(FibRequestError::NotANumber { .. })
        ));
        assert_eq!(
            parse_n(b"-5", MAX),
            Err(FibRequestError::Negative { n: "-5".into() })
        );
        assert_eq!(
            parse_n(b"\xff\xfe1", MAX),
            Err(FibRequestError::NotUtf8 { offset: 0 })
        );
        assert_eq!(
            parse_n(b"100001", MAX),
            Err(FibRequestError::OverBound {
                n: "100001".into(),
                max: MAX
            })
        );
        assert!(matches!(
            parse_n(b"99999999999999999999999999999999", MAX),
            Err(FibRequestError::OverBound { .. })
        ));
        assert_eq!(
            parse_n(&[b'1'; 65], MAX),
            Err(FibRequestError::TooLarge { len: 65, max: 64 })
        );
        assert!(matches!(
            parse_n(&vec![b'x'; 10 << 20], MAX),
            Err(FibRequestError::TooLarge { .. })
        ));
    }

    #[test]
    fn messages_are_readable() {
        let e = parse_n(b"99999999999999999999999999999999", MAX).unwrap_err();
        assert_eq!(
            e.to_string(),
            "n = 999999999999…(32 digits) is over this server's bound of 100000"
        );
        assert_eq!(
            parse_n(b"abc", MAX).unwrap_err().to_string(),
            "request body \"abc\" is not a decimal integer"
        );
    }

    #[test]
    fn bound_is_configurable() {
        assert_eq!(parse_n(b"10", 10), Ok(10));
        assert!(parse_n(b"11", 10).is_err());
        assert_eq!(parse_n(b"18446744073709551615", u64::MAX), Ok(u64::MAX));
    }
}
