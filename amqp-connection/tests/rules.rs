//! The connection rules, tested deterministically: one [`Connection`], a scripted broker that
//! encodes its frames with `amqp_codec`, and a simulated clock (`tests/support`). No sockets and
//! no sleeps: every deadline is checked at its instant and a moment before it.
//!
//! Each case of `amqp-client/tests/fake_peer.rs` (the same misbehaviour through a real socket and
//! the tokio shell) has a twin here:
//!
//! | `fake_peer.rs`                                              | here                                                    |
//! |-------------------------------------------------------------|---------------------------------------------------------|
//! | `garbage_bytes_are_a_frame_error`                           | `garbage_bytes_are_a_501_frame_error`                   |
//! | `frame_larger_than_frame_max_is_refused`                    | `frame_larger_than_frame_max_is_refused_from_its_header` |
//! | `wrong_frame_end_octet`                                     | `wrong_frame_end_octet_is_501`                          |
//! | `eof_in_the_middle_of_a_frame`                              | `eof_in_the_middle_of_a_frame`                          |
//! | `silent_peer_is_a_heartbeat_timeout_and_fails_waiters`      | `silent_peer_is_dead_after_two_intervals_and_fails_waiters` |
//! | `unexpected_method_on_a_channel_closes_the_connection`      | `unexpected_method_on_a_channel_is_505_and_fails_every_call` |
//! | `frame_on_a_channel_that_is_not_open`                       | `frame_on_a_channel_that_is_not_open_is_504`            |
//! | `broker_connection_close_is_answered`                       | `broker_connection_close_is_answered_with_close_ok`     |
//! | `client_close_is_clean`                                     | `client_close_ends_at_close_ok`                         |
//! | `accepting_then_silent_peer_is_a_handshake_timeout`         | `handshake_timeout_names_the_stage` (connection.start)  |
//! | `nonsense_during_the_handshake`                             | `nonsense_during_the_handshake_is_a_frame_error`        |
//! | `other_protocol_version_is_a_mismatch`                      | `other_protocol_version_is_a_mismatch`                  |
//! | `socket_closed_after_start_ok_is_an_authentication_error`   | `eof_right_after_start_ok_is_an_authentication_failure` |
//! | `connection_timeout_bounds_a_slow_handshake_not_just_connect` | `slow_handshake_is_bounded_as_a_whole`                |
//! | `a_connect_that_never_completes_is_a_connect_timeout`       | none: the TCP connect is the shell's, the core starts at the protocol header |

mod support;

use std::time::Duration;

use bytes::BytesMut;

use amqp_codec::{
    BasicAck, BasicCancel, BasicCancelOk, BasicGet, BasicGetEmpty, BasicGetOk, BasicNack,
    BasicProperties, BasicReject, BasicReturn, ChannelClose, ChannelCloseOk, ChannelFlow,
    ChannelOpenOk, ConfirmSelect, ConfirmSelectOk, ConnectionBlocked, ConnectionClose,
    ConnectionCloseOk, ConnectionOpenOk, ConnectionStart, ConnectionUnblocked, ContentHeader,
    DecodeError, FieldTable, Frame, Method, QueueBindOk, QueueDeclare, QueueDeclareOk,
};
use amqp_connection::{
    Confirm, Connection, ConnectionConfig, Error, Event, Reply, Sent, Stage, CLOSE_TIMEOUT,
};

use support::{delivery_frames, encode, frame_header, method, start, tune, Harness, Tune};

const MS: Duration = Duration::from_millis(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn declare(queue: &str) -> QueueDeclare {
    QueueDeclare {
        queue: queue.into(),
        ..Default::default()
    }
}

fn declare_ok(queue: &str) -> QueueDeclareOk {
    QueueDeclareOk {
        queue: queue.into(),
        message_count: 0,
        consumer_count: 0,
    }
}

fn connection_close(code: u16, text: &str) -> Frame {
    method(
        0,
        ConnectionClose {
            reply_code: code,
            reply_text: text.into(),
            class_id: 0,
            method_id: 0,
        },
    )
}

fn channel_close(channel: u16, code: u16, text: &str) -> Frame {
    method(
        channel,
        ChannelClose {
            reply_code: code,
            reply_text: text.into(),
            class_id: 50,
            method_id: 10,
        },
    )
}

fn by_client() -> Error {
    Error::ConnectionClosed {
        code: 200,
        text: "closed by client".into(),
        class_id: 0,
        method_id: 0,
    }
}

/// What a violation looks like from outside: the client's `connection.close` with `code` now,
/// nothing ended yet (the broker has CLOSE_TIMEOUT to answer), and once the broker's close-ok
/// comes, the events that end everything. Returns those events, `Closed` last.
fn violation_closes_with(h: &mut Harness, code: u16) -> Vec<Event> {
    assert_eq!(h.expect_connection_close(), code);
    assert!(h.conn.is_closing());
    assert!(!h.conn.is_closed());
    assert!(h.conn.open_channel().is_err(), "no new work while closing");
    let early = h.events();
    assert!(early.is_empty(), "nothing ends before close-ok: {early:?}");
    h.send(&[method(0, ConnectionCloseOk {})]);
    let events = h.events();
    assert!(
        matches!(events.last(), Some(Event::Closed { .. })),
        "{events:?}"
    );
    assert!(h.conn.is_closed());
    assert_eq!(h.conn.poll_timeout(), None);
    events
}

fn closed_error(events: &[Event]) -> &Error {
    match events.last() {
        Some(Event::Closed { error }) => error,
        _ => panic!("not closed: {events:?}"),
    }
}

// ---------------------------------------------------------------- handshake

#[test]
fn handshake_negotiates_the_lower_values_and_opens_the_vhost() {
    let config = ConnectionConfig::parse(
        "amqp://bob:secret@broker/prod?heartbeat=10&channel_max=100&frame_max=65536&connection_timeout=2000",
    )
    .unwrap();
    let mut h = Harness::new(config);
    assert_eq!(h.conn.stage(), Stage::AwaitStart);
    assert!(matches!(&h.sent()[..], [Frame::ProtocolHeader(_)]));
    assert_eq!(h.conn.poll_timeout(), Some(h.t0 + secs(2)));

    h.send(&[start()]);
    let sent = h.sent_methods();
    let [(0, Method::ConnectionStartOk(ok))] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(ok.mechanism.as_str(), Some("PLAIN"));
    assert_eq!(ok.response.as_bytes(), b"\0bob\0secret");
    assert_eq!(h.conn.stage(), Stage::AwaitTune);

    h.send(&[tune(2047, 131_072, 60)]);
    let sent = h.sent_methods();
    let [(0, Method::ConnectionTuneOk(t)), (0, Method::ConnectionOpen(o))] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!((t.channel_max, t.frame_max, t.heartbeat), (100, 65_536, 10));
    assert_eq!(o.virtual_host.as_str(), Some("prod"));
    assert_eq!(h.conn.stage(), Stage::AwaitOpenOk);

    // RabbitMQ may heartbeat between tune-ok and open-ok.
    h.send(&[Frame::Heartbeat]);
    assert!(h.events().is_empty());
    h.send(&[method(0, ConnectionOpenOk::default())]);
    assert!(matches!(h.one_event(), Event::Connected));
    let tuned = h.conn.tuned().unwrap();
    assert_eq!(
        (tuned.channel_max, tuned.frame_max, tuned.heartbeat),
        (100, 65_536, 10)
    );
    assert_eq!(h.conn.stage(), Stage::Done);
    // The handshake's deadline is gone; the heartbeat's is next (half of 10 s since tune-ok).
    assert_eq!(h.conn.poll_timeout(), Some(h.t0 + secs(5)));
}

#[test]
fn zero_means_no_limit_and_the_other_side_decides() {
    // Ours 0, the broker's set: the broker's values.
    let mut h = Harness::with_query("heartbeat=0&channel_max=0&frame_max=0");
    h.handshake(Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    });
    let t = h.conn.tuned().unwrap();
    assert_eq!(
        (t.channel_max, t.frame_max, t.heartbeat),
        (2047, 131_072, 60)
    );

    // The broker's 0, ours set: ours.
    let mut h = Harness::with_query("heartbeat=15&channel_max=16&frame_max=8192");
    h.handshake(Tune {
        channel_max: 0,
        frame_max: 0,
        heartbeat: 0,
    });
    let t = h.conn.tuned().unwrap();
    assert_eq!((t.channel_max, t.frame_max, t.heartbeat), (16, 8192, 15));
}

