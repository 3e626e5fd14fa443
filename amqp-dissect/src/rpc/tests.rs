//! The pairing's rules on scripted frames: each case builds the events a dissection would give and
//! checks the calls and problems that come out (the real captures are in `tests/decode_rpc.rs`).

use std::rc::Rc;

use amqp_codec::method::{
    BasicAck, BasicConsume, BasicConsumeOk, BasicDeliver, BasicGet, BasicGetOk, BasicNack,
    BasicPublish, ChannelClose, ConnectionClose, ConnectionTuneOk,
};
use amqp_codec::{BasicProperties, ContentHeader, FieldTable, Frame, Method};
use bytes::Bytes;

use super::*;
use crate::{Endpoints, Event, Side, What};

/// A script of events: streams numbered by the test, packets and times counted up.
struct Script {
    pairing: Pairing,
    reports: Vec<Report>,
    packet: u64,
    time: f64,
}

const CLIENT: u32 = 0;
const SERVER: u32 = 1;

impl Script {
    fn new(limits: Limits) -> Self {
        Script {
            pairing: Pairing::new(limits),
            reports: Vec::new(),
            packet: 0,
            time: 1_000.0,
        }
    }

    fn at(&mut self, time: f64) -> &mut Self {
        self.time = time;
        self
    }

    fn frame(&mut self, stream: u32, side: Side, frame: Frame) -> &mut Self {
        self.packet += 1;
        self.time += 0.001;
        let event = Event {
            packet: self.packet,
            time: Some(self.time),
            stream,
            side,
            offset: 0,
            endpoints: Rc::new(Endpoints {
                client: format!("10.0.0.{stream}:4000{stream}"),
                broker: "10.0.0.9:5672".into(),
            }),
            what: What::Frame { frame, length: 0 },
        };
        let reports = &mut self.reports;
        self.pairing.event(&event, &mut |r| reports.push(r));
        self
    }

    fn method(&mut self, stream: u32, side: Side, method: impl Into<Method>) -> &mut Self {
        self.frame(stream, side, Frame::Method(1, method.into()))
    }

    fn content(
        &mut self,
        stream: u32,
        side: Side,
        props: BasicProperties,
        body: &[u8],
    ) -> &mut Self {
        let header = ContentHeader {
            class_id: 60,
            weight: 0,
            body_size: body.len() as u64,
            properties: props,
        };
        self.frame(stream, side, Frame::Header(1, header));
        if !body.is_empty() {
            self.frame(stream, side, Frame::Body(1, Bytes::copy_from_slice(body)));
        }
        self
    }

    /// The client's request: publish to `queue` with a correlation id and reply-to.
    fn request(&mut self, stream: u32, queue: &str, corr: &[u8], reply_to: &str) -> &mut Self {
        self.method(stream, Side::Client, publish(queue));
        let props = BasicProperties {
            correlation_id: Some(corr.into()),
            reply_to: Some(reply_to.into()),
            ..Default::default()
        };
        self.content(stream, Side::Client, props, b"30")
    }

    fn deliver(&mut self, stream: u32, tag: u64, rk: &str, props: BasicProperties) -> &mut Self {
        self.method(
            stream,
            Side::Broker,
            BasicDeliver {
                consumer_tag: "ctag".into(),
                delivery_tag: tag,
                redelivered: false,
                exchange: "".into(),
                routing_key: rk.into(),
            },
        );
        self.content(stream, Side::Broker, props, b"body")
    }

    fn redeliver(&mut self, stream: u32, tag: u64, rk: &str, props: BasicProperties) -> &mut Self {
        self.method(
            stream,
            Side::Broker,
            BasicDeliver {
                consumer_tag: "ctag".into(),
                delivery_tag: tag,
                redelivered: true,
                exchange: "".into(),
                routing_key: rk.into(),
            },
        );
        self.content(stream, Side::Broker, props, b"body")
    }

    /// The server's reply to `reply_to`.
    fn reply(&mut self, stream: u32, reply_to: &str, corr: &[u8]) -> &mut Self {
        self.method(stream, Side::Client, publish(reply_to));
        self.content(stream, Side::Client, reply_props(corr), b"832040")
    }

