//! A call: one request and what became of it, leg by leg, and the latency between the legs.

use std::rc::Rc;

use bytes::Bytes;

use crate::{Endpoints, Side};

/// Where a leg of a call (or a problem) was seen: the method frame that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    /// TCP stream index.
    pub stream: u32,
    /// AMQP channel.
    pub channel: u16,
    /// The sender of the method frame.
    pub side: Side,
    /// The method frame's offset in its stream direction: with `stream` and `side`, it names
    /// the frame exactly (several can share a packet).
    pub offset: u64,
    /// Packet that carries the method frame (where the frame ends).
    pub packet: u64,
    /// That packet's capture timestamp, seconds since the epoch (captures only).
    pub time: Option<f64>,
    /// The stream's endpoints: its client is the RPC client for a request, the RPC server for
    /// a delivery of a request.
    pub endpoints: Rc<Endpoints>,
    /// The message's body size (content-carrying legs).
    pub body_size: Option<u64>,
    /// The delivery tag (deliveries, and the ack: the tag it acknowledged).
    pub delivery_tag: Option<u64>,
    /// The redelivered flag (deliveries).
    pub redelivered: Option<bool>,
}

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// A reply came (published by a server, or delivered to the client) without `x-error`.
    Answered,
    /// A reply came carrying an `x-error` header.
    Error,
    /// The broker returned the request (`basic.return`: a `mandatory` request with no queue).
    Returned,
    /// The request was seen but no reply by the end of the capture (or by its eviction).
    NoReply,
    /// A reply whose request is not in the capture.
    OrphanReply,
}

impl CallOutcome {
    /// `answered`, `error`, `returned`, `no-reply` or `orphan-reply`.
    pub fn name(self) -> &'static str {
        match self {
            CallOutcome::Answered => "answered",
            CallOutcome::Error => "error",
            CallOutcome::Returned => "returned",
            CallOutcome::NoReply => "no-reply",
            CallOutcome::OrphanReply => "orphan-reply",
        }
    }

    /// Every outcome, in the order summaries list them.
    pub const ALL: [CallOutcome; 5] = [
        CallOutcome::Answered,
        CallOutcome::Error,
        CallOutcome::Returned,
        CallOutcome::NoReply,
        CallOutcome::OrphanReply,
    ];
}

/// One RPC call, as paired from the frames of every connection it crossed.
///
/// Strings are the wire's bytes, unescaped and possibly not UTF-8: escape them before printing.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// 1-based, in order of the request (of the first leg seen, when the request is missing).
    pub number: u64,
    /// The `correlation-id` property, as bytes.
    pub correlation_id: Option<Bytes>,
    /// The request's routing key (of its delivery, when the request is missing).
    pub queue: Option<Bytes>,
    /// `reply-to` as the client published it (as delivered, when the request is missing).
    pub reply_to: Option<Bytes>,
    /// The `x-error` header of the reply, or the return's code and text (`312 NO_ROUTE`).
    pub error: Option<Bytes>,
    /// Replies beyond the first (published, or delivered when no publish was seen).
    pub duplicates: u32,
    /// Times the request was delivered to a server (redeliveries included).
    pub deliveries: u32,
    /// `basic.publish` of the request, by the client.
    pub request: Option<Leg>,
    /// `basic.deliver` (or `get-ok`) of the request to a server: the last one before the first
    /// reply, so the server that answered.
    pub delivery: Option<Leg>,
    /// `basic.publish` of the first reply, by the server (on any of its connections).
    pub reply: Option<Leg>,
    /// `basic.deliver` of the first reply to the client.
    pub reply_delivery: Option<Leg>,
    /// `basic.ack` (possibly `multiple`) of [`delivery`](Call::delivery), by the server.
    pub ack: Option<Leg>,
    /// `basic.return` of the request, by the broker.
    pub returned: Option<Leg>,
    /// The first bytes of the request's body.
    pub request_body: Bytes,
    /// The first bytes of the first reply's body.
    pub reply_body: Bytes,
    /// Let go while unfinished because too many calls were pending (see [`Limits`](super::Limits)).
    pub evicted: bool,
}

/// A call's latency split, in seconds; `None` where a leg (or its timestamp) is missing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Latency {
    /// Reply delivered − request published.
    pub total: Option<f64>,
    /// Request delivered − request published (broker and network on the way in).
    pub to_server: Option<f64>,
    /// Reply published − request delivered (the server's turnaround).
    pub server: Option<f64>,
    /// Reply delivered − reply published (broker and network on the way back).
    pub to_client: Option<f64>,
}

fn between(from: &Option<Leg>, to: &Option<Leg>) -> Option<f64> {
    Some(to.as_ref()?.time? - from.as_ref()?.time?)
}

impl Call {
    pub(super) fn new(number: u64) -> Self {
        Call {
            number,
            correlation_id: None,
            queue: None,
            reply_to: None,
            error: None,
            duplicates: 0,
            deliveries: 0,
            request: None,
            delivery: None,
            reply: None,
            reply_delivery: None,
            ack: None,
            returned: None,
            request_body: Bytes::new(),
            reply_body: Bytes::new(),
            evicted: false,
        }
    }

    /// What became of the call, from the legs seen.
    pub fn outcome(&self) -> CallOutcome {
        if self.returned.is_some() {
            CallOutcome::Returned
        } else if self.reply.is_none() && self.reply_delivery.is_none() {
            CallOutcome::NoReply
        } else if self.request.is_none() {
            CallOutcome::OrphanReply
        } else if self.error.is_some() {
            CallOutcome::Error
        } else {
            CallOutcome::Answered
        }
    }

    /// The latency split.
    pub fn latency(&self) -> Latency {
        Latency {
            total: between(&self.request, &self.reply_delivery),
            to_server: between(&self.request, &self.delivery),
            server: between(&self.delivery, &self.reply),
            to_client: between(&self.reply, &self.reply_delivery),
        }
    }

    /// The RPC client's address: the client end of the request's (or reply delivery's) stream.
    pub fn client(&self) -> Option<&str> {
        let leg = self.request.as_ref().or(self.reply_delivery.as_ref())?;
        Some(&leg.endpoints.client)
    }

    /// The RPC server's address: the client end of the stream the request was delivered on (or
    /// the reply published on).
    pub fn server(&self) -> Option<&str> {
        let leg = self.delivery.as_ref().or(self.reply.as_ref())?;
        Some(&leg.endpoints.client)
    }
}