/// Both sides say "no limit" for channel-max: channels must still open (spec: 0 means no
/// limit but the field's own, 65535). Before the fix the negotiated 0 was used as the limit and
/// every `open_channel` failed with "all 0 channel numbers are in use".
#[test]
fn channel_max_zero_on_both_sides_means_65535() {
    let mut h = Harness::with_query("heartbeat=0&channel_max=0&frame_max=0");
    assert!(matches!(&h.sent()[..], [Frame::ProtocolHeader(_)]));
    h.send(&[start()]);
    h.sent();
    h.send(&[tune(0, 0, 0)]);
    let sent = h.sent_methods();
    let [(0, Method::ConnectionTuneOk(t)), _] = &sent[..] else {
        panic!("{sent:?}")
    };
    assert_eq!(t.channel_max, u16::MAX, "tune-ok carries the real limit");
    h.send(&[method(0, ConnectionOpenOk::default())]);
    assert!(matches!(h.one_event(), Event::Connected));
    assert_eq!(h.conn.tuned().unwrap().channel_max, u16::MAX);
    let ch = h.open_channel();
    assert_eq!(ch.number(), 1);
    // No heartbeat either way: no deadline at all.
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn bad_login_is_a_403_authentication_failure() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[start()]);
    h.sent();
    h.send(&[connection_close(
        403,
        "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
    )]);
    assert!(matches!(
        &h.sent()[..],
        [Frame::Method(0, Method::ConnectionCloseOk(_))]
    ));
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::AuthenticationFailed { code: 403, text } if text.contains("Login was refused")),
        "{e}"
    );
    assert!(matches!(
        h.conn.open_channel(),
        Err(Error::AuthenticationFailed { .. })
    ));
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn vhost_not_allowed_is_530() {
    let mut h = Harness::with_query("heartbeat=0");
    h.sent();
    h.send(&[start()]);
    h.sent();
    h.send(&[tune(2047, 131_072, 0)]);
    h.sent();
    assert_eq!(h.conn.stage(), Stage::AwaitOpenOk);
    h.send(&[connection_close(530, "NOT_ALLOWED - vhost / not found")]);
    assert!(matches!(
        &h.sent()[..],
        [Frame::Method(0, Method::ConnectionCloseOk(_))]
    ));
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::VhostNotAllowed { code: 530, vhost, .. } if vhost == "/"),
        "{e}"
    );
}

#[test]
fn eof_right_after_start_ok_is_an_authentication_failure() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[start()]);
    h.sent();
    // RabbitMQ closes the socket on a bad login for clients without
    // authentication_failure_close.
    h.eof();
    let e = h.closed_error();
    assert!(
        matches!(e, Error::AuthenticationFailed { code: 403, .. }),
        "{e}"
    );
}

/// The broker's tune was cut one byte in: not a refused login but a lost connection, said as such
/// (issue 13: it used to be reported as "authentication failed: 403").
#[test]
fn eof_one_byte_into_tune_is_a_cut_frame_not_a_bad_login() {
    let tune_bytes = encode(&[tune(2047, 131_072, 60)]);

    // Through handle_bytes: the core keeps the byte itself.
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[start()]);
    h.sent();
    h.send_raw(&tune_bytes[..1]);
    assert!(h.events().is_empty());
    h.eof();
    let e = h.closed_error();
    match &e {
        Error::ConnectionLost(text) => {
            assert!(text.contains("middle of a frame"), "{text}");
            assert!(text.contains("(1 byte of it"), "{text}");
            assert!(text.contains("connection.tune"), "{text}");
        }
        other => panic!("expected ConnectionLost, got {other}"),
    }

    // Through handle_input: the driver's buffer keeps it and says so at EOF.
    let t0 = h.t0;
    let mut conn = Connection::new(ConnectionConfig::default(), t0);
    let mut out = BytesMut::new();
    conn.poll_transmit(t0, &mut out);
    conn.handle_input(&mut encode(&[start()]), t0);
    let mut buf = BytesMut::from(&tune_bytes[..1]);
    conn.handle_input(&mut buf, t0);
    assert_eq!(buf.len(), 1, "a partial frame stays in the driver's buffer");
    conn.handle_eof(buf.len(), t0);
    assert!(matches!(
        conn.error(),
        Some(Error::ConnectionLost(t)) if t.contains("middle of a frame")
    ));
}

#[test]
fn eof_at_other_stages_names_the_stage() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.eof();
    assert!(matches!(h.closed_error(), Error::ConnectionLost(t) if t.contains("connection.start")),);

    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[start(), tune(2047, 131_072, 0)]);
    h.sent();
    h.eof();
    assert!(matches!(h.closed_error(), Error::ConnectionLost(t) if t.contains("open-ok")));
}

#[test]
fn other_protocol_version_is_a_mismatch() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send_raw(b"AMQP\x00\x01\x00\x00");
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::ProtocolMismatch(t) if t.contains("AMQP 1.0")),
        "{e}"
    );

    // A connection.start offering another version.
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[method(
        0,
        ConnectionStart {
            version_major: 8,
            version_minor: 0,
            server_properties: FieldTable::new(),
            mechanisms: "PLAIN".into(),
            locales: "en_US".into(),
        },
    )]);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::ProtocolMismatch(t) if t.contains("8-0")),
        "{e}"
    );
    assert!(
        h.sent().is_empty(),
        "no start-ok to a broker we cannot speak to"
    );
}

#[test]
fn nonsense_during_the_handshake_is_a_frame_error() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send_raw(b"SSH-2.0-OpenSSH_9.6\r\n");
    let e = h.closed_error();
    assert!(
        matches!(
            e,
            Error::Decode(DecodeError::UnknownFrameType { found: b'S' })
        ),
        "{e}"
    );
    // Nothing was agreed yet: no connection.close to send.
    assert!(h.sent().is_empty());
}

#[test]
fn sasl_mechanism_not_offered_is_refused() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[method(
        0,
        ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: FieldTable::new(),
            mechanisms: "EXTERNAL".into(),
            locales: "en_US".into(),
        },
    )]);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::AuthenticationFailed { text, .. } if text.contains("PLAIN") && text.contains("EXTERNAL")),
        "{e}"
    );
}

#[test]
fn a_channel_frame_during_the_handshake_is_refused() {
    let mut h = Harness::new(ConnectionConfig::default());
    h.sent();
    h.send(&[start()]);
    h.sent();
    h.send(&[method(1, ChannelOpenOk::default())]);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::Protocol(t) if t.contains("channel 1 during the handshake")),
        "{e}"
    );
}

