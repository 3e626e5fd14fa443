//! The RPC caller's errors: one variant per answer to tutorial six's open questions.

use std::time::Duration;

use rpc_wire::ErrorCode;

/// Why an RPC call failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The request could not be routed (no queue of that name): the broker returned the
    /// `mandatory` message at once (`basic.return`, usually 312 NO_ROUTE). No server has ever
    /// declared the queue, or it was deleted.
    #[error("no server: request to queue {queue:?} returned by the broker ({reply_code} {reply_text}); is a server running?")]
    NoRoute {
        /// The queue (routing key) the request was sent to.
        queue: String,
        /// The broker's reply code (312 NO_ROUTE).
        reply_code: u16,
        /// The broker's explanation.
        reply_text: String,
    },
    /// No reply within the call's timeout. `consumers` says how many consumers the request queue
    /// had when the call gave up (0: no server is running; more: the servers are busy or stuck).
    #[error("no server answered within {timeout:?} (queue {queue:?} has {})", consumers_text(*.consumers))]
    Timeout {
        /// The queue the request was sent to.
        queue: String,
        /// The limit in force.
        timeout: Duration,
        /// Consumers of the queue when the call timed out, if the broker could tell.
        consumers: Option<u32>,
    },
    /// The server answered with an error reply (`x-error` header; see
    /// [`rpc_wire`]).
    #[error("server error ({code}): {message}")]
    Server {
        /// The code from the `x-error` header.
        code: ErrorCode,
        /// The server's message (the reply body).
        message: String,
    },
    /// The request could not be made (e.g. a value that cannot be written as JSON).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The reply arrived but is not what the caller expected (e.g. not a decimal number).
    #[error("bad reply: {0}")]
    BadReply(String),
    /// A JSON call's reply is not the JSON expected: another content type, or JSON that does not
    /// fit the reply type.
    #[error("bad reply: expected {expected} as application/json, got {found}")]
    UnexpectedReply {
        /// The type the caller asked for.
        expected: &'static str,
        /// What came instead (the content type, or the JSON error).
        found: String,
    },
    /// The connection (or the client's channel) failed; pending calls fail with this.
    #[error("connection lost: {0}")]
    ConnectionLost(amqp_client::Error),
    /// Setting up the client, or publishing, failed.
    #[error(transparent)]
    Connection(#[from] amqp_client::Error),
    /// The client could not be set up within its timeout (connect, handshake, channel, reply
    /// queue, consumer): the broker accepted the connection and then did not answer.
    #[error("no answer from the broker within {timeout:?} while setting up the client (waiting for {waiting_for})")]
    SetupTimeout {
        /// The limit in force (the call's timeout).
        timeout: Duration,
        /// What the client was waiting for.
        waiting_for: &'static str,
    },
    /// The broker was blocking publishers (`connection.blocked`: a memory or disk alarm) for the
    /// whole of the call's timeout; the request was not sent.
    #[error(
        "the broker blocks publishers ({reason}); the request was not sent within {timeout:?}"
    )]
    Blocked {
        /// The broker's reason (e.g. `low on memory`).
        reason: String,
        /// The limit in force.
        timeout: Duration,
    },
    /// The client was closed.
    #[error("RPC client closed")]
    Closed,
}

fn consumers_text(consumers: Option<u32>) -> String {
    match consumers {
        Some(0) => "0 consumers: no server is running".into(),
        Some(1) => "1 consumer: the server is busy or stuck".into(),
        Some(n) => format!("{n} consumers: the servers are busy or stuck"),
        None => "an unknown number of consumers".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_answer_the_tutorials_questions() {
        let e = RpcError::Timeout {
            queue: "rpc_queue".into(),
            timeout: Duration::from_secs(2),
            consumers: Some(0),
        };
        assert_eq!(
            e.to_string(),
            "no server answered within 2s (queue \"rpc_queue\" has 0 consumers: no server is running)"
        );
        let e = RpcError::Server {
            code: ErrorCode::BadRequest,
            message: "n = -1 is negative".into(),
        };
        assert_eq!(
            e.to_string(),
            "server error (bad-request): n = -1 is negative"
        );
    }
}
