//! The floor of a tutorial-six RPC call on this machine, sequential or pipelined: what any client
//! design must pay at least, measured with as little user-space work as possible.
//!
//!   floor-rpc server [--prefetch P] [--uri U]
//!   floor-rpc client [--calls N] [--inflight C] [--fib K] [--json] [--uri U]
//!
//! No runtime, no threads: a blocking `std::net::TcpStream` with `TCP_NODELAY`, everything on the
//! main thread. The handshake is done by hand with `amqp-codec`. Reading is batched on both sides:
//! one blocking `read` appends everything the socket holds (up to 64 KiB) to the read buffer, then
//! every complete frame in it is decoded and handled before the next `read`; the process never
//! blocks while a complete frame is buffered (a partial frame or message simply waits for more).
//!
//! Client. The request (method + content header + body frames) is encoded once with a fixed-width
//! placeholder correlation id; issuing a call copies it to the end of one output buffer, writes the
//! id in place and stamps the call's slot with `Instant::now()`. The client keeps C calls (slots)
//! outstanding: it starts with min(C, N) requests in one `write`, then loops: one blocking `read`,
//! decode every complete frame, and for each reply record its latency (from the moment its request
//! was put in the output buffer to the moment its reply is decoded and checked), free its slot and,
//! while calls remain, issue the next call in that same slot; after the batch, ONE `write_all` of
//! everything issued. It stops after N replies. A correlation id is `seq * C + slot` (seq = 1..=N,
//! the call's number) as 20 zero-padded digits: unique per call, and the slot comes back as
//! `id % C` with no map. A reply whose id is not outstanding is skipped, as the tutorial does; a
//! reply with the `x-error` header or a body that is not decimal digits is an error. With C = 1
//! (the default) this is exactly the sequential floor: ids 1..=N, one `write` per call, blocking
//! `read`s until the reply's deliver, header and body are decoded.
//!
//! Server. After each `read` it handles every complete delivery decoded from the buffer: prints
//! ` [.] fib(n)` into a `BufWriter` (8 KiB, like Python's block-buffered stdout in the tutorial's
//! server) on locked stdout, and appends the reply's `basic.publish` and the request's `basic.ack`
//! to one output buffer. After the batch it issues ONE `write_all` to the socket and only then
//! flushes stdout, so the print stays off the reply's path; with one request per read (C = 1) that
//! is still one socket write per request. Buffers are reused: the request and reply paths allocate
//! nothing per call of their own (the codec decodes by slicing the read buffer, not copying it).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use amqp_codec::{
    encode_publish, Assembled, BasicAck, BasicConsume, BasicConsumeOk, BasicProperties, BasicQos,
    ChannelOpen, ConnectionClose, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, FieldTable,
    Frame, FrameDecoder, Message, MessageAssembler, Method, QueueDeclare, DEFAULT_FRAME_MAX,
    PROTOCOL_HEADER,
};
use bench_common::{die, histogram, record, Args, Meter, RPC_QUEUE};
use bytes::BytesMut;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The one channel everything runs on.
const CHANNEL: u16 = 1;
/// Width of the client's correlation id: a zero-padded decimal counter (any u64 fits).
const CID_WIDTH: usize = 20;
/// Largest n the server answers: fib(90) is the last below 2^63, fib(93) overflows u64.
const MAX_N: u64 = 90;
/// Application header marking an error reply (the product's convention, `rpc-client`'s `ERROR_HEADER`).
const ERROR_HEADER: &str = "x-error";

fn main() {
    let args = Args::from_env();
    let result = match args.command.as_str() {
        "server" => server(&args),
        "client" => client(&args),
        other => die(&format!(
            "unknown command {other:?} (expected server or client)"
        )),
    };
    if let Err(e) = result {
        die(&e.to_string());
    }
}

/// What the broker sent, once assembled: a method without content, or a whole message.
// Moved once from the decoder to its handler; boxing the message would cost an allocation per call.
#[allow(clippy::large_enum_variant)]
enum Incoming {
    Method(u16, Method),
    Message(Message),
}

/// One blocking AMQP connection with channel 1 open.
struct Conn {
    stream: TcpStream,
    /// Bytes read but not yet decoded; decoded frames are zero-copy slices of it.
    rbuf: BytesMut,
    /// Where `read` lands before the bytes are appended to `rbuf` (zeroed once, never again).
    scratch: Box<[u8]>,
    decoder: FrameDecoder,
    assembler: MessageAssembler,
    /// Reused for every encoded method.
    wbuf: BytesMut,
    /// Negotiated in connection.tune.
    frame_max: u32,
}