#[test]
fn handshake_timeout_names_the_stage() {
    // No connection.start at all (an accepting, silent peer).
    let mut h = Harness::with_query("connection_timeout=400");
    assert!(h.run_until(399 * MS).len() == 1, "only the protocol header");
    assert!(h.events().is_empty());
    h.run_until(400 * MS);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::HandshakeTimeout { stage, timeout, .. } if stage.contains("connection.start") && *timeout == 400 * MS),
        "{e}"
    );

    // No open-ok.
    let mut h = Harness::with_query("connection_timeout=400");
    h.sent();
    h.send(&[start(), tune(2047, 131_072, 60)]);
    h.run_until(400 * MS);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::HandshakeTimeout { stage, .. } if stage.contains("open-ok")),
        "{e}"
    );
}

/// connection_timeout bounds the handshake as a whole, not each step: a broker that answers each
/// step within the bound but takes longer in total is still cut off.
#[test]
fn slow_handshake_is_bounded_as_a_whole() {
    let mut h = Harness::with_query("connection_timeout=400");
    h.run_until(250 * MS);
    h.send(&[start()]);
    h.run_until(399 * MS);
    assert!(!h.conn.is_closed());
    h.run_until(500 * MS);
    assert_eq!(h.elapsed(), 500 * MS);
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::HandshakeTimeout { stage, .. } if stage.contains("tune")),
        "{e}"
    );
}

// ---------------------------------------------------------------- heartbeats

fn heartbeat_times(h: &Harness) -> Vec<Duration> {
    h.log
        .iter()
        .filter(|(_, f)| *f == Frame::Heartbeat)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn heartbeat_goes_out_after_half_an_interval_of_silence() {
    let mut h = Harness::with_query("heartbeat=10");
    h.handshake(Tune {
        heartbeat: 10,
        ..Tune::default()
    });
    assert!(h.run_until(5 * secs(1) - MS).is_empty());
    assert_eq!(h.run_until(secs(5)), vec![Frame::Heartbeat]);
    // What the broker sends does not postpone ours: heartbeats are about our silence.
    h.run_until(secs(9));
    h.send(&[Frame::Heartbeat]);
    h.run_until(secs(14));
    h.send(&[Frame::Heartbeat]);
    h.run_until(secs(16));
    assert_eq!(heartbeat_times(&h), vec![secs(5), secs(10), secs(15)]);
    assert!(h.conn.is_connected());
}

#[test]
fn no_heartbeat_while_other_frames_go_out() {
    let mut h = Harness::with_query("heartbeat=10");
    h.handshake(Tune {
        heartbeat: 10,
        ..Tune::default()
    });
    let ch = h.open_channel();
    for s in 1..=30 {
        h.run_until(secs(s));
        // Something leaves every 4 s at most, well inside half an interval.
        if s % 4 == 0 {
            h.conn
                .publish(ch, "", "q", false, false, &BasicProperties::default(), b"x")
                .unwrap();
        }
        // The broker keeps talking too.
        if s % 3 == 0 {
            h.send(&[Frame::Heartbeat]);
        }
    }
    h.run_until(secs(30));
    assert_eq!(heartbeat_times(&h), Vec::<Duration>::new());
    // Silent again after the last publish at 28 s: a heartbeat at 33 s.
    h.run_until(secs(34));
    assert_eq!(heartbeat_times(&h), vec![secs(33)]);
}

#[test]
fn silent_peer_is_dead_after_two_intervals_and_fails_waiters() {
    let mut h = Harness::with_query("heartbeat=10");
    h.handshake(Tune {
        heartbeat: 10,
        ..Tune::default()
    });
    let ch = h.open_channel();
    // The broker's last word was the open-ok at 0 s; a call at 1 s never gets its reply.
    h.run_until(secs(1));
    h.call(ch, declare("q"));
    h.run_until(secs(20) - MS);
    assert!(h.conn.is_connected());
    assert!(h.events().is_empty());
    h.run_until(secs(20));
    let events = h.events();
    assert!(
        matches!(&events[..], [
            Event::Reply { channel: 1, result: Err(Error::HeartbeatTimeout(d1)) },
            Event::ChannelClosed { channel: 1, error: Error::HeartbeatTimeout(_) },
            Event::Closed { error: Error::HeartbeatTimeout(d2) },
        ] if *d1 == secs(20) && *d2 == secs(20)),
        "{events:?}"
    );
    // It kept sending heartbeats while it waited: at 6, 11 and 16 s (the call went out at 1 s).
    assert_eq!(heartbeat_times(&h), vec![secs(6), secs(11), secs(16)]);
    assert_eq!(h.conn.poll_timeout(), None);
    assert!(matches!(
        h.conn.send_method(ch, declare("q").into()),
        Err(Error::HeartbeatTimeout(_))
    ));
}

/// A close of ours waits for close-ok at most CLOSE_TIMEOUT, and less if the broker's silence
/// proves it dead first; either way the connection ends with the reason the close began with
/// (as at EOF), not with the silence. Before the fix a reply timeout's calls were told
/// "heartbeat timeout" when the broker stayed silent.
#[test]
fn a_silent_peer_while_we_close_ends_with_the_close_reason() {
    let mut h = Harness::with_query("heartbeat=1");
    h.handshake(Tune {
        heartbeat: 1,
        ..Tune::default()
    });
    h.conn.set_reply_timeout(secs(1));
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    // The broker stays silent but for heartbeats until the reply deadline, then falls silent.
    h.run_until(900 * MS);
    h.send(&[Frame::Heartbeat]);
    h.run_until(secs(1));
    assert!(h.conn.is_closing());
    // Dead at 0.9 s + 2 s, before the close's own 1 s + CLOSE_TIMEOUT.
    h.run_until(2900 * MS - MS);
    assert!(h.conn.is_closing());
    h.run_until(2900 * MS);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ReplyTimeout { .. })
                },
                Event::ChannelClosed { .. },
                Event::Closed {
                    error: Error::ReplyTimeout { .. }
                },
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn any_bytes_from_the_peer_keep_it_alive() {
    let mut h = Harness::with_query("heartbeat=2");
    h.handshake(Tune {
        heartbeat: 2,
        ..Tune::default()
    });
    // A heartbeat frame cut in two counts as much as a whole one: the peer is alive.
    let hb = encode(&[Frame::Heartbeat]);
    let mut t = Duration::ZERO;
    for i in 0..30 {
        t += 3900 * MS;
        h.run_until(t);
        if i % 2 == 0 {
            h.send_raw(&hb[..3]);
        } else {
            h.send_raw(&hb[3..]);
        }
    }
    assert!(h.conn.is_connected(), "{:?}", h.events());
    h.run_until(t + secs(4) - MS);
    assert!(h.conn.is_connected());
    h.run_until(t + secs(4));
    assert!(matches!(h.closed_error(), Error::HeartbeatTimeout(d) if d == secs(4)));
}

#[test]
fn heartbeats_off_means_no_deadline() {
    let mut h = Harness::connected(Tune::default());
    assert_eq!(h.conn.poll_timeout(), None);
    assert!(h.run_until(secs(3600)).is_empty());
    assert!(h.conn.is_connected());
}

// ---------------------------------------------------------------- closes

