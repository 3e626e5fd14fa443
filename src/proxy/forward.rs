//! One proxied connection: the client's socket and the broker's, TLS on either if asked, and a
//! pump each way that forwards every byte as it comes — malformed ones too: the dissection
//! happens beside the stream (the [`Tap`]), never in its way.
//!
//! Closing follows TCP: a side's FIN (end of stream) is passed on as a FIN to the other side
//! (`shutdown`), and the other direction keeps flowing until its own FIN, so a half-closed
//! connection stays half-closed. A reset or an error on one side resets the other (`SO_LINGER`
//! 0, then close). Each connection runs in its own task: a stalled or broken one holds up no
//! other.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;

use amqp_dissect::Side;

use super::faults::{Action, Budget, Faults, FrameCounter};
use crate::record::Tap;

/// One read: at most one recorded segment (`amqp_dissect::record::MAX_SEGMENT`), so that the
/// live view's packet numbers are the recording's.
const READ_SIZE: usize = amqp_dissect::record::MAX_SEGMENT;
/// Bound on connecting to the broker and on each TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Reads held in a `--delay` line; when full, reading waits (TCP's window closes, as behind a
/// slow link).
const DELAY_QUEUE: usize = 1024;

/// What every connection shares: where to forward, how, and what to do to the bytes.
pub struct Proxy {
    /// The broker's `host:port`.
    pub upstream: String,
    /// TLS towards clients.
    pub acceptor: Option<TlsAcceptor>,
    /// TLS towards the broker, with the name its certificate must carry.
    pub connector: Option<(TlsConnector, ServerName<'static>)>,
    /// Faults to inject.
    pub faults: Faults,
    /// Where the bytes are recorded and watched, if anywhere.
    pub tap: Option<Arc<Tap>>,
    /// Cancelled when the proxy stops: every connection closes.
    pub shutdown: CancellationToken,
    /// Counters for the final report.
    pub stats: Stats,
}

/// Totals over all connections.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections that never reached the broker (connect or TLS failed).
    pub failed: AtomicU64,
    /// Bytes forwarded client → broker.
    pub up: AtomicU64,
    /// Bytes forwarded broker → client.
    pub down: AtomicU64,
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// What one connection's two pumps share.
struct Link<'a> {
    proxy: &'a Proxy,
    /// The stream number in the tap.
    stream: u32,
    /// Duplicates of the two sockets (client, broker), to make a close abortive (RST).
    fds: [Option<OwnedFd>; 2],
    /// Cancelled when the connection must end at once (reset, cut, proxy stopping).
    abort: CancellationToken,
    budget: Option<Budget>,
    stalled: AtomicBool,
}

/// Serves one client until both directions are closed (or the connection is reset).
pub async fn serve(proxy: Arc<Proxy>, client: TcpStream, client_addr: SocketAddr) {
    proxy.stats.accepted.fetch_add(1, Ordering::Relaxed);
    if let Err(why) = serve_inner(&proxy, client, client_addr).await {
        proxy.stats.failed.fetch_add(1, Ordering::Relaxed);
        eprintln!("amqp-rpc proxy: {client_addr}: {why}");
    }
}