    /// A consumer (with acks unless `no_ack`) on `stream`, tag `ctag`.
    fn consumer(&mut self, stream: u32, no_ack: bool) -> &mut Self {
        self.method(
            stream,
            Side::Client,
            BasicConsume {
                queue: "q".into(),
                consumer_tag: "".into(),
                no_ack,
                ..Default::default()
            },
        );
        self.method(
            stream,
            Side::Broker,
            BasicConsumeOk {
                consumer_tag: "ctag".into(),
            },
        )
    }

    fn ack(&mut self, stream: u32, tag: u64, multiple: bool) -> &mut Self {
        self.method(
            stream,
            Side::Client,
            BasicAck {
                delivery_tag: tag,
                multiple,
            },
        )
    }

    fn finish(&mut self) -> &mut Self {
        let reports = &mut self.reports;
        self.pairing.finish(&mut |r| reports.push(r));
        self
    }

    fn calls(&self) -> Vec<&Call> {
        self.reports
            .iter()
            .filter_map(|r| match r {
                Report::Call(c) => Some(c),
                Report::Problem(_) => None,
            })
            .collect()
    }

    fn problems(&self) -> Vec<&Problem> {
        self.reports
            .iter()
            .filter_map(|r| match r {
                Report::Problem(p) => Some(p),
                Report::Call(_) => None,
            })
            .collect()
    }
}

fn publish(routing_key: &str) -> BasicPublish {
    BasicPublish {
        routing_key: routing_key.into(),
        ..Default::default()
    }
}

fn request_props(corr: &[u8], reply_to: &str) -> BasicProperties {
    BasicProperties {
        correlation_id: Some(corr.into()),
        reply_to: Some(reply_to.into()),
        ..Default::default()
    }
}

fn reply_props(corr: &[u8]) -> BasicProperties {
    BasicProperties {
        correlation_id: Some(corr.into()),
        ..Default::default()
    }
}

/// The usual call: request, delivery to a server with acks, reply, reply delivered, ack.
fn round_trip(s: &mut Script, corr: &[u8], tag: u64) {
    s.request(CLIENT, "rpc", corr, "amq.gen-1")
        .deliver(SERVER, tag, "rpc", request_props(corr, "amq.gen-1"))
        .reply(SERVER, "amq.gen-1", corr)
        .deliver(CLIENT, tag, "amq.gen-1", reply_props(corr));
}

#[test]
fn a_call_finishes_at_its_ack_with_every_leg_and_its_latency() {
    let mut s = Script::new(Limits::default());
    s.consumer(SERVER, false);
    round_trip(&mut s, b"c1", 1);
    assert!(s.calls().is_empty(), "not finished before the ack");
    s.ack(SERVER, 1, false);
    let calls = s.calls();
    assert_eq!(calls.len(), 1, "finished at the ack, before the end");
    let c = calls[0];
    assert_eq!(c.outcome(), CallOutcome::Answered);
    assert_eq!(c.correlation_id.as_deref(), Some(&b"c1"[..]));
    assert_eq!(c.queue.as_deref(), Some(&b"rpc"[..]));
    assert_eq!(c.request_body.as_ref(), b"30");
    assert_eq!(c.reply_body.as_ref(), b"832040");
    let (request, delivery, reply, back, ack) = (
        c.request.as_ref().unwrap(),
        c.delivery.as_ref().unwrap(),
        c.reply.as_ref().unwrap(),
        c.reply_delivery.as_ref().unwrap(),
        c.ack.as_ref().unwrap(),
    );
    assert_eq!(
        (request.stream, delivery.stream, reply.stream, back.stream),
        (0, 1, 1, 0)
    );
    assert_eq!(
        (delivery.delivery_tag, ack.delivery_tag),
        (Some(1), Some(1))
    );
    assert!(request.packet < delivery.packet && delivery.packet < reply.packet);
    let l = c.latency();
    let total = back.time.unwrap() - request.time.unwrap();
    assert!((l.total.unwrap() - total).abs() < 1e-9);
    let sum = l.to_server.unwrap() + l.server.unwrap() + l.to_client.unwrap();
    assert!((sum - total).abs() < 1e-9);
    assert_eq!(c.client(), Some("10.0.0.0:40000"));
    assert_eq!(c.server(), Some("10.0.0.1:40001"));
}