#[test]
fn broker_connection_close_is_answered_with_close_ok() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.send(&[connection_close(
        320,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
    )]);
    assert!(matches!(
        &h.sent()[..],
        [Frame::Method(0, Method::ConnectionCloseOk(_))]
    ));
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ConnectionClosed { code: 320, .. })
                },
                Event::ChannelClosed {
                    channel: 1,
                    error: Error::ConnectionClosed { code: 320, .. }
                },
                Event::Closed {
                    error: Error::ConnectionClosed { code: 320, .. }
                },
            ]
        ),
        "{events:?}"
    );
    assert!(h.conn.is_closed());
    assert!(matches!(
        h.conn.channel_status(ch),
        Err(Error::ConnectionClosed { code: 320, .. })
    ));
    assert!(matches!(
        h.conn.open_channel(),
        Err(Error::ConnectionClosed { code: 320, .. })
    ));
    // Whatever comes after is ignored.
    h.send(&[method(1, declare_ok("q"))]);
    assert!(h.events().is_empty());
    assert!(h.sent().is_empty());
}

#[test]
fn client_close_ends_at_close_ok() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "c1", false);
    assert!(h.conn.close(200, "bye", by_client(), h.now));
    let sent = h.sent_methods();
    assert!(
        matches!(&sent[..], [(0, Method::ConnectionClose(c))] if c.reply_code == 200 && c.reply_text.as_bytes() == b"bye"),
        "{sent:?}"
    );
    assert!(h.conn.is_closing());
    assert!(!h.conn.close(200, "again", by_client(), h.now), "one close");
    assert!(h.conn.send_method(ch, declare("q").into()).is_err());
    // Spec 2.2.2.2: after connection.close, everything but close/close-ok is discarded.
    h.send(&delivery_frames(
        1,
        "c1",
        1,
        BasicProperties::default(),
        b"late",
        100,
    ));
    h.send(&[method(1, declare_ok("nobody asked"))]);
    assert!(h.events().is_empty());
    assert!(h.sent().is_empty());
    h.send(&[method(0, ConnectionCloseOk {})]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::ChannelClosed { channel: 1, .. },
                Event::Closed {
                    error: Error::ConnectionClosed { code: 200, .. }
                },
            ]
        ),
        "{events:?}"
    );
    assert_eq!(h.conn.poll_timeout(), None);
}

#[test]
fn client_close_without_close_ok_ends_at_close_timeout() {
    let mut h = Harness::connected(Tune::default());
    h.run_until(secs(1));
    h.conn.close(200, "bye", by_client(), h.now);
    assert_eq!(h.conn.poll_timeout(), Some(h.now + CLOSE_TIMEOUT));
    h.run_until(secs(1) + CLOSE_TIMEOUT - MS);
    assert!(h.conn.is_closing());
    h.run_until(secs(1) + CLOSE_TIMEOUT);
    assert!(matches!(
        h.closed_error(),
        Error::ConnectionClosed { code: 200, .. }
    ));
}

#[test]
fn crossing_connection_closes_the_brokers_reason_wins() {
    let mut h = Harness::connected(Tune::default());
    h.conn.close(200, "bye", by_client(), h.now);
    h.sent();
    // The broker's close crossed ours: answer it, and its reason is the connection's.
    h.send(&[connection_close(320, "CONNECTION_FORCED - shutdown")]);
    assert!(matches!(
        &h.sent()[..],
        [Frame::Method(0, Method::ConnectionCloseOk(_))]
    ));
    assert!(matches!(
        h.closed_error(),
        Error::ConnectionClosed { code: 320, .. }
    ));
}

#[test]
fn crossing_connection_closes_a_plain_200_keeps_ours() {
    let mut h = Harness::connected(Tune::default());
    let ours = Error::ConnectionLost("the application is leaving".into());
    h.conn.close(200, "bye", ours, h.now);
    h.sent();
    h.send(&[connection_close(200, "normal")]);
    assert!(matches!(
        &h.sent()[..],
        [Frame::Method(0, Method::ConnectionCloseOk(_))]
    ));
    assert!(matches!(h.closed_error(), Error::ConnectionLost(t) if t.contains("leaving")));
}

#[test]
fn broker_channel_close_fails_pending_calls_and_frees_the_number() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.send(&[channel_close(1, 404, "NOT_FOUND - no queue 'q'")]);
    assert_eq!(
        h.sent_methods(),
        vec![(1, Method::ChannelCloseOk(ChannelCloseOk {}))]
    );
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ChannelClosed {
                        code: 404,
                        class_id: 50,
                        method_id: 10,
                        ..
                    })
                },
                Event::ChannelClosed {
                    channel: 1,
                    error: Error::ChannelClosed { code: 404, .. }
                },
            ]
        ),
        "{events:?}"
    );
    assert!(matches!(
        h.conn.channel_status(ch),
        Err(Error::ChannelClosed { .. })
    ));
    assert!(h.conn.is_connected(), "a channel error is the channel's");
    assert_eq!(h.open_channel().number(), 1, "the number is free again");
}

#[test]
fn client_channel_close_answers_the_close_and_fails_earlier_calls() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.call(ch, ChannelClose::default());
    assert!(h.conn.channel_status(ch).is_err(), "closing: no new calls");
    // The declare's answer comes after our close went out: discarded with everything else but
    // close/close-ok (spec, channel.close).
    h.send(&[method(1, declare_ok("q"))]);
    h.send(&delivery_frames(
        1,
        "c1",
        1,
        BasicProperties::default(),
        b"x",
        10,
    ));
    assert!(h.events().is_empty());
    h.send(&[method(1, ChannelCloseOk {})]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ChannelClosed { code: 200, .. })
                },
                Event::Reply {
                    channel: 1,
                    result: Ok(Reply::Method(Method::ChannelCloseOk(_)))
                },
                Event::ChannelClosed { channel: 1, .. },
            ]
        ),
        "{events:?}"
    );
    assert!(h.sent().is_empty());
    assert_eq!(h.open_channel().number(), 1);
}

/// Our `channel.close` crosses the broker's: both sides answer each other's close, every call
/// learns the broker's reason once, and the number stays taken until the close-ok to our close
/// arrives (otherwise that close-ok would land on a free number and kill the connection, or on
/// the next channel given the number).
#[test]
fn crossing_channel_closes_keep_the_number_until_our_close_ok() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.call(ch, ChannelClose::default());
    h.send(&[channel_close(
        1,
        406,
        "PRECONDITION_FAILED - unknown delivery tag 7",
    )]);
    assert_eq!(
        h.sent_methods(),
        vec![(1, Method::ChannelCloseOk(ChannelCloseOk {}))],
        "the broker's close is answered"
    );
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ChannelClosed { code: 406, .. })
                },
                Event::Reply {
                    channel: 1,
                    result: Err(Error::ChannelClosed { code: 406, .. })
                },
                Event::ChannelClosed {
                    channel: 1,
                    error: Error::ChannelClosed { code: 406, .. }
                },
            ]
        ),
        "{events:?}"
    );
    // Still reserved: a new channel gets another number.
    let other = h.open_channel();
    assert_eq!(other.number(), 2);
    // The close-ok to our close: no violation, nothing to tell, the number is free.
    h.send(&[method(1, ChannelCloseOk {})]);
    assert!(h.events().is_empty());
    assert!(h.sent().is_empty(), "no connection.close");
    assert!(h.conn.is_connected());
    let again = h.open_channel();
    assert_eq!(again.number(), 1);
    assert_ne!(again, ch);
    assert!(h.conn.channel_status(ch).is_err());
}

/// After a crossing close the channel has had its last event; the connection ending later must
/// not report it closed a second time. (Before the fix `Connection::fail` failed the reserved
/// channel again: a second `ChannelClosed` for channel 1.)
#[test]
fn crossing_channel_close_then_connection_loss_reports_the_channel_once() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, ChannelClose::default());
    h.send(&[channel_close(1, 406, "PRECONDITION_FAILED")]);
    h.sent();
    let events = h.events();
    assert_eq!(events.len(), 2, "{events:?}");
    h.eof();
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [Event::Closed {
                error: Error::ConnectionLost(_)
            }]
        ),
        "{events:?}"
    );
}

