//! JSON payloads: the content type, and tutorial six's Fibonacci service spoken in JSON.
//!
//! A JSON request carries `content_type: application/json`; its reply does too. An error reply
//! keeps the `x-error` header (so any client sees it) and, for a JSON request, its body is
//! `{"error": {"code": "bad-request", "message": "…"}}` instead of plain text.

use serde::{Deserialize, Serialize};

/// The content type of JSON requests and replies.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Whether a message's `content_type` says JSON (`application/json`, parameters such as
/// `; charset=utf-8` allowed, case-insensitive).
pub fn is_json(content_type: Option<&[u8]>) -> bool {
    let Some(ct) = content_type else { return false };
    let essence = ct.split(|&b| b == b';').next().unwrap_or_default();
    essence
        .trim_ascii()
        .eq_ignore_ascii_case(CONTENT_TYPE_JSON.as_bytes())
}

/// The Fibonacci request in JSON: `{"n": 30}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FibRequest {
    /// Asks for fib(n).
    pub n: u64,
}

/// The Fibonacci reply in JSON: `{"n": 30, "fib": "832040"}`. The value is a decimal string:
/// JSON numbers lose digits past 2^53 in most parsers, and fib(79) is already past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FibReply {
    /// The n asked for.
    pub n: u64,
    /// fib(n), in decimal.
    pub fib: String,
}

/// The body of an error reply to a JSON request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong: the same code as the `x-error` header, and a readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The `x-error` code (`bad-request`, `too-large`, `handler-error`, `internal-error`, …).
    pub code: String,
    /// What happened, for a person.
    pub message: String,
}

impl ErrorBody {
    /// The body for `code` and `message`, serialized.
    pub fn to_json(code: &str, message: &str) -> Vec<u8> {
        let body = ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.to_owned(),
            },
        };
        // Serializing two strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_as_documented() {
        assert_eq!(
            serde_json::to_string(&FibReply {
                n: 30,
                fib: "832040".into()
            })
            .unwrap(),
            r#"{"n":30,"fib":"832040"}"#
        );
        assert_eq!(
            serde_json::from_str::<FibRequest>(r#"{"n": 30}"#).unwrap(),
            FibRequest { n: 30 }
        );
        assert!(serde_json::from_str::<FibRequest>(r#"{"n": -1}"#).is_err());
        assert!(serde_json::from_str::<FibRequest>(r#"{"n": 1, "m": 2}"#).is_err());
        assert_eq!(
            String::from_utf8(ErrorBody::to_json("bad-request", "n \"x\"")).unwrap(),
            r#"{"error":{"code":"bad-request","message":"n \"x\""}}"#
        );
        assert!(is_json(Some(b"application/json")));
        assert!(is_json(Some(b"Application/JSON; charset=utf-8")));
        assert!(!is_json(Some(b"text/plain")));
        assert!(!is_json(None));
    }
}
