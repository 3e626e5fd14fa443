//! What a server does with a request: the [`Handler`] any async function can be, the [`Request`]
//! it gets and the [`ReplyError`] it may answer with.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;

use amqp_codec::BasicProperties;
use rpc_wire::ErrorCode;

use rpc_wire::fibonacci::FibRequestError;

/// One RPC request as the worker received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The request body (for tutorial six: `str(n)`).
    pub body: Bytes,
    /// The request's properties: `reply_to`, `correlation_id`, headers, ….
    pub properties: BasicProperties,
    /// True when the broker delivered this request before (a server died holding it); the
    /// handler should be idempotent, as tutorial six asks.
    pub redelivered: bool,
}

impl Request {
    /// The request's `correlation_id`, byte for byte. AMQP short strings are octets, not text
    /// (RabbitMQ's Erlang client sends a 16-byte binary uuid); print one with
    /// [`DisplayId`](rpc_wire::DisplayId).
    pub fn correlation_id(&self) -> Option<&[u8]> {
        self.properties
            .correlation_id
            .as_ref()
            .map(|s| s.as_bytes())
    }

    /// The request's `reply_to`, byte for byte.
    pub fn reply_to(&self) -> Option<&[u8]> {
        self.properties.reply_to.as_ref().map(|s| s.as_bytes())
    }
}

/// An error reply: a code for the `x-error` header and a message for the body (see
/// [`rpc_wire`]).
///
/// Any `std::error::Error` converts into one with the code `handler-error` (so `?` works in a
/// handler). Use [`ReplyError::new`] for another code, and [`ReplyError::from_request`] for a
/// [`FibRequestError`], which has its own (`bad-request`/`too-large`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyError {
    /// The code.
    pub code: ErrorCode,
    /// The readable message.
    pub message: Cow<'static, str>,
}

impl ReplyError {
    /// An error reply with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ReplyError {
            code,
            message: message.into(),
        }
    }

    /// A `handler-error` reply with `message`.
    pub fn handler(message: impl fmt::Display) -> Self {
        ReplyError::new(ErrorCode::HandlerError, message.to_string())
    }

    /// The reply to a Fibonacci request that is not valid: its own code (`bad-request` or
    /// `too-large`) and message.
    pub fn from_request(e: FibRequestError) -> Self {
        ReplyError::new(e.code(), e.to_string())
    }
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

// `ReplyError` does not implement `std::error::Error`, so this blanket conversion does not
// overlap with `From<T> for T` (the pattern anyhow uses).
impl<E: std::error::Error + 'static> From<E> for ReplyError {
    fn from(e: E) -> Self {
        let mut message = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ReplyError::new(ErrorCode::HandlerError, message)
    }
}

/// A handler's answer: the reply body and, when it is not plain bytes, its `content_type`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// The reply body.
    pub body: Bytes,
    /// The reply's `content_type` (`None`: not set, as tutorial six's replies).
    pub content_type: Option<&'static str>,
}

impl Response {
    /// `value` as JSON, with `content_type: application/json`.
    pub fn json<T: serde::Serialize>(value: &T) -> Result<Response, ReplyError> {
        let body = serde_json::to_vec(value).map_err(|e| {
            ReplyError::new(
                ErrorCode::Internal,
                format!("the reply could not be written as JSON: {e}"),
            )
        })?;
        Ok(Response {
            body: body.into(),
            content_type: Some(rpc_wire::CONTENT_TYPE_JSON),
        })
    }
}

impl<B: Into<Bytes>> From<B> for Response {
    fn from(body: B) -> Self {
        Response {
            body: body.into(),
            content_type: None,
        }
    }
}

/// The future a [`Handler`] returns, boxed.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Response, ReplyError>> + Send>>;

/// Anything that answers requests: implemented for every `Fn(Request) -> impl Future<Output =
/// Result<B, E>>` where `B` converts into a [`Response`] (any [`Bytes`]-like body does) and `E`
/// into [`ReplyError`].
///
/// **Cancellation**: a request whose deadline (`x-deadline`) passes while its handler runs is
/// cancelled by dropping the handler's future (it is not polled again, no reply is sent and the
/// request is acked). A handler that must undo something when cancelled does it in a `Drop`
/// guard; work moved to another thread (`spawn_blocking`) runs to its end but its result is
/// discarded.
///
/// ```
/// use rpc_server::{Handler, Request, ReplyError};
/// fn assert_handler(_: impl Handler) {}
/// // An echo server.
/// assert_handler(|req: Request| async move { Ok::<_, ReplyError>(req.body) });
/// // Any std error type works with `?`.
/// assert_handler(|req: Request| async move {
///     let text = std::str::from_utf8(&req.body)?;
///     Ok::<_, ReplyError>(text.to_uppercase())
/// });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn call(&self, request: Request) -> HandlerFuture;
}

impl<F, Fut, B, E> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<B, E>> + Send + 'static,
    B: Into<Response>,
    E: Into<ReplyError>,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let fut = self(request);
        Box::pin(async move { fut.await.map(Into::into).map_err(Into::into) })
    }
}

pub(crate) type SharedHandler = Arc<dyn Handler>;

/// A handler of JSON requests: the body is parsed as `Req` (a body that is not the JSON expected
/// gets a `bad-request` reply naming what was wrong), `f` answers, and the answer is sent as JSON
/// with `content_type: application/json`. Error replies keep `x-error` and carry a JSON body
/// (`{"error": {"code": …, "message": …}}`).
///
/// ```
/// use rpc_server::{json_handler, Handler, ReplyError};
/// #[derive(serde::Deserialize)]
/// struct Add { a: i64, b: i64 }
/// fn assert_handler(_: impl Handler) {}
/// assert_handler(json_handler(|req: Add| async move { Ok::<_, ReplyError>(req.a + req.b) }));
/// ```
pub fn json_handler<Req, Resp, F, Fut>(f: F) -> impl Handler
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Resp: serde::Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ReplyError>> + Send + 'static,
{
    JsonHandler {
        f,
        _types: std::marker::PhantomData,
    }
}

struct JsonHandler<F, Req, Resp> {
    f: F,
    _types: std::marker::PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp, F, Fut> Handler for JsonHandler<F, Req, Resp>
where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Resp: serde::Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, ReplyError>> + Send + 'static,
{
    fn call(&self, request: Request) -> HandlerFuture {
        let parsed = parse_json::<Req>(&request.body);
        let fut = parsed.map(|req| (self.f)(req));
        Box::pin(async move { Response::json(&fut?.await?) })
    }
}

/// Parses a request body as `T`, or the `bad-request` error that says why not.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ReplyError> {
    serde_json::from_slice(body).map_err(|e| {
        ReplyError::new(
            ErrorCode::BadRequest,
            format!(
                "request body is not the JSON expected ({}): {e}",
                std::any::type_name::<T>()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn errors_convert_with_their_codes() {
        let e = ReplyError::from_request(FibRequestError::Empty);
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = ReplyError::from_request(FibRequestError::OverBound {
            n: "7".into(),
            max: 5,
        });
        assert_eq!(e.code, ErrorCode::TooLarge);
        // Generic conversion knows no error type in particular: any error is a handler error.
        let e: ReplyError = FibRequestError::Empty.into();
        assert_eq!(e.code, ErrorCode::HandlerError);
        let e: ReplyError = Outer(std::io::Error::other("disk on fire")).into();
        assert_eq!(e.code, ErrorCode::HandlerError);
        assert_eq!(e.message, "outer: disk on fire");
    }
}