/// A broker that sends a second channel.close after we answered the first of a crossing pair
/// (our close-ok to it still unanswered by its close-ok to ours): the channel has had its last
/// event and is not reported closed again; the second close is discarded like everything else
/// until our close-ok, which then frees the number. (Found by the `connection` fuzz target:
/// two `ChannelClosed` for channel 1; its input is `fuzz/regressions/connection/channel-closed-twice`.)
#[test]
fn a_second_broker_close_after_a_crossing_one_is_not_a_second_end() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, ChannelClose::default());
    h.send(&[channel_close(1, 406, "PRECONDITION_FAILED")]);
    assert_eq!(
        h.sent_methods(),
        vec![(1, Method::ChannelCloseOk(ChannelCloseOk {}))]
    );
    let events = h.events();
    assert_eq!(events.len(), 2, "{events:?}");
    h.send(&[channel_close(1, 406, "PRECONDITION_FAILED")]);
    assert!(h.events().is_empty(), "no second ChannelClosed");
    assert!(
        h.sent().is_empty(),
        "nothing answered: our close-ok went already"
    );
    assert!(h.conn.is_connected());
    h.send(&[method(1, ChannelCloseOk {})]);
    assert!(h.events().is_empty());
    assert!(h.conn.is_connected());
    assert_eq!(
        h.open_channel().number(),
        1,
        "the number is free after our close-ok"
    );
}

#[test]
fn frame_on_a_channel_after_its_close_is_504() {
    let mut h = Harness::connected(Tune::default());
    h.open_channel();
    h.send(&[channel_close(1, 404, "NOT_FOUND")]);
    h.sent();
    h.events();
    h.send(&[method(1, declare_ok("q"))]);
    let events = violation_closes_with(&mut h, 504);
    assert!(
        matches!(closed_error(&events), Error::Protocol(t) if t.contains("channel 1")),
        "{events:?}"
    );
}

// ---------------------------------------------------------------- blocked, flow

#[test]
fn blocked_and_unblocked_are_events() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.send(&[method(
        0,
        ConnectionBlocked {
            reason: "low on memory".into(),
        },
    )]);
    assert!(matches!(h.one_event(), Event::Blocked { reason } if reason == "low on memory"));
    assert_eq!(h.conn.blocked(), Some("low on memory"));
    // Publishing is still taken (it waits in the send buffer; the broker stops reading).
    h.conn
        .publish(ch, "", "q", false, false, &BasicProperties::default(), b"x")
        .unwrap();
    assert!(h.conn.has_transmit());
    h.send(&[method(0, ConnectionUnblocked {})]);
    assert!(matches!(h.one_event(), Event::Unblocked));
    assert_eq!(h.conn.blocked(), None);
    // An unblocked with nothing blocked tells nothing.
    h.send(&[method(0, ConnectionUnblocked {})]);
    assert!(h.events().is_empty());

    // Blocked when the connection ends: unblocked before Closed, so no waiter stays blocked.
    h.send(&[method(
        0,
        ConnectionBlocked {
            reason: "disk".into(),
        },
    )]);
    h.events();
    h.eof();
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::ChannelClosed { .. },
                Event::Unblocked,
                Event::Closed { .. }
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn channel_flow_is_answered() {
    let mut h = Harness::connected(Tune::default());
    h.open_channel();
    h.send(&[method(1, ChannelFlow { active: false })]);
    assert!(matches!(
        h.one_event(),
        Event::Flow {
            channel: 1,
            active: false
        }
    ));
    let sent = h.sent_methods();
    assert!(
        matches!(&sent[..], [(1, Method::ChannelFlowOk(ok))] if !ok.active),
        "{sent:?}"
    );
}

// ---------------------------------------------------------------- violations

#[test]
fn unexpected_method_on_a_channel_is_505_and_fails_every_call() {
    let mut h = Harness::connected(Tune::default());
    let ch1 = h.open_channel();
    let ch2 = h.open_channel();
    h.call(ch2, declare("q"));
    // A declare-ok nobody asked for, on channel 1.
    h.send(&[method(ch1.number(), declare_ok("q"))]);
    let events = violation_closes_with(&mut h, 505);
    assert!(
        matches!(&events[..], [
            Event::ChannelClosed { channel: 1, .. },
            Event::Reply { channel: 2, result: Err(Error::Protocol(t)) },
            Event::ChannelClosed { channel: 2, .. },
            Event::Closed { error: Error::Protocol(_) },
        ] if t.contains("queue.declare-ok")),
        "{events:?}"
    );
}

#[test]
fn a_reply_the_pending_call_does_not_allow_is_505() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.send(&[method(1, QueueBindOk {})]);
    let events = violation_closes_with(&mut h, 505);
    assert!(
        matches!(closed_error(&events), Error::Protocol(t) if t.contains("queue.bind-ok") && t.contains("queue.declare")),
        "{events:?}"
    );
}

#[test]
fn frame_on_a_channel_that_is_not_open_is_504() {
    let mut h = Harness::connected(Tune::default());
    h.send(&[method(7, ChannelOpenOk::default())]);
    let sent = h.sent_methods();
    assert!(
        matches!(&sent[..], [(0, Method::ConnectionClose(c))] if c.reply_code == 504 && c.reply_text.to_string_lossy().contains("channel 7")),
        "{sent:?}"
    );
    h.send(&[method(0, ConnectionCloseOk {})]);
    assert!(matches!(h.closed_error(), Error::Protocol(_)));
}

#[test]
fn delivery_to_an_unknown_consumer_tag_is_505() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "known", false);
    h.send(&delivery_frames(
        1,
        "stranger",
        1,
        BasicProperties::default(),
        b"x",
        10,
    ));
    let events = violation_closes_with(&mut h, 505);
    assert!(
        matches!(closed_error(&events), Error::Protocol(t) if t.contains("unknown consumer tag \"stranger\"")),
        "{events:?}"
    );
}

#[test]
fn ack_or_nack_outside_confirm_mode_is_505() {
    for m in [
        Method::from(BasicAck {
            delivery_tag: 1,
            multiple: false,
        }),
        Method::from(BasicNack {
            delivery_tag: 1,
            multiple: false,
            requeue: false,
        }),
    ] {
        let mut h = Harness::connected(Tune::default());
        h.open_channel();
        let name = m.info().method_name;
        h.send(&[Frame::Method(1, m)]);
        let events = violation_closes_with(&mut h, 505);
        assert!(
            matches!(closed_error(&events), Error::Protocol(t) if t.contains(&format!("basic.{name}")) && t.contains("confirm mode")),
            "{events:?}"
        );
    }
}

#[test]
fn content_on_channel_zero_is_505() {
    let mut h = Harness::connected(Tune::default());
    h.send(&[Frame::Header(
        0,
        ContentHeader::new(0, BasicProperties::default()),
    )]);
    let events = violation_closes_with(&mut h, 505);
    assert!(matches!(closed_error(&events), Error::Protocol(t) if t.contains("channel 0")));
}

#[test]
fn handshake_methods_after_the_handshake_are_505() {
    let mut h = Harness::connected(Tune::default());
    h.send(&[tune(2047, 131_072, 0)]);
    let events = violation_closes_with(&mut h, 505);
    assert!(matches!(closed_error(&events), Error::Protocol(t) if t.contains("connection.tune")));

    let mut h = Harness::connected(Tune::default());
    h.send_raw(&amqp_codec::PROTOCOL_HEADER);
    violation_closes_with(&mut h, 505);

    // A close-ok to a close nobody sent.
    let mut h = Harness::connected(Tune::default());
    h.send(&[method(0, ConnectionCloseOk {})]);
    violation_closes_with(&mut h, 505);
}