async fn serve_inner(
    proxy: &Proxy,
    client: TcpStream,
    client_addr: SocketAddr,
) -> Result<(), String> {
    let _ = client.set_nodelay(true);
    let client_fd = client.as_fd().try_clone_to_owned().ok();
    let (client_rd, client_wr): (Reader, Writer) = match &proxy.acceptor {
        Some(acceptor) => {
            let tls = timeout(HANDSHAKE_TIMEOUT, acceptor.accept(client))
                .await
                .map_err(|_| "TLS handshake with the client timed out".to_string())?
                .map_err(|e| format!("TLS handshake with the client failed: {e}"))?;
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        }
        None => {
            let (r, w) = client.into_split();
            (Box::new(r), Box::new(w))
        }
    };
    let broker = timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(&proxy.upstream))
        .await
        .map_err(|_| format!("connecting to {} timed out", proxy.upstream))?
        .map_err(|e| format!("cannot connect to {}: {e}", proxy.upstream))?;
    let _ = broker.set_nodelay(true);
    let broker_addr = broker
        .peer_addr()
        .map_err(|e| format!("the connection to {} failed: {e}", proxy.upstream))?;
    let broker_fd = broker.as_fd().try_clone_to_owned().ok();
    let (broker_rd, broker_wr): (Reader, Writer) = match &proxy.connector {
        Some((connector, name)) => {
            let tls = timeout(HANDSHAKE_TIMEOUT, connector.connect(name.clone(), broker))
                .await
                .map_err(|_| format!("TLS handshake with {} timed out", proxy.upstream))?
                .map_err(|e| format!("TLS handshake with {} failed: {e}", proxy.upstream))?;
            let (r, w) = tokio::io::split(tls);
            (Box::new(r), Box::new(w))
        }
        None => {
            let (r, w) = broker.into_split();
            (Box::new(r), Box::new(w))
        }
    };
    let stream = match &proxy.tap {
        Some(tap) => tap.open(client_addr, broker_addr),
        None => 0,
    };
    let link = Link {
        proxy,
        stream,
        fds: [client_fd, broker_fd],
        abort: proxy.shutdown.child_token(),
        budget: proxy.faults.after.map(|(n, action)| Budget::new(n, action)),
        stalled: AtomicBool::new(false),
    };
    tokio::join!(
        pump(
            &link,
            Side::Client,
            client_rd,
            broker_wr,
            proxy.faults.delay_up
        ),
        pump(
            &link,
            Side::Broker,
            broker_rd,
            client_wr,
            proxy.faults.delay_down
        ),
    );
    if let Some(tap) = &proxy.tap {
        tap.end(stream);
    }
    Ok(())
}

/// One direction: what `from` sends, read from `rd`, forwarded to the other side by `wr`.
async fn pump(link: &Link<'_>, from: Side, rd: Reader, wr: Writer, delay: Duration) {
    let forward = Forward {
        link,
        from,
        wr,
        counter: link.budget.as_ref().map(|_| FrameCounter::default()),
    };
    if delay.is_zero() {
        direct(link, from, rd, forward).await;
    } else {
        delayed(link, from, rd, forward, delay).await;
    }
}

/// Reads and forwards in one loop: the read buffer is reused, nothing is copied.
async fn direct(link: &Link<'_>, from: Side, mut rd: Reader, mut forward: Forward<'_, '_>) {
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        let read = tokio::select! {
            biased;
            _ = link.abort.cancelled() => return,
            r = rd.read(&mut buf) => r,
        };
        match read {
            Ok(0) => return forward.eof().await,
            Ok(n) => {
                if !forward.send(buf.get(..n).unwrap_or_default()).await {
                    return;
                }
            }
            Err(e) if closed_without_notify(&e) => return forward.eof().await,
            Err(_) => return link.broken(from),
        }
    }
}

/// A TLS peer that closed its TCP connection without a `close_notify` first (many clients do):
/// an end of stream like any other, not a reset.
fn closed_without_notify(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::UnexpectedEof
}

/// What a `--delay` line carries.
enum Piece {
    Data(Bytes),
    Eof,
    Broken,
}

