//! The blocking shell: the same sans-IO [`amqp_connection`] core on a `std::net::TcpStream`
//! (or rustls's [`rustls::StreamOwned`] for `amqps`), with no runtime and no I/O thread on the
//! path of a call.
//!
//! ```no_run
//! use std::time::{Duration, Instant};
//! use amqp_client::blocking::Connection;
//! use amqp_client::{BasicConsumeOptions, BasicProperties, BasicPublishOptions, QueueDeclareOptions};
//!
//! # fn demo() -> Result<(), amqp_client::Error> {
//! let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f?heartbeat=10")?;
//! let channel = conn.open_channel()?;
//! let queue = channel.queue_declare("", QueueDeclareOptions { exclusive: true, ..Default::default() })?;
//! let mut consumer = channel.basic_consume(
//!     &queue.queue,
//!     BasicConsumeOptions { no_ack: true, ..Default::default() },
//! )?;
//! let props = BasicProperties::default().with_correlation_id("42");
//! channel.basic_publish("", &queue.queue, BasicPublishOptions::default(), &props, b"30")?;
//! let delivery = consumer.next_delivery(Instant::now() + Duration::from_secs(5))?;
//! assert_eq!(&delivery.expect("a delivery within 5 s").body[..], b"30");
//! conn.close()?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Which threads exist, and why
//!
//! * **The caller's thread does the I/O.** A call takes the connection's lock, hands its method
//!   to the core, writes what the core has to send (one `write`) and, if it waits for something
//!   (a reply, a delivery), reads the socket itself until that is there: one bounded `read` at a
//!   time, each read handed to the core and its events routed to the queues callers look in
//!   (a reply under its caller's ticket, a delivery in its consumer's queue). A sequential RPC
//!   call is one `write` and one `read`; nothing wakes another thread, and there is no event loop.
//!   The read timeout (`SO_RCVTIMEO`) is the nearer of the caller's deadline and the core's
//!   next timer, and is set only when the one in force no longer fits.
//! * **One keeper thread per connection with heartbeats** (`amqp-keeper`), so that the
//!   connection survives a program that does not call into it: between calls nobody would read
//!   the broker's heartbeats or send ours, and the broker would close the connection after two
//!   intervals (pika's `BlockingConnection` does exactly that). The keeper sleeps; every
//!   heartbeat/2 (or at the core's next deadline) it `try_lock`s the connection. If a call holds
//!   the lock, that call is driving the connection and the keeper goes back to sleep. If not, it
//!   takes in what the socket holds without waiting, runs the core's timers and writes what the
//!   core wants sent (a heartbeat): a few microseconds, never a blocking read. With heartbeats
//!   off (`heartbeat=0`) there is no keeper. The last handle's drop stops and joins it.
//!
//! Several threads may share one connection (it is `Send + Sync`), but one drives it at a time:
//! a call made while another thread waits on the connection starts when that wait ends. Use
//! the tokio shell ([`crate::Connection`]) for many calls in flight.
//!
//! ## Bounds
//!
//! Every wait ends: connecting (TCP, TLS, AMQP handshake) within `connection_timeout`;
//! synchronous methods within the core's reply timeout (the connection is closed past it), or a
//! channel's own [`Channel::set_call_timeout`]; deliveries and returns at the caller's deadline;
//! writes within two heartbeat intervals (the reply timeout with heartbeats off); a close within
//! [`amqp_connection::CLOSE_TIMEOUT`]. A broker that goes silent is found dead after two heartbeat
//! intervals by whichever thread is driving the connection, the keeper included.

mod channel;
mod connection;
mod consumer;
mod driver;
mod keeper;
mod routes;
mod stream;

pub use channel::Channel;
pub use connection::Connection;
pub use consumer::{Consumer, Incoming, Returns};
