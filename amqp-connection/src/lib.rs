//! `amqp-connection`: one AMQP 0-9-1 client connection as a state machine with no I/O, no
//! runtime and no clock — quinn-proto's model, on the hand-written [`amqp_codec`].
//!
//! A driver moves bytes and arms one timer; [`Connection`] owns every protocol rule: the
//! handshake and tuning, the channel table, each channel's calls, consumers, content assembly and
//! confirms, heartbeats as deadlines, reply deadlines, close handshakes both ways, blocked and
//! flow, and violations (each closes the connection with its reply code). The tokio and the
//! blocking drivers live in `amqp-client`; tests drive it with a simulated clock.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use amqp_codec::{ConnectionOpenOk, ConnectionStart, ConnectionTune, FieldTable, Frame};
//! use amqp_connection::{Connection, ConnectionConfig, Event};
//! use bytes::BytesMut;
//!
//! let t0 = Instant::now();
//! let mut conn = Connection::new(ConnectionConfig::default(), t0);
//! let mut wire = BytesMut::new();
//! conn.poll_transmit(t0, &mut wire); // "AMQP\0\0\x09\x01"
//!
//! // The broker's side of the handshake, as bytes.
//! let mut broker = BytesMut::new();
//! let start = ConnectionStart {
//!     version_major: 0,
//!     version_minor: 9,
//!     server_properties: FieldTable::new(),
//!     mechanisms: "PLAIN AMQPLAIN".into(),
//!     locales: "en_US".into(),
//! };
//! Frame::Method(0, start.into()).encode(&mut broker).unwrap();
//! let tune = ConnectionTune { channel_max: 2047, frame_max: 131_072, heartbeat: 60 };
//! Frame::Method(0, tune.into()).encode(&mut broker).unwrap();
//! Frame::Method(0, ConnectionOpenOk::default().into()).encode(&mut broker).unwrap();
//! conn.handle_input(&mut broker, t0);
//! assert!(matches!(conn.poll_event(), Some(Event::Connected)));
//!
//! // Nothing sent for half the heartbeat interval: a heartbeat is due.
//! conn.poll_transmit(t0, &mut wire);
//! assert_eq!(conn.poll_timeout(), Some(t0 + Duration::from_secs(30)));
//! conn.handle_timeout(t0 + Duration::from_secs(30));
//! wire.clear();
//! conn.poll_transmit(t0 + Duration::from_secs(30), &mut wire);
//! assert_eq!(&wire[..], &[8, 0, 0, 0, 0, 0, 0, 0xce]);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod connection;
pub mod error;
pub mod event;
pub mod handshake;
pub mod hash;
pub mod message;
pub mod uri;

pub use channel::{Status as ChannelStatus, Violation};
pub use connection::{ChannelId, Connection, Sent, CLOSE_TIMEOUT, DEFAULT_REPLY_TIMEOUT};
pub use error::{Error, Result};
pub use event::{Event, Reply};
pub use handshake::{Stage, Tuned};
pub use message::{Confirm, Delivery, GetMessage, Returned};
pub use uri::{Address, AuthMechanism, ConnectionConfig, Password, TlsOptions};