/// The parts of an `amqp://user:pass@host:port/vhost` URI the handshake needs.
struct Uri {
    addr: String,
    user: String,
    pass: String,
    vhost: String,
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or("truncated percent escape in URI")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent escape in URI")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(String::from_utf8(out)?)
}

fn parse_uri(uri: &str) -> Result<Uri> {
    let rest = uri
        .strip_prefix("amqp://")
        .ok_or("only amqp:// URIs are supported")?;
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, pass) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (percent_decode(user)?, percent_decode(pass)?),
            None => (percent_decode(u)?, String::new()),
        },
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    let host = if hostport.is_empty() {
        "localhost"
    } else {
        hostport
    };
    let addr = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:5672")
    };
    let vhost = match path {
        None | Some("") => "/".to_owned(),
        Some(p) => percent_decode(p)?,
    };
    Ok(Uri {
        addr,
        user,
        pass,
        vhost,
    })
}

impl Conn {
    /// TCP connect, protocol header, start/start-ok (PLAIN), tune/tune-ok (heartbeat 0), open,
    /// channel.open 1.
    fn open(uri: &str) -> Result<Conn> {
        let uri = parse_uri(uri)?;
        let stream = TcpStream::connect(&uri.addr)?;
        stream.set_nodelay(true)?;
        let mut conn = Conn {
            stream,
            rbuf: BytesMut::with_capacity(64 * 1024),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            decoder: FrameDecoder::new(DEFAULT_FRAME_MAX),
            assembler: MessageAssembler::new(CHANNEL),
            wbuf: BytesMut::with_capacity(4096),
            frame_max: DEFAULT_FRAME_MAX,
        };
        conn.stream.write_all(&PROTOCOL_HEADER)?;

        let start = match conn.next()? {
            Incoming::Method(0, Method::ConnectionStart(s)) => s,
            _ => return Err("expected connection.start".into()),
        };
        let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
        if !mechanisms.split(' ').any(|m| m == "PLAIN") {
            return Err(format!("broker offers no PLAIN mechanism ({mechanisms})").into());
        }
        let client_properties = FieldTable::new()
            .with("product", "amqp-rpc floor")
            .with("platform", "Rust std::net, blocking");
        let response = format!("\0{}\0{}", uri.user, uri.pass).into_bytes();
        conn.send(
            0,
            ConnectionStartOk {
                client_properties,
                mechanism: "PLAIN".into(),
                response: response.into(),
                locale: "en_US".into(),
            }
            .into(),
        )?;

        let tune = match conn.next()? {
            Incoming::Method(0, Method::ConnectionTune(t)) => t,
            Incoming::Method(0, Method::ConnectionSecure(_)) => {
                return Err("broker sent connection.secure: PLAIN refused?".into())
            }
            _ => return Err("expected connection.tune".into()),
        };
        conn.frame_max = tune.frame_max;
        conn.decoder.set_frame_max(tune.frame_max);
        conn.send(
            0,
            ConnectionTuneOk {
                channel_max: tune.channel_max,
                frame_max: tune.frame_max,
                heartbeat: 0,
            }
            .into(),
        )?;
        match conn.call(
            0,
            ConnectionOpen {
                virtual_host: uri.vhost.into(),
                ..Default::default()
            }
            .into(),
        )? {
            Method::ConnectionOpenOk(_) => {}
            other => return Err(format!("expected connection.open-ok, got {other:?}").into()),
        }
        match conn.call(CHANNEL, ChannelOpen::default().into())? {
            Method::ChannelOpenOk(_) => {}
            other => return Err(format!("expected channel.open-ok, got {other:?}").into()),
        }
        Ok(conn)
    }

    /// One blocking `read` of whatever the socket holds (up to 64 KiB), appended to `rbuf`.
    #[inline]
    fn fill(&mut self) -> Result<()> {
        let n = self.stream.read(&mut self.scratch)?;
        if n == 0 {
            return Err("the broker closed the connection".into());
        }
        self.rbuf.extend_from_slice(&self.scratch[..n]);
        Ok(())
    }

