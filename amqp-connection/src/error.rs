//! The one error type of the connection layer: what went wrong, with the AMQP reply code and text
//! where the broker gave one.
//!
//! Errors are `Clone` because one failure (a dead connection) is delivered to every waiter: each
//! pending call, each consumer, each confirm. Passwords never appear in them.

use std::sync::Arc;
use std::time::Duration;

use amqp_codec::{DecodeError, EncodeError, Escaped, ReplyCode};

// The reply codes this layer names, as numbers for matching; their one definition (with the
// spec's names and classes) is `amqp_codec::ReplyCode`.
/// 200 REPLY_SUCCESS: a normal close.
pub const REPLY_SUCCESS: u16 = ReplyCode::Success.code();
/// 320 CONNECTION_FORCED: the broker is shutting the connection down (an operator action).
pub const CONNECTION_FORCED: u16 = ReplyCode::ConnectionForced.code();
/// 403 ACCESS_REFUSED: authentication failed, or the user may not do this.
pub const ACCESS_REFUSED: u16 = ReplyCode::AccessRefused.code();
/// 404 NOT_FOUND: no such queue or exchange.
pub const NOT_FOUND: u16 = ReplyCode::NotFound.code();
/// 405 RESOURCE_LOCKED: the queue is exclusive to another connection.
pub const RESOURCE_LOCKED: u16 = ReplyCode::ResourceLocked.code();
/// 406 PRECONDITION_FAILED: a declare conflicts with what exists, or an ack names an unknown tag.
pub const PRECONDITION_FAILED: u16 = ReplyCode::PreconditionFailed.code();
/// 501 FRAME_ERROR: a malformed frame.
pub const FRAME_ERROR: u16 = ReplyCode::FrameError.code();
/// 503 COMMAND_INVALID: a method that is not valid here (e.g. a second `channel.open`).
pub const COMMAND_INVALID: u16 = ReplyCode::CommandInvalid.code();
/// 504 CHANNEL_ERROR: a frame on a channel that is not open.
pub const CHANNEL_ERROR: u16 = ReplyCode::ChannelError.code();
/// 505 UNEXPECTED_FRAME: a frame arrived that is not allowed in the current state.
pub const UNEXPECTED_FRAME: u16 = ReplyCode::UnexpectedFrame.code();
/// 530 NOT_ALLOWED: the virtual host is not open to this user (or does not exist).
pub const NOT_ALLOWED: u16 = ReplyCode::NotAllowed.code();