/// Reads into a line that forwards each read `delay` after it came: the delay adds latency, not
/// a limit on throughput.
async fn delayed(
    link: &Link<'_>,
    from: Side,
    mut rd: Reader,
    mut forward: Forward<'_, '_>,
    delay: Duration,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Piece)>(DELAY_QUEUE);
    let reading = async move {
        let mut buf = BytesMut::new();
        loop {
            buf.reserve(READ_SIZE);
            let mut limited = (&mut rd).take(READ_SIZE as u64);
            let read = tokio::select! {
                biased;
                _ = link.abort.cancelled() => return,
                r = limited.read_buf(&mut buf) => r,
            };
            let piece = match read {
                Ok(0) => Piece::Eof,
                Ok(_) => Piece::Data(buf.split().freeze()),
                Err(e) if closed_without_notify(&e) => Piece::Eof,
                Err(_) => Piece::Broken,
            };
            let last = !matches!(piece, Piece::Data(_));
            if tx.send((Instant::now() + delay, piece)).await.is_err() || last {
                return;
            }
        }
    };
    let forwarding = async move {
        while let Some((due, piece)) = rx.recv().await {
            tokio::select! {
                biased;
                _ = link.abort.cancelled() => return,
                _ = sleep_until(due) => {}
            }
            match piece {
                Piece::Data(bytes) => {
                    if !forward.send(&bytes).await {
                        return;
                    }
                }
                Piece::Eof => return forward.eof().await,
                Piece::Broken => return link.broken(from),
            }
        }
    };
    tokio::join!(reading, forwarding);
}

/// The forwarding end of a direction: faults, the tap, the write.
struct Forward<'l, 'p> {
    link: &'l Link<'p>,
    from: Side,
    wr: Writer,
    counter: Option<FrameCounter>,
}

impl Forward<'_, '_> {
    /// Forwards `data`; false when this direction is over.
    async fn send(&mut self, data: &[u8]) -> bool {
        let link = self.link;
        let mut data = data;
        let mut then = None;
        if let (Some(counter), Some(budget)) = (self.counter.as_mut(), link.budget.as_ref()) {
            let (pass, action) = counter.admit(data, budget);
            data = data.get(..pass).unwrap_or_default();
            then = action;
        }
        if link.stalled.load(Ordering::Acquire) {
            link.abort.cancelled().await;
            return false;
        }
        if !data.is_empty() {
            if let Some(tap) = &link.proxy.tap {
                tap.data(link.stream, self.from, data);
            }
            let written = tokio::select! {
                biased;
                _ = link.abort.cancelled() => return false,
                r = async {
                    self.wr.write_all(data).await?;
                    // TLS: push the record out now, not when the next write comes.
                    self.wr.flush().await
                } => r,
            };
            if written.is_err() {
                link.broken(self.from.peer());
                return false;
            }
            let counter = match self.from {
                Side::Client => &link.proxy.stats.up,
                Side::Broker => &link.proxy.stats.down,
            };
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        match then {
            Some(Action::Cut) => {
                link.cut();
                false
            }
            Some(Action::Stall) => {
                link.stalled.store(true, Ordering::Release);
                link.abort.cancelled().await;
                false
            }
            None => true,
        }
    }

    /// `from` closed its side: pass the FIN on.
    async fn eof(&mut self) {
        if let Some(tap) = &self.link.proxy.tap {
            tap.fin(self.link.stream, self.from);
        }
        tokio::select! {
            biased;
            _ = self.link.abort.cancelled() => {}
            _ = self.wr.shutdown() => {}
        }
    }
}

impl Link<'_> {
    /// `side` reset the connection or failed: reset the other side, end both directions.
    fn broken(&self, side: Side) {
        if self.abort.is_cancelled() {
            return;
        }
        if let Some(tap) = &self.proxy.tap {
            tap.reset(self.stream, side);
        }
        self.abortive(side.peer());
        self.abort.cancel();
    }

    /// `--cut-after`: reset both sides.
    fn cut(&self) {
        if let Some(tap) = &self.proxy.tap {
            // Each end sees a reset, as if from the other.
            tap.reset(self.stream, Side::Broker);
        }
        self.abortive(Side::Client);
        self.abortive(Side::Broker);
        self.abort.cancel();
    }

    /// Make the close of `side`'s socket a reset (RST) instead of a FIN.
    fn abortive(&self, side: Side) {
        let fd = match side {
            Side::Client => &self.fds[0],
            Side::Broker => &self.fds[1],
        };
        if let Some(fd) = fd {
            let _ = rustix::net::sockopt::set_socket_linger(fd, Some(Duration::ZERO));
        }
    }
}
