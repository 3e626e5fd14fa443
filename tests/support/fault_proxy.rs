//! A TCP proxy on 127.0.0.1 between a client and the broker that fails on command, for real:
//! sockets stall (nothing forwarded either way, both stay open: a silent peer), are cut (reset on
//! both sides), or go half-open (the broker's side reset, the client's left open and silent).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a proxied connection does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Nothing is read or written either way; both sockets stay open (a black hole: packets lost,
    /// no FIN, no RST).
    Stall,
    /// The broker's socket is reset; the client's stays open and nothing reaches it.
    HalfOpen,
    /// Both sockets are reset.
    Cut,
}

struct State {
    upstream: SocketAddr,
    /// The mode new connections start in (Forward or Stall).
    default: Mutex<Mode>,
    conns: Mutex<Vec<watch::Sender<Mode>>>,
    accepted: AtomicUsize,
}

/// The proxy; dropping it resets every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_all(Mode::Cut);
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<FaultProxy> {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback"
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            upstream,
            default: Mutex::new(Mode::Forward),
            conns: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        Ok(FaultProxy {
            addr,
            state,
            accept,
        })
    }

    /// Forwards to the default broker, 127.0.0.1:5672.
    pub async fn to_broker() -> std::io::Result<FaultProxy> {
        FaultProxy::start(SocketAddr::from(([127, 0, 0, 1], 5672))).await
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An AMQP URI through the proxy (guest/guest, vhost /) with the given query, e.g.
    /// `heartbeat=1`.
    pub fn uri(&self, query: &str) -> String {
        format!("amqp://guest:guest@{}/%2f?{query}", self.addr)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Stops forwarding on every connection, and on new ones, until [`FaultProxy::resume`].
    pub fn stall(&self) {
        *self.state.default.lock().unwrap() = Mode::Stall;
        self.set_all(Mode::Stall);
    }

    /// Forwards again, on every open connection and on new ones.
    pub fn resume(&self) {
        *self.state.default.lock().unwrap() = Mode::Forward;
        self.set_all(Mode::Forward);
    }

    /// Resets every open connection on both sides; new connections are forwarded.
    pub fn cut(&self) {
        self.set_all(Mode::Cut);
    }

    /// Resets the broker's side of every open connection and leaves the client's side open and
    /// silent: the client cannot tell from the socket that its peer is gone.
    pub fn half_open(&self) {
        self.set_all(Mode::HalfOpen);
    }

    fn set_all(&self, mode: Mode) {
        let mut conns = self.state.conns.lock().unwrap();
        conns.retain(|tx| !tx.is_closed());
        for tx in conns.iter() {
            let _ = tx.send(mode);
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((client, _)) = listener.accept().await {
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let mode = *state.default.lock().unwrap();
        let (tx, rx) = watch::channel(mode);
        state.conns.lock().unwrap().push(tx);
        tokio::spawn(proxy_one(client, state.upstream, rx));
    }
}

async fn proxy_one(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(broker) = TcpStream::connect(upstream).await else {
        return;
    };
    // Every close below is abortive (RST), as a broken network or a killed peer looks.
    for s in [&client, &broker] {
        let _ = s.set_zero_linger();
        let _ = s.set_nodelay(true);
    }
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut broker_rd, mut broker_wr) = broker.into_split();
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Cut => return,
            Mode::HalfOpen => break,
            // Nothing is read: the kernel buffers fill and TCP's window closes, as behind a
            // black hole.
            Mode::Stall => {
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Forward => {}
        }
        tokio::select! {
            read = client_rd.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if broker_wr.write_all(&up[..n]).await.is_err() { return },
            },
            read = broker_rd.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => if client_wr.write_all(&down[..n]).await.is_err() { return },
            },
            changed = mode.changed() => if changed.is_err() { return },
        }
    }
    // Half-open: the broker's side goes (reset), the client's stays open and silent until the
    // client closes it (unseen: nothing reads it), Cut, or the proxy goes.
    drop((broker_rd, broker_wr));
    let _ = mode.wait_for(|m| *m == Mode::Cut).await;
    drop((client_rd, client_wr));
}