#[test]
fn a_multiple_ack_gives_each_call_its_ack() {
    let mut s = Script::new(Limits::default());
    s.consumer(SERVER, false);
    for (i, corr) in [b"a", b"b", b"c"].iter().enumerate() {
        round_trip(&mut s, *corr, i as u64 + 1);
    }
    s.ack(SERVER, 3, true);
    let calls = s.calls();
    assert_eq!(calls.len(), 3);
    for (i, c) in calls.iter().enumerate() {
        assert_eq!(c.number, i as u64 + 1);
        let ack = c.ack.as_ref().unwrap();
        assert_eq!(ack.delivery_tag, Some(i as u64 + 1));
        assert_eq!(
            ack.packet,
            calls[0].ack.as_ref().unwrap().packet,
            "one ack frame"
        );
    }
}

#[test]
fn a_server_dying_after_its_reply_makes_a_duplicate_counted_on_the_call() {
    let mut s = Script::new(Limits::default());
    let server2 = 2;
    s.consumer(SERVER, false).consumer(server2, false);
    round_trip(&mut s, b"dup", 1);
    // Server 1 dies before its ack: the request comes back to server 2, which answers again.
    s.pairing.event(
        &Event {
            packet: 100,
            time: Some(2_000.0),
            stream: SERVER,
            side: Side::Client,
            offset: 0,
            endpoints: Rc::new(Endpoints {
                client: "s1".into(),
                broker: "b".into(),
            }),
            what: What::Closed { reset: true },
        },
        &mut |r| s.reports.push(r),
    );
    assert!(
        s.calls().is_empty(),
        "the request is back in its queue: not finished"
    );
    s.redeliver(server2, 1, "rpc", request_props(b"dup", "amq.gen-1"))
        .reply(server2, "amq.gen-1", b"dup")
        .deliver(CLIENT, 2, "amq.gen-1", reply_props(b"dup"))
        .ack(server2, 1, false);
    let calls = s.calls();
    assert_eq!(calls.len(), 1);
    let c = calls[0];
    assert_eq!((c.duplicates, c.deliveries), (1, 2));
    assert_eq!(
        c.delivery.as_ref().unwrap().stream,
        SERVER,
        "the server that answered first"
    );
    assert!(c.ack.is_none(), "that delivery was never acked");
    let problems = s.problems();
    assert!(problems.iter().any(|p| matches!(
        p,
        Problem::Unacked {
            call: Some(1),
            why: Unacked::ConnectionLost,
            ..
        }
    )));
    assert!(problems
        .iter()
        .any(|p| matches!(p, Problem::Redelivered { call: Some(1), .. })));
}

#[test]
fn rejects_and_nacks_are_reported_with_their_requeue_flag() {
    let mut s = Script::new(Limits::default());
    s.consumer(SERVER, false);
    s.request(CLIENT, "rpc", b"r", "amq.gen-1")
        .deliver(SERVER, 7, "rpc", request_props(b"r", "amq.gen-1"))
        .method(
            SERVER,
            Side::Client,
            BasicNack {
                delivery_tag: 7,
                multiple: false,
                requeue: false,
            },
        )
        .finish();
    let problems = s.problems();
    assert!(matches!(
        problems.as_slice(),
        [Problem::Rejected { call: Some(1), method: "nack", requeue: false, by, .. }]
            if by.delivery_tag == Some(7)
    ));
    assert_eq!(s.calls()[0].outcome(), CallOutcome::NoReply);
}

#[test]
fn heartbeat_gaps_longer_than_the_interval_are_reported_until_close() {
    let mut s = Script::new(Limits::default());
    s.method(
        CLIENT,
        Side::Client,
        ConnectionTuneOk {
            channel_max: 0,
            frame_max: 131_072,
            heartbeat: 1,
        },
    );
    s.at(10.0).frame(CLIENT, Side::Client, Frame::Heartbeat);
    s.at(10.5).frame(CLIENT, Side::Client, Frame::Heartbeat);
    s.at(12.0).frame(CLIENT, Side::Client, Frame::Heartbeat);
    s.at(12.1).frame(CLIENT, Side::Broker, Frame::Heartbeat);
    let gaps: Vec<_> = s
        .problems()
        .into_iter()
        .filter_map(|p| match p {
            Problem::HeartbeatGap {
                side,
                gap,
                interval,
                ..
            } => Some((*side, *gap, *interval)),
            _ => None,
        })
        .collect();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].0, Side::Client);
    assert!((gaps[0].1 - 1.5).abs() < 0.01 && gaps[0].2 == 1);
    s.frame(
        CLIENT,
        Side::Client,
        Frame::Method(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            }
            .into(),
        ),
    );
    s.at(20.0).frame(CLIENT, Side::Client, Frame::Heartbeat);
    let gaps = s
        .problems()
        .iter()
        .filter(|p| matches!(p, Problem::HeartbeatGap { .. }))
        .count();
    assert_eq!(gaps, 1, "silence after connection.close is expected");
}