    /// The next method or whole message among the bytes already buffered, never reading: `None`
    /// when `rbuf` holds no further complete frame (a message may be half assembled). A
    /// connection.close or channel.close from the broker is an error.
    #[inline]
    fn try_next(&mut self) -> Result<Option<Incoming>> {
        while let Some(frame) = self.decoder.decode(&mut self.rbuf)? {
            match frame {
                Frame::Heartbeat => {}
                Frame::ProtocolHeader(h) => {
                    return Err(format!(
                        "the broker refused the protocol version, offering {:?}",
                        h.0
                    )
                    .into())
                }
                Frame::Method(0, Method::ConnectionClose(c)) => {
                    return Err(format!(
                        "the broker closed the connection: {} {} (class {} method {})",
                        c.reply_code,
                        c.reply_text.to_string_lossy(),
                        c.class_id,
                        c.method_id
                    )
                    .into())
                }
                Frame::Method(0, Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_)) => {
                }
                Frame::Method(0, m) => return Ok(Some(Incoming::Method(0, m))),
                frame if frame.channel() == CHANNEL => match self.assembler.push(frame)? {
                    None => {}
                    Some(Assembled::Method(Method::ChannelClose(c))) => {
                        return Err(format!(
                            "the broker closed the channel: {} {} (class {} method {})",
                            c.reply_code,
                            c.reply_text.to_string_lossy(),
                            c.class_id,
                            c.method_id
                        )
                        .into())
                    }
                    Some(Assembled::Method(m)) => return Ok(Some(Incoming::Method(CHANNEL, m))),
                    Some(Assembled::Message(msg)) => return Ok(Some(Incoming::Message(msg))),
                },
                frame => {
                    return Err(format!("frame on unexpected channel {}", frame.channel()).into())
                }
            }
        }
        Ok(None)
    }

    /// The next method or whole message: what is buffered first, else blocking `read`s until one
    /// is complete.
    #[inline]
    fn next(&mut self) -> Result<Incoming> {
        loop {
            if let Some(incoming) = self.try_next()? {
                return Ok(incoming);
            }
            self.fill()?;
        }
    }

    /// Encodes one method frame and writes it.
    fn send(&mut self, channel: u16, method: Method) -> Result<()> {
        self.wbuf.clear();
        Frame::Method(channel, method).encode(&mut self.wbuf)?;
        self.stream.write_all(&self.wbuf)?;
        Ok(())
    }

    /// Sends a synchronous method and returns the next method the broker sends on that channel.
    fn call(&mut self, channel: u16, method: Method) -> Result<Method> {
        self.send(channel, method)?;
        loop {
            match self.next()? {
                Incoming::Method(c, m) if c == channel => return Ok(m),
                Incoming::Method(c, m) => {
                    return Err(format!("unexpected {m:?} on channel {c}").into())
                }
                Incoming::Message(_) => {}
            }
        }
    }

    /// connection.close, then waits for close-ok (dropping anything still in flight).
    fn close(mut self) -> Result<()> {
        self.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: "Goodbye".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        )?;
        loop {
            match self.next()? {
                Incoming::Method(0, Method::ConnectionCloseOk(_)) => return Ok(()),
                _ => continue,
            }
        }
    }
}

/// Writes `v` as zero-padded decimal into `out` (its whole width).
#[inline]
fn write_padded(out: &mut [u8], mut v: u64) {
    for b in out.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Writes `v` in decimal at the end of `buf`; returns the digits.
#[inline]
fn decimal(buf: &mut [u8; 20], mut v: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[at..];
        }
    }
}