#[test]
fn garbage_bytes_are_a_501_frame_error() {
    let mut h = Harness::connected(Tune::default());
    h.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    let events = violation_closes_with(&mut h, 501);
    assert!(
        matches!(
            closed_error(&events),
            Error::Decode(DecodeError::UnknownFrameType { found: b'G' })
        ),
        "{events:?}"
    );
}

#[test]
fn wrong_frame_end_octet_is_501() {
    let mut h = Harness::connected(Tune::default());
    h.send_raw(&[8, 0, 0, 0, 0, 0, 0, 0xAB]);
    let events = violation_closes_with(&mut h, 501);
    assert!(
        matches!(
            closed_error(&events),
            Error::Decode(DecodeError::BadFrameEnd { found: 0xAB, .. })
        ),
        "{events:?}"
    );
}

#[test]
fn heartbeat_with_a_payload_is_501() {
    let mut h = Harness::connected(Tune::default());
    h.send_raw(&[8, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4, 0xCE]);
    let events = violation_closes_with(&mut h, 501);
    let e = closed_error(&events);
    assert!(
        matches!(
            e,
            Error::Decode(DecodeError::BadHeartbeat {
                channel: 0,
                size: 4
            })
        ),
        "{e}"
    );
}

#[test]
fn a_method_that_does_not_parse_is_502_and_an_unknown_one_540() {
    // connection.close with no arguments at all.
    let mut h = Harness::connected(Tune::default());
    h.send_raw(&[1, 0, 0, 0, 0, 0, 4, 0, 10, 0, 50, 0xCE]);
    let events = violation_closes_with(&mut h, 502);
    assert!(matches!(
        closed_error(&events),
        Error::Decode(DecodeError::Truncated { .. })
    ));

    let mut h = Harness::connected(Tune::default());
    h.send_raw(&[1, 0, 0, 0, 0, 0, 4, 0, 99, 0, 1, 0xCE]);
    violation_closes_with(&mut h, 540);
}

/// The declared size is checked from the 7-byte header alone, so an oversize frame is refused
/// before a byte of its payload is buffered; one that fits exactly passes.
#[test]
fn frame_larger_than_frame_max_is_refused_from_its_header() {
    let mut h = Harness::connected(Tune {
        frame_max: 4096,
        ..Tune::default()
    });
    let ch = h.open_channel();
    h.consume(ch, "q", "c", true);
    // A body frame of exactly 4096 bytes on the wire passes.
    let body = vec![7u8; 4096 - 8];
    h.send(&delivery_frames(
        1,
        "c",
        1,
        BasicProperties::default(),
        &body,
        body.len(),
    ));
    assert!(
        matches!(h.one_event(), Event::Delivery { delivery, .. } if delivery.body.len() == 4088)
    );
    // One byte more, announced by its header only: refused at once.
    let mut buf = frame_header(3, 1, 4089);
    h.conn.handle_input(&mut buf, h.now);
    assert!(buf.is_empty(), "the stream cannot resynchronise: dropped");
    let events = violation_closes_with(&mut h, 501);
    assert!(
        matches!(
            closed_error(&events),
            Error::Decode(DecodeError::FrameTooLarge {
                frame_max: 4096,
                frame_size: 4097,
                ..
            })
        ),
        "{events:?}"
    );
}

#[test]
fn eof_in_the_middle_of_a_frame() {
    let mut h = Harness::connected(Tune::default());
    // Half of a method frame, then the socket closes.
    h.send_raw(&[1, 0, 1, 0, 0, 0, 40, 0, 50, 0]);
    h.eof();
    let e = h.closed_error();
    assert!(
        matches!(&e, Error::ConnectionLost(t) if t.contains("middle of a frame") && t.contains("10 bytes")),
        "{e}"
    );
}

#[test]
fn eof_without_connection_close_is_a_lost_connection() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    h.eof();
    let events = h.events();
    assert!(
        matches!(&events[..], [
            Event::Reply { channel: 1, result: Err(Error::ConnectionLost(_)) },
            Event::ChannelClosed { channel: 1, .. },
            Event::Closed { error: Error::ConnectionLost(t) },
        ] if t.contains("without connection.close")),
        "{events:?}"
    );
}

#[test]
fn eof_while_closing_ends_with_the_close_reason() {
    let mut h = Harness::connected(Tune::default());
    h.send_raw(b"\xff");
    assert_eq!(h.expect_connection_close(), 501);
    h.eof();
    assert!(matches!(h.closed_error(), Error::Decode(_)));
}

#[test]
fn a_second_violation_while_closing_changes_nothing() {
    let mut h = Harness::connected(Tune::default());
    h.open_channel();
    h.send(&[method(1, QueueBindOk {})]);
    assert_eq!(h.expect_connection_close(), 505);
    h.send(&[method(9, QueueBindOk {})]);
    h.send_raw(b"garbage");
    assert!(h.sent().is_empty(), "one connection.close only");
    h.send(&[method(0, ConnectionCloseOk {})]);
    assert!(matches!(h.closed_error(), Error::Protocol(t) if t.contains("queue.bind-ok")));
}

// ---------------------------------------------------------------- content

#[test]
fn a_frame_of_another_channel_between_header_and_body_is_fine() {
    let mut h = Harness::connected(Tune::default());
    let ch1 = h.open_channel();
    let ch2 = h.open_channel();
    h.consume(ch1, "q1", "c1", true);
    h.consume(ch2, "q2", "c2", true);
    h.call(ch2, declare("q3"));
    let one = delivery_frames(1, "c1", 1, BasicProperties::default(), b"first", 3);
    let two = delivery_frames(2, "c2", 1, BasicProperties::default(), b"second", 100);
    // deliver(1), header(1), [deliver(2) header(2) body(2)], declare-ok(2), body(1) body(1).
    let mut frames = vec![one[0].clone(), one[1].clone()];
    frames.extend(two);
    frames.push(method(2, declare_ok("q3")));
    frames.extend(one[2..].iter().cloned());
    h.send(&frames);
    let events = h.events();
    assert!(
        matches!(&events[..], [
            Event::Delivery { channel: 2, delivery: d2 },
            Event::Reply { channel: 2, result: Ok(_) },
            Event::Delivery { channel: 1, delivery: d1 },
        ] if &d2.body[..] == b"second" && &d1.body[..] == b"first"),
        "{events:?}"
    );
    assert!(h.conn.is_connected());
}

#[test]
fn a_method_on_the_same_channel_in_the_middle_of_content_is_505() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "c", true);
    h.call(ch, declare("q2"));
    let d = delivery_frames(1, "c", 1, BasicProperties::default(), b"body", 100);
    h.send(&[d[0].clone(), d[1].clone(), method(1, declare_ok("q2"))]);
    let events = violation_closes_with(&mut h, 505);
    assert!(
        matches!(
            closed_error(&events),
            Error::Decode(DecodeError::UnexpectedFrame { channel: 1, .. })
        ),
        "{events:?}"
    );
}

