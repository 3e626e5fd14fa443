//! Tutorial six's `FibonacciRpcClient`, on [`RpcClient`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use num_bigint::BigUint;

use crate::{CallOptions, RpcClient, RpcClientBuilder, RpcError};

/// An exact Fibonacci number as the server sent it: any size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FibAnswer(pub BigUint);

impl FibAnswer {
    /// The value as a `u64`, when it fits (`fib(n)` for `n <= 93`).
    pub fn to_u64(&self) -> Option<u64> {
        u64::try_from(&self.0).ok()
    }

    /// The value.
    pub fn as_biguint(&self) -> &BigUint {
        &self.0
    }

    /// The value.
    pub fn into_biguint(self) -> BigUint {
        self.0
    }

    /// Parses a reply body: ASCII decimal digits (what `str(fib(n))` sends), surrounding
    /// whitespace allowed.
    pub fn parse(body: &[u8]) -> Result<FibAnswer, RpcError> {
        let text = std::str::from_utf8(body)
            .map_err(|_| RpcError::BadReply("reply body is not UTF-8".into()))?
            .trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            let shown: String = text.chars().take(40).collect();
            return Err(RpcError::BadReply(format!(
                "reply {shown:?} is not a non-negative decimal integer"
            )));
        }
        BigUint::from_str(text)
            .map(FibAnswer)
            .map_err(|e| RpcError::BadReply(e.to_string()))
    }
}

impl fmt::Display for FibAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl PartialEq<u64> for FibAnswer {
    fn eq(&self, other: &u64) -> bool {
        self.to_u64() == Some(*other)
    }
}

/// The tutorial's client, async: `FibonacciRpcClient::new().await?.call(30).await?`.
///
/// Unlike the tutorial's, one client may have many calls in flight (clone it, or `join` calls).
#[derive(Debug, Clone)]
pub struct FibonacciRpcClient {
    rpc: RpcClient,
}

impl FibonacciRpcClient {
    /// Connects to the local broker (guest/guest at 127.0.0.1:5672), as the tutorial does.
    pub async fn new() -> Result<Self, RpcError> {
        Self::builder().connect().await.map(Self::from)
    }

    /// Connects to `uri`.
    pub async fn connect(uri: &str) -> Result<Self, RpcError> {
        Self::builder().uri(uri).connect().await.map(Self::from)
    }

    /// The builder of the underlying [`RpcClient`] (queue, timeout, direct reply-to);
    /// finish with `FibonacciRpcClient::from(builder.connect().await?)`.
    pub fn builder() -> RpcClientBuilder {
        RpcClient::builder()
    }

    /// `fib(n)`, computed by a server.
    pub async fn call(&self, n: u64) -> Result<FibAnswer, RpcError> {
        let body = self.rpc.call(n.to_string()).await?;
        FibAnswer::parse(&body)
    }

    /// `fib(n)` with a timeout for this call.
    pub async fn call_timeout(&self, n: u64, timeout: Duration) -> Result<FibAnswer, RpcError> {
        let queue = self.rpc.queue().to_owned();
        let reply = self
            .rpc
            .call_raw_with(&queue, n.to_string(), CallOptions::timeout(timeout))
            .await?;
        FibAnswer::parse(&reply.body)
    }

    /// The underlying client.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }
}

impl From<RpcClient> for FibonacciRpcClient {
    fn from(rpc: RpcClient) -> Self {
        FibonacciRpcClient { rpc }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_servers_send() {
        assert_eq!(FibAnswer::parse(b"832040").unwrap(), 832_040u64);
        assert_eq!(FibAnswer::parse(b" 3\n").unwrap(), 3u64);
        let big = FibAnswer::parse(b"354224848179261915075").unwrap();
        assert_eq!(big.to_u64(), None);
        assert_eq!(big.to_string(), "354224848179261915075");
        assert!(matches!(FibAnswer::parse(b""), Err(RpcError::BadReply(_))));
        assert!(matches!(
            FibAnswer::parse(b"-3"),
            Err(RpcError::BadReply(_))
        ));
        assert!(matches!(
            FibAnswer::parse(b"\xff"),
            Err(RpcError::BadReply(_))
        ));
    }
}