#[test]
fn past_the_bound_the_oldest_call_is_evicted_and_its_reply_is_late() {
    let limits = Limits {
        max_pending: 2,
        ..Limits::default()
    };
    let mut s = Script::new(limits);
    for corr in [b"1", b"2", b"3"] {
        s.request(CLIENT, "rpc", corr, "amq.gen-1");
    }
    assert_eq!(s.pairing.kept(), 2);
    let calls = s.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].evicted && calls[0].number == 1);
    assert_eq!(calls[0].outcome(), CallOutcome::NoReply);
    s.reply(SERVER, "amq.gen-1", b"1");
    assert!(s
        .problems()
        .iter()
        .any(|p| matches!(p, Problem::LateReply { call: 1, .. })));
    s.finish();
    let numbers: Vec<u64> = s.calls().iter().map(|c| c.number).collect();
    assert_eq!(numbers, [1, 2, 3], "no orphan was made of the late reply");
}

#[test]
fn memory_stays_bounded_by_the_pending_calls() {
    let limits = Limits {
        max_pending: 100,
        ..Limits::default()
    };
    let mut s = Script::new(limits);
    s.consumer(SERVER, true);
    for i in 0..5_000u32 {
        let corr = i.to_be_bytes();
        s.request(CLIENT, "rpc", &corr, "amq.gen-1");
        if i % 2 == 0 {
            // Half are answered; the other half never are, and must not pile up.
            s.deliver(
                SERVER,
                u64::from(i) + 1,
                "rpc",
                request_props(&corr, "amq.gen-1"),
            )
            .reply(SERVER, "amq.gen-1", &corr)
            .deliver(CLIENT, u64::from(i) + 1, "amq.gen-1", reply_props(&corr));
        }
        assert!(s.pairing.kept() <= 100);
        s.reports.clear();
    }
}

#[test]
fn a_reply_with_no_request_in_the_capture_is_an_orphan() {
    let mut s = Script::new(Limits::default());
    s.reply(SERVER, "amq.gen-x", b"lost")
        .deliver(CLIENT, 1, "amq.gen-x", reply_props(b"lost"))
        .finish();
    let calls = s.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outcome(), CallOutcome::OrphanReply);
    assert!(calls[0].request.is_none() && calls[0].reply_delivery.is_some());
    // A publish with neither correlation id nor reply-to is no RPC at all.
    let mut s = Script::new(Limits::default());
    s.method(CLIENT, Side::Client, publish("logs"))
        .content(CLIENT, Side::Client, BasicProperties::default(), b"x")
        .finish();
    assert!(s.reports.is_empty());
}

#[test]
fn unordered_calls_come_out_as_they_finish_ordered_ones_in_request_order() {
    for ordered in [true, false] {
        let mut s = Script::new(Limits {
            ordered,
            ..Limits::default()
        });
        s.request(CLIENT, "rpc", b"slow", "amq.gen-1")
            .request(CLIENT, "rpc", b"fast", "amq.gen-1")
            .reply(SERVER, "amq.gen-1", b"fast")
            .deliver(CLIENT, 1, "amq.gen-1", reply_props(b"fast"));
        let numbers: Vec<u64> = s.calls().iter().map(|c| c.number).collect();
        assert_eq!(numbers, if ordered { vec![] } else { vec![2] });
        s.reply(SERVER, "amq.gen-1", b"slow")
            .deliver(CLIENT, 2, "amq.gen-1", reply_props(b"slow"));
        let numbers: Vec<u64> = s.calls().iter().map(|c| c.number).collect();
        assert_eq!(numbers, if ordered { [1, 2] } else { [2, 1] });
    }
}