fn client(args: &Args) -> Result<()> {
    let calls: u64 = args.get("calls", 10_000);
    let inflight: usize = args.get("inflight", 1);
    if inflight == 0 {
        die("--inflight must be at least 1");
    }
    // Correlation ids are seq * C + slot with seq up to N: they must fit in u64 (20 digits).
    if calls
        .checked_add(1)
        .and_then(|n| n.checked_mul(inflight as u64))
        .is_none()
    {
        die("--calls times --inflight is too large for a 20-digit correlation id");
    }
    let k: u32 = args.get("fib", 1);
    let mut conn = Conn::open(&args.uri())?;

    let callback_queue = match conn.call(
        CHANNEL,
        QueueDeclare {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        }
        .into(),
    )? {
        Method::QueueDeclareOk(ok) => ok.queue,
        other => return Err(format!("expected queue.declare-ok, got {other:?}").into()),
    };
    match conn.call(
        CHANNEL,
        BasicConsume {
            queue: callback_queue.clone(),
            no_ack: true,
            ..Default::default()
        }
        .into(),
    )? {
        Method::BasicConsumeOk(BasicConsumeOk { .. }) => {}
        other => return Err(format!("expected basic.consume-ok, got {other:?}").into()),
    }

    // The request, encoded once with a placeholder correlation id; per call only those bytes change.
    let placeholder = [b'0'; CID_WIDTH];
    let props = BasicProperties::default()
        .with_correlation_id(&placeholder[..])
        .with_reply_to(callback_queue.clone());
    let body = k.to_string();
    let mut encoded = BytesMut::new();
    encode_publish(
        &mut encoded,
        CHANNEL,
        "",
        RPC_QUEUE,
        false,
        false,
        &props,
        body.as_bytes(),
        conn.frame_max,
    )?;
    let request = encoded.to_vec();
    let mut marker = [0u8; CID_WIDTH + 1];
    marker[0] = CID_WIDTH as u8;
    marker[1..].copy_from_slice(&placeholder);
    let cid_at = 1 + request
        .windows(marker.len())
        .position(|w| w == marker)
        .ok_or("correlation id not found in the encoded request")?;
    let cid = cid_at..cid_at + CID_WIDTH;

    // Slot s holds the call whose correlation id is `seq * C + s` (0: free; ids start at C).
    let mut slots = vec![
        Slot {
            id: 0,
            started: Instant::now(),
        };
        inflight
    ];
    let first = (inflight as u64).min(calls);
    let mut out: Vec<u8> = Vec::with_capacity(request.len() * first as usize);
    let mut issued = 0u64;
    let mut completed = 0u64;

    let mut h = histogram();
    let meter = Meter::start();
    for slot in 0..first as usize {
        issued += 1;
        issue(&mut out, &request, &cid, &mut slots, slot, issued);
    }
    loop {
        // Every complete frame already read, before the next blocking read.
        while let Some(incoming) = conn.try_next()? {
            let Incoming::Message(msg) = incoming else {
                continue;
            };
            let properties = &msg.header.properties;
            let Some(slot) = properties
                .correlation_id
                .as_ref()
                .and_then(|c| parse_cid(c.as_bytes()))
                .map(|id| (id, (id % inflight as u64) as usize))
                .filter(|&(id, slot)| id != 0 && slots[slot].id == id)
                .map(|(_, slot)| slot)
            else {
                continue; // not an outstanding call: the tutorial drops it
            };
            if let Some(code) = properties
                .headers
                .as_ref()
                .and_then(|t| t.get(ERROR_HEADER))
            {
                return Err(format!(
                    "error reply {code:?}: {}",
                    String::from_utf8_lossy(&msg.body)
                )
                .into());
            }
            if msg.body.is_empty() || !msg.body.iter().all(u8::is_ascii_digit) {
                return Err(format!(
                    "reply is not a number: {:?}",
                    String::from_utf8_lossy(&msg.body)
                )
                .into());
            }
            record(&mut h, slots[slot].started.elapsed());
            slots[slot].id = 0;
            completed += 1;
            if issued < calls {
                issued += 1;
                issue(&mut out, &request, &cid, &mut slots, slot, issued);
            }
        }
        // One write for every call issued in this batch.
        if !out.is_empty() {
            conn.stream.write_all(&out)?;
            out.clear();
        }
        if completed == calls {
            break;
        }
        conn.fill()?;
    }
    meter.report_calls("floor", calls, inflight, &h, args.flag("json"));
    conn.close()
}

/// One outstanding call of the pipelined client.
#[derive(Clone, Copy)]
struct Slot {
    /// Its correlation id, 0 when the slot is free.
    id: u64,
    /// When its request was put in the output buffer.
    started: Instant,
}

/// Issues call number `seq` in `slot`: appends the pre-encoded `request` to `out` with the
/// correlation id `seq * C + slot` written over the placeholder at `cid`, and stamps the slot.
#[inline]
fn issue(
    out: &mut Vec<u8>,
    request: &[u8],
    cid: &std::ops::Range<usize>,
    slots: &mut [Slot],
    slot: usize,
    seq: u64,
) {
    let id = seq * slots.len() as u64 + slot as u64;
    let at = out.len();
    out.extend_from_slice(request);
    write_padded(&mut out[at + cid.start..at + cid.end], id);
    slots[slot] = Slot {
        id,
        started: Instant::now(),
    };
}