/// Everything that can go wrong on a connection or a channel.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on the socket.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// Nothing listens on the address (TCP connection refused).
    #[error("connection to {addr} refused")]
    ConnectRefused {
        /// The `host:port` tried.
        addr: String,
    },
    /// The TCP (or TLS) connect did not complete within `connection_timeout`.
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The `host:port` tried.
        addr: String,
        /// The limit in force.
        timeout: Duration,
    },
    /// The peer accepted the connection but the AMQP handshake did not finish within
    /// `connection_timeout`.
    #[error("AMQP handshake with {addr} did not finish within {timeout:?} (stuck {stage})")]
    HandshakeTimeout {
        /// The `host:port` tried.
        addr: String,
        /// The limit in force.
        timeout: Duration,
        /// What the client was waiting for when time ran out.
        stage: &'static str,
    },
    /// The broker refused the credentials (RabbitMQ: 403 ACCESS_REFUSED during the handshake).
    #[error("authentication failed: {code} {}", Escaped(.text.as_bytes()))]
    AuthenticationFailed {
        /// The reply code (403).
        code: u16,
        /// The broker's explanation.
        text: String,
    },
    /// The virtual host does not exist or the user may not use it (530 NOT_ALLOWED).
    #[error("virtual host \"{}\" not allowed: {code} {}", Escaped(.vhost.as_bytes()), Escaped(.text.as_bytes()))]
    VhostNotAllowed {
        /// The virtual host asked for.
        vhost: String,
        /// The reply code (530).
        code: u16,
        /// The broker's explanation.
        text: String,
    },
    /// The peer does not speak AMQP 0-9-1 (it answered with another protocol header).
    #[error("protocol mismatch: {0}")]
    ProtocolMismatch(String),
    /// The peer violated the protocol in a way the handshake or the channel rules catch
    /// (a method out of place, an unusable tune proposal).
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The peer sent bytes that are not valid AMQP frames; the connection was closed with
    /// [`DecodeError::reply_code`].
    #[error("bad frame from peer: {0}")]
    Decode(#[from] DecodeError),
    /// A message or method could not be encoded (e.g. a short string over 255 bytes).
    #[error("cannot encode: {0}")]
    Encode(#[from] EncodeError),
    /// The channel was closed, by the broker (a channel exception such as 404 NOT_FOUND or
    /// 406 PRECONDITION_FAILED) or by this client.
    #[error("channel closed: {code} {} (class {class_id}, method {method_id})", Escaped(.text.as_bytes()))]
    ChannelClosed {
        /// Reply code (200 for a normal close).
        code: u16,
        /// Reply text.
        text: String,
        /// Class of the method that caused the close (0 if none).
        class_id: u16,
        /// Method that caused the close (0 if none).
        method_id: u16,
    },
    /// The connection was closed, by the broker (a connection exception, an operator) or by
    /// this client.
    #[error("connection closed: {code} {} (class {class_id}, method {method_id})", Escaped(.text.as_bytes()))]
    ConnectionClosed {
        /// Reply code (200 for a normal close).
        code: u16,
        /// Reply text.
        text: String,
        /// Class of the method that caused the close (0 if none).
        class_id: u16,
        /// Method that caused the close (0 if none).
        method_id: u16,
    },
    /// The peer sent nothing for two heartbeat intervals.
    #[error("heartbeat timeout: peer silent for {0:?}")]
    HeartbeatTimeout(Duration),
    /// The socket closed without an AMQP close.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// A TLS error: configuration, an untrusted certificate, a name mismatch.
    #[error("TLS error: {0}")]
    Tls(String),
    /// The URI (or a configuration value) is not usable; the message quotes the bad part.
    #[error("invalid AMQP URI: {0}")]
    InvalidUri(String),
    /// Every channel number up to the negotiated `channel_max` is in use.
    #[error("no free channel: all {0} channel numbers are in use")]
    ChannelsExhausted(u16),
    /// A confirmed publish on a channel that is not in confirm mode (call `confirm_select`).
    #[error("channel is not in confirm mode: call confirm_select first")]
    NotInConfirmMode,
    /// The consumer was cancelled (by `basic_cancel`, or by the broker when its queue went away).
    #[error("consumer {} cancelled", Escaped(.0.as_bytes()))]
    ConsumerCancelled(String),
    /// A synchronous method got no reply in time although the connection was alive; the
    /// connection was closed (a late reply would answer the wrong call).
    #[error("no reply to {method} on channel {channel} within {timeout:?}")]
    ReplyTimeout {
        /// The channel.
        channel: u16,
        /// The method, as `class.method`.
        method: String,
        /// The limit in force.
        timeout: Duration,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(Arc::new(e))
    }
}

impl Error {
    /// The AMQP reply code the error carries, if any.
    pub fn reply_code(&self) -> Option<u16> {
        match self {
            Error::AuthenticationFailed { code, .. }
            | Error::VhostNotAllowed { code, .. }
            | Error::ChannelClosed { code, .. }
            | Error::ConnectionClosed { code, .. } => Some(*code),
            Error::Decode(e) => Some(e.reply_code()),
            _ => None,
        }
    }

    /// The reply code as the spec names it (`404 NOT_FOUND`), if the error carries one.
    pub fn reply_code_named(&self) -> Option<ReplyCode> {
        self.reply_code().map(ReplyCode::from_code)
    }

    /// True for errors after which the connection is gone (as opposed to a channel or a call).
    pub fn is_connection_error(&self) -> bool {
        !matches!(
            self,
            Error::ChannelClosed { .. }
                | Error::Encode(_)
                | Error::ChannelsExhausted(_)
                | Error::ConsumerCancelled(_)
                | Error::NotInConfirmMode
        )
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