#[test]
fn a_body_over_many_frames_is_reassembled_in_any_reads() {
    let mut h = Harness::connected(Tune {
        frame_max: 4096,
        ..Tune::default()
    });
    let ch = h.open_channel();
    h.consume(ch, "q", "c", false);
    let body: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let props = BasicProperties::default().with_correlation_id("abc");
    let wire = encode(&delivery_frames(1, "c", 42, props.clone(), &body, 4088));
    // Fed 1000 bytes per read: frames split anywhere.
    for chunk in wire.chunks(1000) {
        h.send_raw(chunk);
    }
    let Event::Delivery {
        channel: 1,
        delivery,
    } = h.one_event()
    else {
        panic!()
    };
    assert_eq!(delivery.delivery_tag, 42);
    assert_eq!(&delivery.body[..], &body[..]);
    assert_eq!(delivery.properties, props);
    assert_eq!(delivery.consumer_tag.as_bytes(), b"c");
}

#[test]
fn an_empty_body_completes_at_the_header_and_too_much_body_is_505() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "c", true);
    h.send(&delivery_frames(
        1,
        "c",
        1,
        BasicProperties::default(),
        b"",
        10,
    ));
    assert!(matches!(h.one_event(), Event::Delivery { delivery, .. } if delivery.body.is_empty()));

    // The header says 3 bytes; a body frame of 4 arrives.
    let mut frames = delivery_frames(1, "c", 2, BasicProperties::default(), b"abc", 10);
    frames[2] = Frame::Body(1, bytes::Bytes::from_static(b"abcd"));
    h.send(&frames);
    let events = violation_closes_with(&mut h, 505);
    assert!(matches!(
        closed_error(&events),
        Error::Decode(DecodeError::UnexpectedFrame { .. })
    ));
}

// ---------------------------------------------------------------- confirms, get, consumers

#[test]
fn confirms_with_multiple() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    let props = BasicProperties::default();
    assert_eq!(
        h.conn
            .publish(ch, "", "q", false, false, &props, b"before")
            .unwrap(),
        None,
        "no sequence numbers outside confirm mode"
    );
    h.sent();
    h.call(ch, ConfirmSelect { nowait: false });
    assert!(h.conn.is_confirm_mode(ch), "from the select on");
    // Publishes before select-ok are already numbered (the broker counts from the select).
    let seqs: Vec<_> = (0..5)
        .map(|_| {
            h.conn
                .publish(ch, "", "q", false, false, &props, b"m")
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![Some(1), Some(2), Some(3), Some(4), Some(5)]);
    h.send(&[
        method(1, ConfirmSelectOk {}),
        method(
            1,
            BasicAck {
                delivery_tag: 3,
                multiple: true,
            },
        ),
        method(
            1,
            BasicNack {
                delivery_tag: 4,
                multiple: false,
                requeue: false,
            },
        ),
        method(
            1,
            BasicAck {
                delivery_tag: 5,
                multiple: false,
            },
        ),
    ]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::Reply {
                    channel: 1,
                    result: Ok(Reply::Method(Method::ConfirmSelectOk(_)))
                },
                Event::Confirm {
                    channel: 1,
                    delivery_tag: 3,
                    multiple: true,
                    verdict: Confirm::Ack
                },
                Event::Confirm {
                    channel: 1,
                    delivery_tag: 4,
                    multiple: false,
                    verdict: Confirm::Nack
                },
                Event::Confirm {
                    channel: 1,
                    delivery_tag: 5,
                    multiple: false,
                    verdict: Confirm::Ack
                },
            ]
        ),
        "{events:?}"
    );
    assert!(h.conn.is_connected());
}

#[test]
fn basic_get_ok_and_get_empty() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.call(
        ch,
        BasicGet {
            queue: "q".into(),
            no_ack: false,
            ..Default::default()
        },
    );
    h.call(
        ch,
        BasicGet {
            queue: "q".into(),
            no_ack: false,
            ..Default::default()
        },
    );
    h.send(&[
        method(
            1,
            BasicGetOk {
                delivery_tag: 9,
                redelivered: true,
                exchange: "".into(),
                routing_key: "q".into(),
                message_count: 3,
            },
        ),
        Frame::Header(1, ContentHeader::new(5, BasicProperties::default())),
        Frame::Body(1, bytes::Bytes::from_static(b"hello")),
        method(1, BasicGetEmpty::default()),
    ]);
    let events = h.events();
    assert!(
        matches!(&events[..], [
            Event::Reply { channel: 1, result: Ok(Reply::Get(Some(got))) },
            Event::Reply { channel: 1, result: Ok(Reply::Get(None)) },
        ] if got.message_count == 3 && got.delivery.delivery_tag == 9 && got.delivery.redelivered && &got.delivery.body[..] == b"hello"),
        "{events:?}"
    );
}

#[test]
fn get_ok_nobody_asked_for_is_505() {
    let mut h = Harness::connected(Tune::default());
    h.open_channel();
    h.send(&[
        method(1, BasicGetOk::default()),
        Frame::Header(1, ContentHeader::new(0, BasicProperties::default())),
    ]);
    let events = violation_closes_with(&mut h, 505);
    assert!(matches!(closed_error(&events), Error::Protocol(t) if t.contains("basic.get-ok")));
}

#[test]
fn consumer_cancelled_by_the_broker() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "c", false);
    // The queue was deleted (consumer_cancel_notify): no cancel-ok is expected.
    h.send(&[method(
        1,
        BasicCancel {
            consumer_tag: "c".into(),
            nowait: true,
        },
    )]);
    assert!(matches!(
        h.one_event(),
        Event::ConsumerEnded { channel: 1, consumer_tag, reason: Error::ConsumerCancelled(_) } if consumer_tag.as_bytes() == b"c"
    ));
    assert!(h.sent().is_empty());
    assert!(!h.conn.has_consumer(ch, b"c"));
    // A delivery for it now names an unknown consumer.
    h.send(&delivery_frames(
        1,
        "c",
        1,
        BasicProperties::default(),
        b"x",
        10,
    ));
    violation_closes_with(&mut h, 505);
}

#[test]
fn cancel_ok_ends_the_consumer() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "c", false);
    h.call(
        ch,
        BasicCancel {
            consumer_tag: "c".into(),
            nowait: false,
        },
    );
    // Deliveries sent before the broker saw the cancel still arrive, and still count.
    h.send(&delivery_frames(
        1,
        "c",
        1,
        BasicProperties::default(),
        b"x",
        10,
    ));
    assert!(matches!(h.one_event(), Event::Delivery { .. }));
    h.send(&[method(
        1,
        BasicCancelOk {
            consumer_tag: "c".into(),
        },
    )]);
    let events = h.events();
    assert!(
        matches!(
            &events[..],
            [
                Event::ConsumerEnded { channel: 1, .. },
                Event::Reply {
                    channel: 1,
                    result: Ok(Reply::Method(Method::BasicCancelOk(_)))
                },
            ]
        ),
        "{events:?}"
    );
    assert!(!h.conn.has_consumer(ch, b"c"));
}

