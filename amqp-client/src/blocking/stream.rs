//! The blocking shell's socket: a `std::net::TcpStream`, plain or under rustls's sans-IO
//! [`ClientConnection`] (via [`StreamOwned`]), with the read bound set only when it must change.
//!
//! Every blocking read is bounded by `SO_RCVTIMEO`. Setting it is a syscall, and a sequential RPC
//! call should cost exactly one write and one read, so [`Io::bound_reads`] keeps the timeout in
//! force whenever it is no longer than the wait allows and not much shorter (between half and all
//! of it); a read that returns early because the timeout was shorter than the wait just loops.
//! A new timeout is set to 3/4 of the wait, which leaves room for the next wait to be a little
//! shorter without another syscall (consecutive calls with the same 30 s timeout keep one).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::error::{Error, Result};
use crate::tls::{client_config, server_name, tls};
use crate::uri::{Address, TlsOptions};

/// Size of one read: large enough that a 128 KiB frame needs few reads.
const READ_CHUNK: usize = 64 * 1024;
/// Below this a wait is bounded exactly: the 3/4 margin would only add wake-ups.
const EXACT_BELOW: Duration = Duration::from_millis(20);
/// `SO_RCVTIMEO` of zero means "no timeout": the shortest bound we set.
const MIN_BOUND: Duration = Duration::from_micros(100);

/// The byte stream under the connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
}

/// The socket, a reusable read chunk and the read timeout in force.
pub(crate) struct Io {
    stream: Stream,
    chunk: Box<[u8]>,
    /// `SO_RCVTIMEO` as last set (`None`: reads block without bound).
    read_timeout: Option<Duration>,
    /// Shut down: no more reads or writes.
    done: bool,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Io")
            .field("tls", &matches!(self.stream, Stream::Tls(_)))
            .field("read_timeout", &self.read_timeout)
            .field("done", &self.done)
            .finish()
    }
}

/// What one read gave.
pub(crate) enum Read1 {
    /// Bytes were appended.
    Data,
    /// The peer closed its side.
    Eof,
    /// The read's bound passed (or, non-blocking, nothing was there).
    Nothing,
}

impl Io {
    pub(crate) fn new(stream: Stream) -> Io {
        Io {
            stream,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            read_timeout: None,
            done: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Bounds the next reads by `wait` (`None`: no bound), with a syscall only when the timeout in
    /// force does not fit (see the module's notes).
    pub(crate) fn bound_reads(&mut self, wait: Option<Duration>) -> io::Result<()> {
        let fits = match (self.read_timeout, wait) {
            (None, None) => true,
            (Some(cur), Some(wait)) => cur <= wait && cur >= wait / 2,
            _ => false,
        };
        if fits {
            return Ok(());
        }
        let set = wait.map(|w| {
            let t = if w < EXACT_BELOW { w } else { w * 3 / 4 };
            t.max(MIN_BOUND)
        });
        self.stream.tcp().set_read_timeout(set)?;
        self.read_timeout = set;
        Ok(())
    }

    /// Bounds writes: a broker that stops reading must not hold a writer forever.
    pub(crate) fn bound_writes(&mut self, limit: Duration) -> io::Result<()> {
        self.stream
            .tcp()
            .set_write_timeout(Some(limit.max(MIN_BOUND)))
    }

    /// One read (blocking up to the bound in force), appended to `buf`.
    pub(crate) fn read_into(&mut self, buf: &mut bytes::BytesMut) -> io::Result<Read1> {
        loop {
            let r = match &mut self.stream {
                Stream::Plain(s) => s.read(&mut self.chunk),
                Stream::Tls(s) => s.read(&mut self.chunk),
            };
            return match r {
                Ok(0) => Ok(Read1::Eof),
                Ok(n) => {
                    buf.extend_from_slice(&self.chunk[..n]);
                    Ok(Read1::Data)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(Read1::Nothing)
                }
                // A TLS peer that closes the socket without close_notify: still an end of stream
                // (the core says whether it was mid-frame), not an I/O failure.
                Err(e)
                    if e.kind() == io::ErrorKind::UnexpectedEof
                        && matches!(self.stream, Stream::Tls(_)) =>
                {
                    Ok(Read1::Eof)
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Everything the socket holds now, without waiting (the idle keeper's read); returns whether
    /// the peer closed its side.
    pub(crate) fn drain_into(&mut self, buf: &mut bytes::BytesMut) -> io::Result<bool> {
        self.stream.tcp().set_nonblocking(true)?;
        let outcome = loop {
            match self.read_into(buf) {
                Ok(Read1::Data) => continue,
                Ok(Read1::Nothing) => break Ok(false),
                Ok(Read1::Eof) => break Ok(true),
                Err(e) => break Err(e),
            }
        };
        // Back to blocking before anyone else reads; if that fails the socket is unusable.
        self.stream.tcp().set_nonblocking(false)?;
        outcome
    }

    /// Writes all of `bytes` (bounded by the write timeout).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.stream {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }

    /// Ends the stream: TLS close_notify (best effort), then the TCP shutdown. Idempotent.
    pub(crate) fn shutdown(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if let Stream::Tls(s) = &mut self.stream {
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
        let _ = self.stream.tcp().shutdown(Shutdown::Both);
    }
}

/// TCP connect to `address` before `deadline`, trying each resolved address in turn.
pub(crate) fn connect_tcp(
    address: &Address,
    deadline: Instant,
    limit: Duration,
) -> Result<TcpStream> {
    let addr = address.to_string();
    let timed_out = || Error::ConnectTimeout {
        addr: addr.clone(),
        timeout: limit,
    };
    // Name resolution is the system resolver's, unbounded by us (as in the tokio shell).
    let candidates: Vec<SocketAddr> = (address.host.as_str(), address.port)
        .to_socket_addrs()?
        .collect();
    if candidates.is_empty() {
        return Err(Error::Io(Arc::new(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} resolves to no address", address.host),
        ))));
    }
    let mut last = None;
    for candidate in candidates {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        match TcpStream::connect_timeout(&candidate, left) {
            Ok(s) => {
                // Requests are small and latency-bound: never let Nagle hold one back.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            Err(Error::ConnectRefused { addr })
        }
        Some(e)
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            Err(timed_out())
        }
        Some(e) => Err(e.into()),
        None => Err(timed_out()),
    }
}

/// The TLS handshake over `tcp`, finished before `deadline`; the certificate is checked against
/// `host` (or the configured name) with the configuration both shells share.
pub(crate) fn tls_handshake(
    opts: &TlsOptions,
    host: &str,
    mut tcp: TcpStream,
    deadline: Instant,
    timed_out: impl Fn() -> Error,
) -> Result<Stream> {
    let config = Arc::new(client_config(opts)?);
    let name = server_name(opts, host)?;
    let mut conn = ClientConnection::new(config, name)
        .map_err(|e| tls(format!("TLS set-up for {host} failed: {e}")))?;
    while conn.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        tcp.set_read_timeout(Some(left.max(MIN_BOUND)))?;
        tcp.set_write_timeout(Some(left.max(MIN_BOUND)))?;
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) => return Err(tls(format!("TLS handshake with {host} failed: {e}"))),
        }
    }
    // The AMQP handshake sets its own bounds.
    tcp.set_read_timeout(None)?;
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}