/// The value of a correlation id written by [`write_padded`]: exactly `CID_WIDTH` decimal digits
/// that fit in u64; `None` for anything else.
#[inline]
fn parse_cid(cid: &[u8]) -> Option<u64> {
    if cid.len() != CID_WIDTH {
        return None;
    }
    cid.iter().try_fold(0u64, |v, &b| {
        if b.is_ascii_digit() {
            v.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

fn fib(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let next = a + b;
        a = b;
        b = next;
    }
    a
}

fn server(args: &Args) -> Result<()> {
    let prefetch: u16 = args.get("prefetch", 1);
    let mut conn = Conn::open(&args.uri())?;
    // Same as the tutorial and the other peers: non-durable, not exclusive, no auto-delete, no arguments.
    match conn.call(
        CHANNEL,
        QueueDeclare {
            queue: RPC_QUEUE.into(),
            ..Default::default()
        }
        .into(),
    )? {
        Method::QueueDeclareOk(_) => {}
        other => return Err(format!("expected queue.declare-ok, got {other:?}").into()),
    }
    match conn.call(
        CHANNEL,
        BasicQos {
            prefetch_size: 0,
            prefetch_count: prefetch,
            global: false,
        }
        .into(),
    )? {
        Method::BasicQosOk(_) => {}
        other => return Err(format!("expected basic.qos-ok, got {other:?}").into()),
    }
    match conn.call(
        CHANNEL,
        BasicConsume {
            queue: RPC_QUEUE.into(),
            ..Default::default()
        }
        .into(),
    )? {
        Method::BasicConsumeOk(_) => {}
        other => return Err(format!("expected basic.consume-ok, got {other:?}").into()),
    }
    // Block-buffered like the tutorial's Python stdout (8 KiB), flushed once per batch.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, " [x] Awaiting RPC requests")?;
    out.flush()?;

    // Every reply (publish + ack) of one batch, written at once.
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    let mut digits = [0u8; 20];
    loop {
        // Every complete delivery already read, before the next blocking read.
        while let Some(incoming) = conn.try_next()? {
            let Incoming::Message(msg) = incoming else {
                continue;
            };
            let Method::BasicDeliver(deliver) = &msg.method else {
                continue;
            };
            let props = &msg.header.properties;
            let n = std::str::from_utf8(&msg.body)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let Some(n) = n {
                writeln!(out, " [.] fib({n})")?;
            }
            if let Some(reply_to) = props
                .reply_to
                .as_ref()
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty())
            {
                let mut reply = BasicProperties::default();
                if let Some(id) = &props.correlation_id {
                    reply = reply.with_correlation_id(id.clone());
                }
                let error = match n {
                    _ if props.correlation_id.is_none() => {
                        Some(("bad-request", "request has no correlation_id"))
                    }
                    None => Some(("bad-request", "request body is not a non-negative integer")),
                    Some(n) if n > MAX_N => {
                        Some(("too-large", "n is over this server's limit of 90"))
                    }
                    Some(_) => None,
                };
                let body: &[u8] = match (error, n) {
                    (Some((code, text)), _) => {
                        reply = reply.with_headers(FieldTable::new().with(ERROR_HEADER, code));
                        text.as_bytes()
                    }
                    (None, Some(n)) => decimal(&mut digits, fib(n)),
                    (None, None) => unreachable!("no error means n parsed"),
                };
                encode_publish(
                    &mut wbuf,
                    CHANNEL,
                    "",
                    reply_to,
                    false,
                    false,
                    &reply,
                    body,
                    conn.frame_max,
                )?;
            }
            Frame::Method(
                CHANNEL,
                BasicAck {
                    delivery_tag: deliver.delivery_tag,
                    multiple: false,
                }
                .into(),
            )
            .encode(&mut wbuf)?;
        }
        // One socket write for the batch, then the batch's prints (off the replies' path).
        if !wbuf.is_empty() {
            conn.stream.write_all(&wbuf)?;
            wbuf.clear();
        }
        out.flush()?;
        conn.fill()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts() {
        let u = parse_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(
            (
                u.addr.as_str(),
                u.user.as_str(),
                u.pass.as_str(),
                u.vhost.as_str()
            ),
            ("127.0.0.1:5672", "guest", "guest", "/")
        );
        let u = parse_uri("amqp://h").unwrap();
        assert_eq!((u.addr.as_str(), u.vhost.as_str()), ("h:5672", "/"));
    }

    #[test]
    fn numbers() {
        let mut b = [0u8; 20];
        assert_eq!(decimal(&mut b, 0), b"0");
        assert_eq!(decimal(&mut b, fib(90)), b"2880067194370816120");
        let mut c = [0u8; 5];
        write_padded(&mut c, 42);
        assert_eq!(&c, b"00042");
    }

    #[test]
    fn correlation_ids() {
        let mut c = [0u8; CID_WIDTH];
        write_padded(&mut c, u64::MAX);
        assert_eq!(parse_cid(&c), Some(u64::MAX));
        write_padded(&mut c, 30_000 * 64 + 63);
        assert_eq!(parse_cid(&c), Some(1_920_063));
        assert_eq!(parse_cid(b"99999999999999999999"), None);
        assert_eq!(parse_cid(b"0000000000000000001x"), None);
        assert_eq!(parse_cid(b"123"), None);
    }
}
