//! Tutorial six's service on the generic server: parse `n` (bounded), answer `str(fib(n))`.

use bytes::Bytes;

use rpc_wire::fibonacci::{parse_n, DEFAULT_MAX_N};

use crate::fib::fib_decimal;
use crate::handler::{parse_json, Handler, HandlerFuture, Request, Response};
use crate::ReplyError;
use rpc_wire::json::{FibReply, FibRequest};

/// Above this `n` the computation moves to tokio's blocking pool, so a large request does not
/// hold up the runtime's worker threads (fib(20_000) with its decimal conversion takes ~0.2 ms,
/// fib(100_000) ~1.3 ms).
const BLOCKING_THRESHOLD: u64 = 20_000;

/// The Fibonacci handler: the body is `str(n)`, the answer `str(fib(n))`, exact for every
/// `0 <= n <= max_n`; anything else gets a `bad-request`/`too-large` error reply.
#[derive(Debug, Clone)]
pub struct FibService {
    max_n: u64,
    print_requests: bool,
}

impl Default for FibService {
    fn default() -> Self {
        FibService {
            max_n: DEFAULT_MAX_N,
            print_requests: false,
        }
    }
}

impl FibService {
    /// A service with the default bound ([`DEFAULT_MAX_N`]) that prints nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accept `n` up to `max_n`.
    pub fn max_n(mut self, max_n: u64) -> Self {
        self.max_n = max_n;
        self
    }

    /// Print the tutorial's ` [.] fib(n)` line on stdout for each valid request.
    pub fn print_requests(mut self, print: bool) -> Self {
        self.print_requests = print;
        self
    }

    /// Answers one request body (the handler without the transport): `str(n)` in, `str(fib(n))`
    /// out, as the tutorial.
    pub async fn answer(&self, body: &[u8]) -> Result<Bytes, ReplyError> {
        let n = parse_n(body, self.max_n).map_err(ReplyError::from_request)?;
        self.fib(n).await.map(Bytes::from)
    }

    /// Answers one request in the format it came in: JSON (`{"n": 30}` →
    /// `{"n": 30, "fib": "832040"}`) when its `content_type` is `application/json`, else the
    /// tutorial's plain text.
    pub async fn respond(&self, request: &Request) -> Result<Response, ReplyError> {
        let content_type = request.properties.content_type.as_ref();
        if !rpc_wire::json::is_json(content_type.map(|c| c.as_bytes())) {
            return self.answer(&request.body).await.map(Response::from);
        }
        let FibRequest { n } = parse_json(&request.body)?;
        if n > self.max_n {
            return Err(ReplyError::from_request(
                rpc_wire::fibonacci::FibRequestError::OverBound {
                    n: n.to_string(),
                    max: self.max_n,
                },
            ));
        }
        let fib = self.fib(n).await?;
        Response::json(&FibReply { n, fib })
    }

    async fn fib(&self, n: u64) -> Result<String, ReplyError> {
        if self.print_requests {
            println!(" [.] fib({n})");
        }
        let digits = if n > BLOCKING_THRESHOLD {
            tokio::task::spawn_blocking(move || fib_decimal(n))
                .await
                .map_err(|e| ReplyError::new(rpc_wire::ErrorCode::Internal, e.to_string()))?
        } else {
            fib_decimal(n)
        };
        Ok(digits)
    }
}

impl Handler for FibService {
    fn call(&self, request: Request) -> HandlerFuture {
        let service = self.clone();
        Box::pin(async move { service.respond(&request).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rpc_wire::ErrorCode;

    #[tokio::test]
    async fn answers_and_refuses() {
        let s = FibService::new().max_n(50_000);
        assert_eq!(s.answer(b"30").await.unwrap(), "832040");
        assert_eq!(s.answer(b"40000").await.unwrap().len(), 8360);
        let e = s.answer(b"50001").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        let e = s.answer(b"").await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    fn json_request(body: &'static str) -> Request {
        Request {
            body: Bytes::from_static(body.as_bytes()),
            properties: amqp_codec::BasicProperties::default()
                .with_content_type("application/json"),
            redelivered: false,
        }
    }

    #[tokio::test]
    async fn speaks_json_when_asked_in_json() {
        let s = FibService::new().max_n(1000);
        let r = s.respond(&json_request(r#"{"n": 90}"#)).await.unwrap();
        assert_eq!(r.content_type, Some("application/json"));
        assert_eq!(r.body, r#"{"n":90,"fib":"2880067194370816120"}"#);
        let e = s.respond(&json_request(r#"{"n": "x"}"#)).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest);
        let e = s
            .respond(&json_request(r#"{"n": 1001}"#))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        // Plain text stays plain text.
        let plain = Request {
            body: Bytes::from_static(b"30"),
            properties: Default::default(),
            redelivered: false,
        };
        let r = s.respond(&plain).await.unwrap();
        assert_eq!((r.content_type, &r.body[..]), (None, &b"832040"[..]));
    }
}