#[test]
fn correlation_ids_are_bytes_and_the_same_id_pairs_per_reply_queue() {
    let mut s = Script::new(Limits::default());
    let id = [0xff, 0x00, 0x1b];
    // Two clients use the same correlation id; their reply queues tell them apart.
    s.request(CLIENT, "rpc", &id, "amq.gen-A")
        .request(2, "rpc", &id, "amq.gen-B")
        .reply(SERVER, "amq.gen-B", &id)
        .deliver(2, 1, "amq.gen-B", reply_props(&id))
        .reply(SERVER, "amq.gen-A", &id)
        .deliver(CLIENT, 1, "amq.gen-A", reply_props(&id));
    let calls = s.calls();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert_eq!(c.correlation_id.as_deref(), Some(&id[..]));
        assert_eq!(c.duplicates, 0);
        assert_eq!(
            c.request.as_ref().unwrap().stream,
            c.reply_delivery.as_ref().unwrap().stream
        );
    }
}

#[test]
fn direct_reply_to_pairs_without_the_server_in_the_capture() {
    let mut s = Script::new(Limits::default());
    let rewritten = "amq.rabbitmq.reply-to.g1h2AA1yZXBs.VUQQ9/s/npfqXA==";
    s.request(CLIENT, "rpc", b"d1", "amq.rabbitmq.reply-to")
        .request(2, "rpc", b"d1", "amq.rabbitmq.reply-to")
        .deliver(2, 1, rewritten, reply_props(b"d1"));
    let calls = s.calls();
    assert_eq!(calls.len(), 0, "call 1 is older and unfinished");
    s.finish();
    let calls = s.calls();
    assert_eq!(
        calls[1].outcome(),
        CallOutcome::Answered,
        "the requester's own stream"
    );
    assert_eq!(calls[0].outcome(), CallOutcome::NoReply);
}

#[test]
fn a_channel_closed_with_unacked_deliveries_reports_both() {
    let mut s = Script::new(Limits::default());
    s.consumer(SERVER, false);
    s.request(CLIENT, "rpc", b"c", "amq.gen-1")
        .deliver(SERVER, 1, "rpc", request_props(b"c", "amq.gen-1"))
        .method(
            SERVER,
            Side::Broker,
            ChannelClose {
                reply_code: 406,
                reply_text: "PRECONDITION_FAILED - unknown delivery tag 9".into(),
                class_id: 60,
                method_id: 80,
            },
        );
    let problems = s.problems();
    assert!(matches!(
        problems[0],
        Problem::Closed {
            code: 406,
            by: Side::Broker,
            cause: (60, 80),
            ..
        }
    ));
    assert!(matches!(
        problems[1],
        Problem::Unacked {
            call: Some(1),
            why: Unacked::ChannelClosed,
            ..
        }
    ));
}

#[test]
fn basic_get_deliveries_pair_and_ack_like_consumed_ones() {
    let mut s = Script::new(Limits::default());
    s.request(CLIENT, "rpc", b"g", "amq.gen-1")
        .method(
            SERVER,
            Side::Client,
            BasicGet {
                queue: "rpc".into(),
                no_ack: false,
                ..Default::default()
            },
        )
        .method(
            SERVER,
            Side::Broker,
            BasicGetOk {
                delivery_tag: 4,
                redelivered: false,
                exchange: "".into(),
                routing_key: "rpc".into(),
                message_count: 0,
            },
        )
        .content(
            SERVER,
            Side::Broker,
            request_props(b"g", "amq.gen-1"),
            b"30",
        )
        .reply(SERVER, "amq.gen-1", b"g")
        .deliver(CLIENT, 1, "amq.gen-1", reply_props(b"g"));
    assert!(s.calls().is_empty(), "waiting for the get's ack");
    s.ack(SERVER, 4, false);
    let c = s.calls()[0];
    assert_eq!(c.ack.as_ref().unwrap().delivery_tag, Some(4));
}

#[test]
fn an_x_error_header_makes_an_error_reply() {
    let mut s = Script::new(Limits::default());
    s.request(CLIENT, "rpc", b"e", "amq.gen-1");
    s.method(SERVER, Side::Client, publish("amq.gen-1"));
    let props = BasicProperties {
        correlation_id: Some("e".into()),
        headers: Some(FieldTable::new().with("x-error", "bad-request")),
        ..Default::default()
    };
    s.content(SERVER, Side::Client, props, b"n must be a number")
        .deliver(CLIENT, 1, "amq.gen-1", reply_props(b"e"));
    let c = s.calls()[0];
    assert_eq!(c.outcome(), CallOutcome::Error);
    assert_eq!(c.error.as_deref(), Some(&b"bad-request"[..]));
}
