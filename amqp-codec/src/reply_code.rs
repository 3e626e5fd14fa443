//! Reply codes: the `reply-code` of `connection.close`, `channel.close` and `basic.return`.
//!
//! One enum for every code the spec defines (its `constants` section, `REPLY-SUCCESS` and the
//! soft and hard errors), with [`ReplyCode::Unknown`] keeping any other number a peer sends, so a
//! code read from the wire converts back to the same `u16`. Spec 1.2 ("Constants"): a *soft error*
//! closes only the channel, a *hard error* closes the connection.

use std::fmt;

macro_rules! reply_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal, $class:ident; )*) => {
        /// An AMQP reply code, named as in the spec.
        ///
        /// Displays as `"404 NOT_FOUND"`; converts from and into the `u16` on the wire.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ReplyCode {
            $(
                $(#[$doc])*
                #[doc = concat!("\n\nSpec constant `", $name, "` (", stringify!($code), ", ", stringify!($class), ").")]
                $variant,
            )*
            /// A code the spec does not define, kept as sent.
            Unknown(u16),
        }

        /// Every code the spec defines, in the spec's order.
        pub const ALL_REPLY_CODES: &[ReplyCode] = &[$(ReplyCode::$variant),*];

        impl ReplyCode {
            /// The number on the wire.
            pub const fn code(self) -> u16 {
                match self {
                    $( ReplyCode::$variant => $code, )*
                    ReplyCode::Unknown(code) => code,
                }
            }

            /// The code for a number from the wire: a named variant when the spec defines it.
            pub const fn from_code(code: u16) -> ReplyCode {
                match code {
                    $( $code => ReplyCode::$variant, )*
                    other => ReplyCode::Unknown(other),
                }
            }

            /// The spec's name with underscores (`NOT_FOUND`), or `UNKNOWN` for a code it does not
            /// define.
            pub const fn name(self) -> &'static str {
                match self {
                    $( ReplyCode::$variant => $name, )*
                    ReplyCode::Unknown(_) => "UNKNOWN",
                }
            }

            /// The spec's class of the code: whether it closes a channel (soft) or the connection
            /// (hard). `None` for 200 (not an error) and for unknown codes.
            pub const fn severity(self) -> Option<Severity> {
                match self {
                    $( ReplyCode::$variant => reply_codes!(@class $class), )*
                    ReplyCode::Unknown(_) => None,
                }
            }
        }
    };
    (@class success) => { None };
    (@class soft) => { Some(Severity::Soft) };
    (@class hard) => { Some(Severity::Hard) };
}

/// Whether an error code closes a channel or the whole connection (spec 1.2, "Constants").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// A soft error: the channel is closed, the connection goes on.
    Soft,
    /// A hard error: the connection is closed.
    Hard,
}

reply_codes! {
    /// The operation completed (the code of a normal `connection.close` or `channel.close`).
    Success = 200, "REPLY_SUCCESS", success;
    /// The content is too large for the broker to accept (`basic.return`).
    ContentTooLarge = 311, "CONTENT_TOO_LARGE", soft;
    /// A `mandatory` message could not be routed to any queue (`basic.return`).
    NoRoute = 312, "NO_ROUTE", soft;
    /// An `immediate` message had no consumer ready (`basic.return`; RabbitMQ dropped `immediate`).
    NoConsumers = 313, "NO_CONSUMERS", soft;
    /// An operator closed the connection (RabbitMQ: `rabbitmqctl close_connection`, shutdown).
    ConnectionForced = 320, "CONNECTION_FORCED", hard;
    /// The virtual host or another path is invalid.
    InvalidPath = 402, "INVALID_PATH", hard;
    /// The user may not access the resource (wrong credentials, permissions, exclusive queue).
    AccessRefused = 403, "ACCESS_REFUSED", soft;
    /// The queue or exchange does not exist.
    NotFound = 404, "NOT_FOUND", soft;
    /// The resource is locked by another connection (an exclusive queue).
    ResourceLocked = 405, "RESOURCE_LOCKED", soft;
    /// The request's preconditions failed (a redeclare with other arguments, unknown delivery tag).
    PreconditionFailed = 406, "PRECONDITION_FAILED", soft;
    /// A frame was malformed at the framing level (size, type, frame-end).
    FrameError = 501, "FRAME_ERROR", hard;
    /// A frame's payload did not follow the grammar (a bad field or string).
    SyntaxError = 502, "SYNTAX_ERROR", hard;
    /// A method was not valid in the current state.
    CommandInvalid = 503, "COMMAND_INVALID", hard;
    /// A method named a channel that is not open, or one that was already open.
    ChannelError = 504, "CHANNEL_ERROR", hard;
    /// A frame arrived that is not allowed here (e.g. a body frame without a header).
    UnexpectedFrame = 505, "UNEXPECTED_FRAME", hard;
    /// The server ran out of a resource (e.g. `channel_max` channels open).
    ResourceError = 506, "RESOURCE_ERROR", hard;
    /// The operation is not allowed (e.g. deleting a built-in exchange).
    NotAllowed = 530, "NOT_ALLOWED", hard;
    /// The class or method is not implemented by this peer.
    NotImplemented = 540, "NOT_IMPLEMENTED", hard;
    /// An internal error in the peer.
    InternalError = 541, "INTERNAL_ERROR", hard;
}

impl From<u16> for ReplyCode {
    fn from(code: u16) -> Self {
        ReplyCode::from_code(code)
    }
}

impl From<ReplyCode> for u16 {
    fn from(code: ReplyCode) -> Self {
        code.code()
    }
}

impl PartialEq<u16> for ReplyCode {
    fn eq(&self, other: &u16) -> bool {
        self.code() == *other
    }
}

impl PartialEq<ReplyCode> for u16 {
    fn eq(&self, other: &ReplyCode) -> bool {
        *self == other.code()
    }
}

impl fmt::Display for ReplyCode {
    /// `"404 NOT_FOUND"`; an unknown code shows its number only: `"999"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyCode::Unknown(code) => write!(f, "{code}"),
            known => write!(f, "{} {}", known.code(), known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_converts_both_ways() {
        for &code in ALL_REPLY_CODES {
            let n: u16 = code.into();
            assert_eq!(ReplyCode::from(n), code);
            assert!(!matches!(code, ReplyCode::Unknown(_)));
        }
        for n in 0..=u16::MAX {
            assert_eq!(u16::from(ReplyCode::from(n)), n);
        }
        assert_eq!(ReplyCode::from(999), ReplyCode::Unknown(999));
    }

    #[test]
    fn display_is_number_and_spec_name() {
        assert_eq!(ReplyCode::NotFound.to_string(), "404 NOT_FOUND");
        assert_eq!(ReplyCode::Success.to_string(), "200 REPLY_SUCCESS");
        assert_eq!(ReplyCode::from(541).to_string(), "541 INTERNAL_ERROR");
        assert_eq!(ReplyCode::Unknown(999).to_string(), "999");
        assert_eq!(ReplyCode::FrameError, 501);
    }
}
