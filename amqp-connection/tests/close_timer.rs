//! After a reply deadline closes the connection, the next timer is the close's, not the passed
//! reply deadline: a driver that sleeps until `poll_timeout` must not spin while the broker takes
//! its time to answer the close (found by the blocking shell, whose reads are bounded by it).

use std::time::{Duration, Instant};

use amqp_codec::{
    ChannelOpenOk, ConnectionOpenOk, ConnectionStart, ConnectionTune, FieldTable, Frame,
    QueueDeclare,
};
use amqp_connection::{Connection, ConnectionConfig, Event, CLOSE_TIMEOUT, DEFAULT_REPLY_TIMEOUT};
use bytes::BytesMut;

fn broker(frames: Vec<Frame>) -> BytesMut {
    let mut b = BytesMut::new();
    for f in frames {
        f.encode(&mut b).unwrap();
    }
    b
}

#[test]
fn a_passed_reply_deadline_is_not_a_timer_while_closing() {
    let t0 = Instant::now();
    let config = ConnectionConfig {
        heartbeat: 0,
        ..ConnectionConfig::default()
    };
    let mut conn = Connection::new(config, t0);
    let mut wire = BytesMut::new();
    conn.poll_transmit(t0, &mut wire);
    let start = ConnectionStart {
        version_major: 0,
        version_minor: 9,
        server_properties: FieldTable::new(),
        mechanisms: "PLAIN".into(),
        locales: "en_US".into(),
    };
    // Heartbeats off: the only timers are the reply's and the close's.
    let tune = ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 0,
    };
    conn.handle_input(
        &mut broker(vec![
            Frame::Method(0, start.into()),
            Frame::Method(0, tune.into()),
            Frame::Method(0, ConnectionOpenOk::default().into()),
        ]),
        t0,
    );
    assert!(matches!(conn.poll_event(), Some(Event::Connected)));
    let ch = conn.open_channel().unwrap();
    conn.handle_input(
        &mut broker(vec![Frame::Method(
            ch.number(),
            ChannelOpenOk::default().into(),
        )]),
        t0,
    );
    conn.send_method(ch, QueueDeclare::default().into())
        .unwrap();
    wire.clear();
    conn.poll_transmit(t0, &mut wire);
    let overdue = t0 + DEFAULT_REPLY_TIMEOUT;
    assert_eq!(conn.poll_timeout(), Some(overdue));

    conn.handle_timeout(overdue);
    assert!(conn.is_closing());
    // The close waits for close-ok until its own deadline; nothing earlier is due.
    assert_eq!(conn.poll_timeout(), Some(overdue + CLOSE_TIMEOUT));
    let later = overdue + Duration::from_millis(1);
    conn.handle_timeout(later);
    assert!(conn.is_closing());
    assert_eq!(conn.poll_timeout(), Some(overdue + CLOSE_TIMEOUT));
}
