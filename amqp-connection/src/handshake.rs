//! The connection handshake as a sans-IO state machine (spec 2.2.4, RabbitMQ's extensions).
//!
//! ```text
//! client                     broker
//! protocol header  ------>
//!                  <------   connection.start   (mechanisms, locales, server properties)
//! start-ok         ------>                      (client properties, PLAIN/AMQPLAIN response)
//!                  <------   connection.tune    (channel-max, frame-max, heartbeat)
//! tune-ok + open   ------>                      (negotiated values; vhost)
//!                  <------   connection.open-ok
//! ```
//!
//! [`Handshake::handle`] takes each frame the broker sends and appends what to answer; the tokio
//! driver only moves bytes and enforces the timeout. A `connection.close` from the broker is
//! answered with close-ok and mapped by stage: RabbitMQ says 403 ACCESS_REFUSED for a bad login
//! (to clients that announce `authentication_failure_close`, as this one does) and 530
//! NOT_ALLOWED for a vhost the user may not open.

use bytes::{BufMut, BytesMut};

use amqp_codec::{
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTune, ConnectionTuneOk,
    FieldTable, FieldValue, Frame, LongString, Method, FRAME_MIN_SIZE,
};

use crate::error::{Error, Result, ACCESS_REFUSED, NOT_ALLOWED};
use crate::uri::{AuthMechanism, ConnectionConfig};

/// What the handshake settled.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuned {
    /// Highest usable channel number (never 0: "no limit" becomes 65535).
    pub channel_max: u16,
    /// Largest frame either side may send (never 0: "no limit" becomes `u32::MAX`).
    pub frame_max: u32,
    /// Heartbeat interval in seconds; 0 = heartbeats disabled.
    pub heartbeat: u16,
    /// The broker's `server-properties` (product, version, capabilities).
    pub server_properties: FieldTable,
}

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Protocol header sent, waiting for `connection.start`.
    AwaitStart,
    /// `start-ok` sent, waiting for `connection.tune` (a bad login is refused here).
    AwaitTune,
    /// `tune-ok` and `open` sent, waiting for `connection.open-ok` (a bad vhost is refused here).
    AwaitOpenOk,
    /// Finished.
    Done,
}

impl Stage {
    /// What the client waits for, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::AwaitStart => "waiting for connection.start",
            Stage::AwaitTune => "waiting for connection.tune (authentication)",
            Stage::AwaitOpenOk => "waiting for connection.open-ok (vhost)",
            Stage::Done => "after the handshake",
        }
    }
}

/// RabbitMQ's rule for channel-max and frame-max (and, as the issue asks, heartbeat): 0 means
/// "no limit" on either side, so take the lower of the non-zero values.
pub fn negotiate<T: Copy + Ord + Default>(client: T, server: T) -> T {
    let zero = T::default();
    if client == zero {
        server
    } else if server == zero {
        client
    } else {
        client.min(server)
    }
}

/// The client properties sent in `start-ok`, with the capabilities this layer implements.
pub fn client_properties(config: &ConnectionConfig) -> FieldTable {
    let capabilities = FieldTable::new()
        .with("publisher_confirms", true)
        .with("consumer_cancel_notify", true)
        .with("exchange_exchange_bindings", true)
        .with("basic.nack", true)
        .with("connection.blocked", true)
        .with("authentication_failure_close", true);
    let mut props = FieldTable::new()
        .with("product", "amqp-rpc")
        .with("version", env!("CARGO_PKG_VERSION"))
        .with("platform", "Rust")
        .with("information", "AMQP 0-9-1 from raw TCP")
        .with("capabilities", capabilities);
    if let Some(name) = &config.connection_name {
        props.insert("connection_name", name.as_str());
    }
    props
}

/// The SASL response for `mechanism`.
pub fn sasl_response(mechanism: AuthMechanism, user: &str, password: &str) -> LongString {
    match mechanism {
        // RFC 4616: authzid NUL authcid NUL passwd, with an empty authzid.
        AuthMechanism::Plain => {
            let mut b = Vec::with_capacity(2 + user.len() + password.len());
            b.push(0);
            b.extend_from_slice(user.as_bytes());
            b.push(0);
            b.extend_from_slice(password.as_bytes());
            b.into()
        }
        // AMQPLAIN: the entries of a field table {LOGIN: S, PASSWORD: S} without the table's
        // own length prefix (RabbitMQ's rabbit_auth_mechanism_amqplain).
        AuthMechanism::AmqPlain => {
            let mut b = BytesMut::new();
            for (key, value) in [("LOGIN", user), ("PASSWORD", password)] {
                b.put_u8(key.len() as u8);
                b.put_slice(key.as_bytes());
                b.put_u8(b'S');
                b.put_u32(value.len() as u32);
                b.put_slice(value.as_bytes());
            }
            b.freeze().into()
        }
    }
}