/// A consumer cancelled with `nowait` is over at once here; deliveries the broker had already
/// sent are given back (`basic.reject` with requeue) for an acking consumer, and dropped for a
/// no-ack one (the broker forgot them already).
#[test]
fn nowait_cancel_requeues_deliveries_already_on_their_way() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    h.consume(ch, "q", "acking", false);
    h.consume(ch, "q2", "auto", true);
    for tag in ["acking", "auto"] {
        let sent = h.conn.send_method(
            ch,
            BasicCancel {
                consumer_tag: tag.into(),
                nowait: true,
            }
            .into(),
        );
        assert!(matches!(sent, Ok(Sent::NoReply)), "{sent:?}");
        assert!(!h.conn.has_consumer(ch, tag.as_bytes()));
    }
    h.sent();
    let mut frames = delivery_frames(1, "acking", 7, BasicProperties::default(), b"a", 10);
    frames.extend(delivery_frames(
        1,
        "auto",
        8,
        BasicProperties::default(),
        b"b",
        10,
    ));
    frames.extend(delivery_frames(
        1,
        "acking",
        9,
        BasicProperties::default(),
        b"c",
        10,
    ));
    h.send(&frames);
    assert!(
        h.events().is_empty(),
        "no delivery reaches a cancelled consumer"
    );
    assert_eq!(
        h.sent_methods(),
        vec![
            (
                1,
                Method::BasicReject(BasicReject {
                    delivery_tag: 7,
                    requeue: true
                })
            ),
            (
                1,
                Method::BasicReject(BasicReject {
                    delivery_tag: 9,
                    requeue: true
                })
            ),
        ]
    );
    assert!(h.conn.is_connected());
}

#[test]
fn returned_messages_are_events() {
    let mut h = Harness::connected(Tune::default());
    h.open_channel();
    h.send(&[
        method(
            1,
            BasicReturn {
                reply_code: 312,
                reply_text: "NO_ROUTE".into(),
                exchange: "".into(),
                routing_key: "nowhere".into(),
            },
        ),
        Frame::Header(
            1,
            ContentHeader::new(2, BasicProperties::default().with_correlation_id("x")),
        ),
        Frame::Body(1, bytes::Bytes::from_static(b"hi")),
    ]);
    assert!(matches!(
        h.one_event(),
        Event::Returned { channel: 1, returned } if returned.reply_code == 312 && &returned.body[..] == b"hi" && returned.routing_key.as_bytes() == b"nowhere"
    ));
}

// ---------------------------------------------------------------- reply deadlines

#[test]
fn a_call_with_no_reply_closes_the_connection_at_its_deadline() {
    let mut h = Harness::connected(Tune::default());
    h.conn.set_reply_timeout(secs(5));
    let ch = h.open_channel();
    h.call(ch, declare("q"));
    assert_eq!(h.conn.poll_timeout(), Some(h.t0 + secs(5)));
    assert!(h.run_until(secs(5) - MS).is_empty());
    let sent = h.run_until(secs(5));
    assert!(
        matches!(&sent[..], [Frame::Method(0, Method::ConnectionClose(c))] if c.reply_text.to_string_lossy().contains("queue.declare")),
        "{sent:?}"
    );
    assert!(h.events().is_empty(), "ended at close-ok");
    h.send(&[method(0, ConnectionCloseOk {})]);
    let events = h.events();
    assert!(
        matches!(&events[..], [
            Event::Reply { channel: 1, result: Err(Error::ReplyTimeout { channel: 1, method, timeout }) },
            Event::ChannelClosed { .. },
            Event::Closed { error: Error::ReplyTimeout { .. } },
        ] if method == "queue.declare" && *timeout == secs(5)),
        "{events:?}"
    );
}

#[test]
fn the_reply_deadline_starts_when_the_call_is_handed_out() {
    let mut h = Harness::connected(Tune::default());
    h.conn.set_reply_timeout(secs(5));
    let ch = h.open_channel();
    h.conn.send_method(ch, declare("q").into()).unwrap();
    // The driver could not write for 10 s (a full socket): no deadline runs meanwhile.
    assert_eq!(h.conn.poll_timeout(), None);
    h.advance(secs(10));
    h.conn.handle_timeout(h.now);
    assert!(h.conn.is_connected());
    h.sent();
    assert_eq!(h.conn.poll_timeout(), Some(h.t0 + secs(15)));
    h.run_until(secs(15) - MS);
    assert!(!h.conn.is_closing());
    h.run_until(secs(15));
    assert!(h.conn.is_closing());
}

#[test]
fn each_call_keeps_its_own_deadline_and_answered_ones_none() {
    let mut h = Harness::connected(Tune::default());
    h.conn.set_reply_timeout(secs(5));
    let ch1 = h.open_channel();
    let ch2 = h.open_channel();
    h.call(ch1, declare("a"));
    h.run_until(secs(3));
    h.call(ch2, declare("b"));
    h.run_until(secs(4));
    h.send(&[method(1, declare_ok("a"))]);
    h.expect_reply(1);
    // Call b went out at 3 s: its deadline is 8 s, not a's 5 s.
    assert_eq!(h.conn.poll_timeout(), Some(h.t0 + secs(8)));
    h.run_until(secs(7));
    h.send(&[method(2, declare_ok("b"))]);
    h.expect_reply(2);
    assert_eq!(h.conn.poll_timeout(), None);
    h.run_until(secs(60));
    assert!(h.conn.is_connected());
}

// ---------------------------------------------------------------- channel handles and commands

#[test]
fn a_stale_channel_id_is_refused_after_its_number_is_reused() {
    let mut h = Harness::connected(Tune::default());
    let old = h.open_channel();
    h.call(old, ChannelClose::default());
    h.send(&[method(1, ChannelCloseOk {})]);
    h.events();
    let new = h.open_channel();
    assert_eq!((old.number(), new.number()), (1, 1));
    assert_ne!(old, new);
    assert!(matches!(
        h.conn.send_method(old, declare("q").into()),
        Err(Error::ChannelClosed { .. })
    ));
    assert!(h
        .conn
        .publish(
            old,
            "",
            "q",
            false,
            false,
            &BasicProperties::default(),
            b"x"
        )
        .is_err());
    assert!(h.sent().is_empty(), "nothing reached the new channel 1");
    assert!(h.conn.channel_status(new).is_ok());
}

#[test]
fn channels_run_out_at_channel_max() {
    let mut h = Harness::connected(Tune {
        channel_max: 2,
        ..Tune::default()
    });
    h.open_channel();
    h.open_channel();
    assert!(matches!(
        h.conn.open_channel(),
        Err(Error::ChannelsExhausted(2))
    ));
}

#[test]
fn commands_that_are_not_the_callers_are_refused() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    assert!(matches!(
        h.conn
            .send_method(ch, amqp_codec::BasicPublish::default().into()),
        Err(Error::Protocol(t)) if t.contains("publish")
    ));
    assert!(matches!(
        h.conn.send_method(ch, ConnectionCloseOk {}.into()),
        Err(Error::Protocol(t)) if t.contains("connection's own")
    ));
    assert!(h.sent().is_empty());

    let mut h = Harness::new(ConnectionConfig::default());
    assert!(matches!(
        h.conn.open_channel(),
        Err(Error::Protocol(t)) if t.contains("not open yet")
    ));
}

/// A `channel.close` that cannot be encoded (a reply text over 255 bytes) is the caller's error
/// and must leave the channel as it was. Before the fix the channel was marked closing before
/// the encode failed: nothing was sent, and the channel refused every call and kept its number
/// for the rest of the connection.
#[test]
fn a_method_that_cannot_be_encoded_changes_nothing() {
    let mut h = Harness::connected(Tune::default());
    let ch = h.open_channel();
    let close = ChannelClose {
        reply_code: 200,
        reply_text: "x".repeat(300).into(),
        class_id: 0,
        method_id: 0,
    };
    assert!(matches!(
        h.conn.send_method(ch, close.into()),
        Err(Error::Encode(_))
    ));
    assert!(h.sent().is_empty());
    assert!(
        h.conn.channel_status(ch).is_ok(),
        "the channel is untouched"
    );
    assert_eq!(
        h.conn.poll_timeout(),
        None,
        "no deadline for a call never sent"
    );
    h.call(ch, declare("q"));
    h.send(&[method(1, declare_ok("q"))]);
    h.expect_reply(1);
}