/// The handshake state machine. It holds only what it learns; the settings it answers with are
/// passed to each [`Handshake::handle`].
#[derive(Debug)]
pub struct Handshake {
    stage: Stage,
    server_properties: FieldTable,
    tuned: Option<Tuned>,
}

fn words(list: &LongString) -> impl Iterator<Item = &[u8]> {
    list.as_bytes()
        .split(|b| *b == b' ')
        .filter(|w| !w.is_empty())
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake::new()
    }
}

impl Handshake {
    /// A handshake at its start; send [`amqp_codec::PROTOCOL_HEADER`] first.
    pub fn new() -> Self {
        Handshake {
            stage: Stage::AwaitStart,
            server_properties: FieldTable::new(),
            tuned: None,
        }
    }

    /// Where the handshake is.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Handle one frame from the broker, appending the answer to `out`. Returns the settled
    /// parameters once `open-ok` arrives.
    pub fn handle(
        &mut self,
        config: &ConnectionConfig,
        frame: Frame,
        out: &mut BytesMut,
    ) -> Result<Option<Tuned>> {
        let method = match frame {
            // A broker that does not speak 0-9-1 answers our header with the one it speaks.
            Frame::ProtocolHeader(h) => {
                return Err(match h.check() {
                    Err(e) => Error::ProtocolMismatch(e.to_string()),
                    Ok(()) => Error::Protocol("peer echoed the protocol header".into()),
                })
            }
            // After tune-ok the broker may start heartbeating before open-ok.
            Frame::Heartbeat => return Ok(None),
            Frame::Method(0, m) => m,
            Frame::Method(ch, m) => {
                return Err(Error::Protocol(format!(
                    "{}.{} on channel {ch} during the handshake",
                    m.info().class_name,
                    m.info().method_name
                )))
            }
            Frame::Header(ch, _) | Frame::Body(ch, _) => {
                return Err(Error::Protocol(format!(
                    "content frame on channel {ch} during the handshake"
                )))
            }
        };
        match (self.stage, method) {
            (stage, Method::ConnectionClose(close)) => {
                Frame::Method(0, ConnectionCloseOk {}.into()).encode(out)?;
                let code = close.reply_code;
                let text = close.reply_text.to_string_lossy().into_owned();
                Err(match (stage, code) {
                    (_, ACCESS_REFUSED) => Error::AuthenticationFailed { code, text },
                    (_, NOT_ALLOWED) => Error::VhostNotAllowed {
                        vhost: config.vhost.clone(),
                        code,
                        text,
                    },
                    _ => Error::ConnectionClosed {
                        code,
                        text,
                        class_id: close.class_id,
                        method_id: close.method_id,
                    },
                })
            }
            (Stage::AwaitStart, Method::ConnectionStart(start)) => {
                if (start.version_major, start.version_minor) != (0, 9) {
                    return Err(Error::ProtocolMismatch(format!(
                        "connection.start offers version {}-{}, expected 0-9",
                        start.version_major, start.version_minor
                    )));
                }
                let mechanism = config.mechanism.name();
                if !words(&start.mechanisms).any(|w| w == mechanism.as_bytes()) {
                    return Err(Error::AuthenticationFailed {
                        code: ACCESS_REFUSED,
                        text: format!(
                            "broker does not offer SASL mechanism {mechanism} (offers {:?})",
                            start.mechanisms.to_string_lossy()
                        ),
                    });
                }
                let locale = if words(&start.locales).any(|w| w == b"en_US") {
                    "en_US"
                } else {
                    words(&start.locales)
                        .next()
                        .and_then(|w| std::str::from_utf8(w).ok())
                        .unwrap_or("en_US")
                };
                self.server_properties = start.server_properties;
                let start_ok = ConnectionStartOk {
                    client_properties: client_properties(config),
                    mechanism: mechanism.into(),
                    response: sasl_response(
                        config.mechanism,
                        &config.username,
                        config.password.expose(),
                    ),
                    locale: locale.into(),
                };
                Frame::Method(0, start_ok.into()).encode(out)?;
                self.stage = Stage::AwaitTune;
                Ok(None)
            }
            (Stage::AwaitTune, Method::ConnectionSecure(_)) => Err(Error::Protocol(format!(
                "unexpected connection.secure: {} needs no challenge",
                config.mechanism.name()
            ))),
            (Stage::AwaitTune, Method::ConnectionTune(tune)) => {
                let tuned = self.tune(config, &tune)?;
                let tune_ok = ConnectionTuneOk {
                    channel_max: tuned.channel_max,
                    frame_max: tuned.frame_max,
                    heartbeat: tuned.heartbeat,
                };
                Frame::Method(0, tune_ok.into()).encode(out)?;
                let open = ConnectionOpen {
                    virtual_host: config.vhost.as_str().into(),
                    ..Default::default()
                };
                Frame::Method(0, open.into()).encode(out)?;
                self.tuned = Some(tuned);
                self.stage = Stage::AwaitOpenOk;
                Ok(None)
            }
            (Stage::AwaitOpenOk, Method::ConnectionOpenOk(_)) => {
                self.stage = Stage::Done;
                Ok(self.tuned.take())
            }
            (stage, m) => Err(Error::Protocol(format!(
                "unexpected {}.{} while {}",
                m.info().class_name,
                m.info().method_name,
                stage.describe()
            ))),
        }
    }

    fn tune(&self, config: &ConnectionConfig, tune: &ConnectionTune) -> Result<Tuned> {
        // 0 on both sides is "no limit" but the field's own (spec, connection.tune). `Tuned`
        // holds the limit in force, so that nothing downstream needs a special case: a 0 kept
        // here made `open_channel` find every number from 1 to 0 "in use".
        let channel_max = match negotiate(config.channel_max, tune.channel_max) {
            0 => u16::MAX,
            n => n,
        };
        let frame_max = match negotiate(config.frame_max, tune.frame_max) {
            0 => u32::MAX,
            n => n,
        };
        let heartbeat = negotiate(config.heartbeat, tune.heartbeat);
        // Spec: "frame-max ... MUST NOT be lower than frame-min-size" (4096).
        if frame_max < FRAME_MIN_SIZE {
            return Err(Error::Protocol(format!(
                "broker proposes frame_max {}, below the AMQP minimum {FRAME_MIN_SIZE}",
                tune.frame_max
            )));
        }
        Ok(Tuned {
            channel_max,
            frame_max,
            heartbeat,
            server_properties: self.server_properties.clone(),
        })
    }
}

/// Read a boolean capability from server properties.
pub fn server_capability(props: &FieldTable, name: &str) -> bool {
    match props.get("capabilities") {
        Some(FieldValue::FieldTable(caps)) => {
            matches!(caps.get(name), Some(FieldValue::Boolean(true)))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::{ConnectionClose, ConnectionOpenOk, ConnectionStart, FrameDecoder};

    fn start() -> Frame {
        Frame::Method(
            0,
            ConnectionStart {
                version_major: 0,
                version_minor: 9,
                server_properties: FieldTable::new().with(
                    "capabilities",
                    FieldTable::new().with("publisher_confirms", true),
                ),
                mechanisms: "AMQPLAIN PLAIN".into(),
                locales: "en_US".into(),
            }
            .into(),
        )
    }

    fn tune(channel_max: u16, frame_max: u32, heartbeat: u16) -> Frame {
        Frame::Method(
            0,
            ConnectionTune {
                channel_max,
                frame_max,
                heartbeat,
            }
            .into(),
        )
    }

    fn frames(out: &mut BytesMut) -> Vec<Frame> {
        let mut d = FrameDecoder::new(0);
        let mut v = Vec::new();
        while let Some(f) = d.decode(out).unwrap() {
            v.push(f);
        }
        v
    }

    #[test]
    fn negotiation_rules() {
        assert_eq!(negotiate(0u16, 0), 0);
        assert_eq!(negotiate(0u16, 60), 60);
        assert_eq!(negotiate(30u16, 0), 30);
        assert_eq!(negotiate(30u16, 60), 30);
        assert_eq!(negotiate(131_072u32, 4096), 4096);
        assert_eq!(negotiate(0u32, 131_072), 131_072);
    }

    #[test]
    fn full_handshake() {
        let config =
            ConnectionConfig::parse("amqp://bob:secret@h/prod?heartbeat=10&channel_max=0").unwrap();
        let mut hs = Handshake::new();
        let mut out = BytesMut::new();
        assert_eq!(hs.handle(&config, start(), &mut out).unwrap(), None);
        let sent = frames(&mut out);
        let [Frame::Method(0, Method::ConnectionStartOk(ok))] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(ok.mechanism.as_str(), Some("PLAIN"));
        assert_eq!(ok.response.as_bytes(), b"\0bob\0secret");
        assert!(matches!(
            ok.client_properties.get("capabilities"),
            Some(FieldValue::FieldTable(c)) if c.get("authentication_failure_close") == Some(&FieldValue::Boolean(true))
        ));
        assert_eq!(hs.stage(), Stage::AwaitTune);

        assert_eq!(
            hs.handle(&config, tune(2047, 131_072, 60), &mut out)
                .unwrap(),
            None
        );
        let sent = frames(&mut out);
        let [Frame::Method(0, Method::ConnectionTuneOk(t)), Frame::Method(0, Method::ConnectionOpen(o))] =
            &sent[..]
        else {
            panic!("{sent:?}")
        };
        assert_eq!(
            (t.channel_max, t.frame_max, t.heartbeat),
            (2047, 131_072, 10)
        );
        assert_eq!(o.virtual_host.as_str(), Some("prod"));

        assert_eq!(
            hs.handle(&config, Frame::Heartbeat, &mut out).unwrap(),
            None
        );
        let tuned = hs
            .handle(
                &config,
                Frame::Method(0, ConnectionOpenOk::default().into()),
                &mut out,
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (tuned.channel_max, tuned.frame_max, tuned.heartbeat),
            (2047, 131_072, 10)
        );
        assert!(server_capability(
            &tuned.server_properties,
            "publisher_confirms"
        ));
        assert_eq!(hs.stage(), Stage::Done);
    }

    #[test]
    fn amqplain_response() {
        let r = sasl_response(AuthMechanism::AmqPlain, "u", "p");
        assert_eq!(
            r.as_bytes(),
            b"\x05LOGINS\0\0\0\x01u\x08PASSWORDS\0\0\0\x01p"
        );
    }

    fn close(code: u16) -> Frame {
        Frame::Method(
            0,
            ConnectionClose {
                reply_code: code,
                reply_text: "NO".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        )
    }

    #[test]
    fn refusals_are_typed_and_answered() {
        let config = ConnectionConfig::default();
        let mut hs = Handshake::new();
        let mut out = BytesMut::new();
        hs.handle(&config, start(), &mut out).unwrap();
        out.clear();
        let e = hs.handle(&config, close(403), &mut out).unwrap_err();
        assert!(
            matches!(e, Error::AuthenticationFailed { code: 403, .. }),
            "{e}"
        );
        assert!(matches!(
            frames(&mut out)[..],
            [Frame::Method(0, Method::ConnectionCloseOk(_))]
        ));

        let mut hs = Handshake::new();
        hs.handle(&config, start(), &mut out).unwrap();
        hs.handle(&config, tune(0, 0, 0), &mut out).unwrap();
        let e = hs.handle(&config, close(530), &mut out).unwrap_err();
        assert!(
            matches!(e, Error::VhostNotAllowed { code: 530, ref vhost, .. } if vhost == "/"),
            "{e}"
        );
    }

    #[test]
    fn nonsense_is_refused() {
        let config = ConnectionConfig::default();
        let mut out = BytesMut::new();
        let mut hs = Handshake::new();
        let e = hs.handle(&config, tune(0, 0, 0), &mut out).unwrap_err();
        assert!(e.to_string().contains("connection.tune"), "{e}");
        let mut hs = Handshake::new();
        let e = hs
            .handle(
                &config,
                Frame::ProtocolHeader(amqp_codec::ProtocolHeader(*b"AMQP\x00\x01\x00\x00")),
                &mut out,
            )
            .unwrap_err();
        assert!(matches!(e, Error::ProtocolMismatch(_)), "{e}");
        let mut hs = Handshake::new();
        hs.handle(&config, start(), &mut out).unwrap();
        let e = hs.handle(&config, tune(0, 1024, 0), &mut out).unwrap_err();
        assert!(e.to_string().contains("1024"), "{e}");
    }
}
