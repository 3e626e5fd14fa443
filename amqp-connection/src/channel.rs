//! One channel's protocol state, driven by the frames the broker sends on it and the methods the
//! client sends on it (sans-IO).
//!
//! `ChannelState::handle` takes each frame of the channel, reassembles content, checks every
//! rule the spec gives a client (a reply must answer the oldest call and be one it allows, a
//! delivery must name a known consumer, acks come only in confirm mode, …) and turns what happened
//! into [`Event`]s. A broken rule is a [`Violation`], which closes the whole connection.

use std::collections::VecDeque;

use bytes::Bytes;

use amqp_codec::{
    Assembled, BasicProperties, BasicReject, ChannelCloseOk, ChannelFlowOk, Frame, Message,
    MessageAssembler, Method, ShortString,
};

use crate::error::{Error, CHANNEL_ERROR, REPLY_SUCCESS, UNEXPECTED_FRAME};
use crate::event::{Event, Reply};
use crate::hash::IdMap;
use crate::message::{Confirm, Delivery, GetMessage, Returned};

/// A protocol violation by the peer that must close the whole connection with `code`.
#[derive(Debug, Clone)]
pub struct Violation {
    /// The reply code the connection is closed with (501-505, …).
    pub code: u16,
    /// What was wrong, for the close's reply text and for every waiter.
    pub error: Error,
}

impl Violation {
    pub(crate) fn unexpected(channel: u16, what: String) -> Self {
        Violation {
            code: UNEXPECTED_FRAME,
            error: Error::Protocol(format!("channel {channel}: {what}")),
        }
    }
}

/// A synchronous call waiting for its reply.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// `(class id, method id)` of the replies the request allows.
    pub expect: &'static [(u16, u16)],
    /// The call's number in the connection's order of calls (for its reply deadline).
    pub seq: u64,
    /// The method, for messages.
    pub what: &'static amqp_codec::MethodInfo,
    /// For `basic.consume`: whether the consumer it creates acks (registered at consume-ok).
    pub consume_no_ack: Option<bool>,
}

/// One consumer as the channel knows it.
#[derive(Debug, Clone, Copy)]
struct ConsumerInfo {
    /// Deliveries need no ack.
    no_ack: bool,
    /// The client cancelled it without waiting (`nowait`): deliveries that were already on
    /// their way are given back to the queue (or dropped, without acks) here.
    cancelling: bool,
}

/// Where the channel is in its life.
#[derive(Debug, Clone)]
pub enum Status {
    /// `channel.open` sent, open-ok not yet seen.
    Opening,
    /// Usable.
    Open,
    /// This client sent `channel.close`; everything but close/close-ok is discarded (spec
    /// 2.2.2.2 / channel.close).
    Closing,
    /// Closed, with the reason every later call gets.
    Closed(Error),
}

/// What the connection must do after a frame on a channel.
#[derive(Debug, PartialEq)]
pub(crate) enum Outcome {
    Nothing,
    /// Send this frame on the channel.
    Send(Frame),
    /// Send this frame, then free the channel number.
    SendAndRelease(Frame),
    /// Free the channel number.
    Release,
}

/// The state of one channel.
#[derive(Debug)]
pub(crate) struct ChannelState {
    pub id: u16,
    /// Which opening of this number it is: a handle of an earlier channel with the same number
    /// must not reach this one.
    pub serial: u64,
    pub status: Status,
    assembler: MessageAssembler,
    /// Calls waiting for their reply, oldest first: the broker answers a channel's synchronous
    /// methods in order, so a call whose waiter went away still takes its own reply.
    pub pending: VecDeque<Pending>,
    consumers: IdMap<Bytes, ConsumerInfo>,
    /// In confirm mode: the sequence number the next publish gets (starts at 1).
    pub next_publish_seq: Option<u64>,
    /// Our close crossed the broker's: everything was failed with its reason, and only our
    /// close-ok is still awaited before the number is free.
    crossed: bool,
}

impl ChannelState {
    pub(crate) fn new(id: u16, serial: u64) -> Self {
        ChannelState {
            id,
            serial,
            status: Status::Opening,
            assembler: MessageAssembler::new(id),
            pending: VecDeque::new(),
            consumers: IdMap::default(),
            next_publish_seq: None,
            crossed: false,
        }
    }

    /// `Ok` when calls may be made; else the reason the channel is unusable.
    pub(crate) fn check_open(&self) -> Result<(), Error> {
        match &self.status {
            Status::Open | Status::Opening => Ok(()),
            Status::Closing => Err(Error::ChannelClosed {
                code: REPLY_SUCCESS,
                text: "channel is closing".into(),
                class_id: 0,
                method_id: 0,
            }),
            Status::Closed(e) => Err(e.clone()),
        }
    }

    /// Puts the channel in confirm mode (when `confirm.select` is sent, so that acks for the
    /// first publishes are understood even before select-ok).
    pub(crate) fn enable_confirms(&mut self) {
        if self.next_publish_seq.is_none() {
            self.next_publish_seq = Some(1);
        }
    }

    /// Takes the sequence number of a publish, in confirm mode.
    pub(crate) fn take_publish_seq(&mut self) -> Option<u64> {
        let seq = self.next_publish_seq.as_mut()?;
        let this = *seq;
        *seq += 1;
        Some(this)
    }

    /// The client cancels `tag` without waiting for cancel-ok.
    pub(crate) fn cancel_nowait(&mut self, tag: &[u8]) -> bool {
        match self.consumers.get_mut(tag) {
            Some(c) if !c.cancelling => {
                c.cancelling = true;
                true
            }
            _ => false,
        }
    }

    /// Whether the channel has had its last event ([`Event::ChannelClosed`]): closed, or its
    /// close crossed the broker's and only the number is still held.
    pub(crate) fn has_ended(&self) -> bool {
        self.crossed || matches!(self.status, Status::Closed(_))
    }

    /// Whether `tag` is a live (not cancelled) consumer of this channel.
    pub(crate) fn has_consumer(&self, tag: &[u8]) -> bool {
        self.consumers.get(tag).is_some_and(|c| !c.cancelling)
    }

    /// Closes the channel for good with `e`: every pending call is answered with it, every
    /// consumer ends, and `ChannelClosed` is the channel's last event.
    pub(crate) fn fail(&mut self, e: Error, events: &mut VecDeque<Event>) {
        for _ in self.pending.drain(..) {
            events.push_back(Event::Reply {
                channel: self.id,
                result: Err(e.clone()),
            });
        }
        self.consumers.clear();
        self.next_publish_seq = None;
        events.push_back(Event::ChannelClosed {
            channel: self.id,
            error: e.clone(),
        });
        self.status = Status::Closed(e);
    }

    /// Answers the oldest pending call with `result`.
    fn answer(&mut self, result: Result<Reply, Error>, events: &mut VecDeque<Event>) {
        self.pending.pop_front();
        events.push_back(Event::Reply {
            channel: self.id,
            result,
        });
    }

    /// One frame from the broker on this channel.
    #[inline(always)]
    pub(crate) fn handle(
        &mut self,
        frame: Frame,
        events: &mut VecDeque<Event>,
    ) -> Result<Outcome, Violation> {
        if matches!(self.status, Status::Closing) {
            // After sending close, discard everything until close-ok (a crossing close from the
            // peer is answered, and its reason kept).
            return Ok(match frame {
                Frame::Method(_, Method::ChannelCloseOk(_)) => self.closed_ok(events),
                // A second close from the broker after we answered its first (found by the
                // `connection` fuzz target) is discarded like any other frame here: the channel
                // has had its last event, and only our close-ok is still awaited.
                Frame::Method(_, Method::ChannelClose(close)) if !self.crossed => {
                    // Our close crossed the broker's. We answer its close, but the number stays
                    // reserved: RabbitMQ still answers our close with a close-ok, and releasing
                    // now would make that close-ok land on a "channel that is not open" (or on the
                    // next channel given the same number) and kill the connection.
                    let e = Error::ChannelClosed {
                        code: close.reply_code,
                        text: close.reply_text.to_string_lossy().into_owned(),
                        class_id: close.class_id,
                        method_id: close.method_id,
                    };
                    // Every call, our close included, learns why the channel went.
                    self.fail(e, events);
                    self.status = Status::Closing;
                    self.crossed = true;
                    Outcome::Send(Frame::Method(self.id, ChannelCloseOk {}.into()))
                }
                _ => Outcome::Nothing,
            });
        }
        if let Status::Closed(_) = self.status {
            return Err(Violation {
                code: CHANNEL_ERROR,
                error: Error::Protocol(format!("frame on closed channel {}", self.id)),
            });
        }
        // Matched in place: `map_err(..)?` moved the whole result (a ~560-byte message) into a
        // result of another type, once per frame (callgrind).
        match self.assembler.push(frame) {
            Ok(None) => Ok(Outcome::Nothing),
            Ok(Some(Assembled::Method(m))) => self.method(m, events),
            Ok(Some(Assembled::Message(msg))) => self.message(msg, events),
            Err(e) => Err(Violation {
                code: e.reply_code(),
                error: Error::Decode(e),
            }),
        }
    }

    fn closed_ok(&mut self, events: &mut VecDeque<Event>) -> Outcome {
        if self.crossed {
            // Everything was told at the crossing close; the number is free now.
            return Outcome::Release;
        }
        let e = Error::ChannelClosed {
            code: REPLY_SUCCESS,
            text: "closed by client".into(),
            class_id: 0,
            method_id: 0,
        };
        // The close call is the newest; calls made before it never get their replies now.
        while self.pending.len() > 1 {
            self.answer(Err(e.clone()), events);
        }
        if !self.pending.is_empty() {
            self.answer(Ok(Reply::Method(ChannelCloseOk {}.into())), events);
        }
        self.fail(e, events);
        Outcome::Release
    }

    fn method(&mut self, m: Method, events: &mut VecDeque<Event>) -> Result<Outcome, Violation> {
        match m {
            Method::ChannelClose(close) => {
                let e = Error::ChannelClosed {
                    code: close.reply_code,
                    text: close.reply_text.to_string_lossy().into_owned(),
                    class_id: close.class_id,
                    method_id: close.method_id,
                };
                self.fail(e, events);
                Ok(Outcome::SendAndRelease(Frame::Method(
                    self.id,
                    ChannelCloseOk {}.into(),
                )))
            }
            Method::ChannelFlow(flow) => {
                events.push_back(Event::Flow {
                    channel: self.id,
                    active: flow.active,
                });
                Ok(Outcome::Send(Frame::Method(
                    self.id,
                    ChannelFlowOk {
                        active: flow.active,
                    }
                    .into(),
                )))
            }
            Method::BasicAck(ack) => {
                self.confirm(ack.delivery_tag, ack.multiple, Confirm::Ack, events)
            }
            Method::BasicNack(nack) => {
                self.confirm(nack.delivery_tag, nack.multiple, Confirm::Nack, events)
            }
            // Broker-initiated cancel (capability consumer_cancel_notify): the queue went away.
            // The broker expects no cancel-ok.
            Method::BasicCancel(cancel) => {
                let tag = cancel.consumer_tag.clone().into_bytes();
                if self.consumers.remove(&tag).is_some() {
                    events.push_back(Event::ConsumerEnded {
                        channel: self.id,
                        reason: Error::ConsumerCancelled(
                            cancel.consumer_tag.to_string_lossy().into_owned(),
                        ),
                        consumer_tag: cancel.consumer_tag,
                    });
                }
                Ok(Outcome::Nothing)
            }
            Method::BasicGetEmpty(_) => {
                self.take_pending(&Method::BasicGetEmpty(Default::default()))?;
                self.answer(Ok(Reply::Get(None)), events);
                Ok(Outcome::Nothing)
            }
            other => {
                let pending = self.take_pending(&other)?;
                match &other {
                    Method::ChannelOpenOk(_) => self.status = Status::Open,
                    Method::BasicConsumeOk(ok) => {
                        self.consumers.insert(
                            ok.consumer_tag.clone().into_bytes(),
                            ConsumerInfo {
                                no_ack: pending.consume_no_ack.unwrap_or(false),
                                cancelling: false,
                            },
                        );
                    }
                    // After cancel-ok no delivery for the consumer can follow.
                    Method::BasicCancelOk(ok)
                        if self.consumers.remove(ok.consumer_tag.as_bytes()).is_some() =>
                    {
                        events.push_back(Event::ConsumerEnded {
                            channel: self.id,
                            consumer_tag: ok.consumer_tag.clone(),
                            reason: Error::ConsumerCancelled(
                                ok.consumer_tag.to_string_lossy().into_owned(),
                            ),
                        });
                    }
                    _ => {}
                }
                self.answer(Ok(Reply::Method(other)), events);
                Ok(Outcome::Nothing)
            }
        }
    }

    fn confirm(
        &mut self,
        delivery_tag: u64,
        multiple: bool,
        verdict: Confirm,
        events: &mut VecDeque<Event>,
    ) -> Result<Outcome, Violation> {
        if self.next_publish_seq.is_none() {
            let name = match verdict {
                Confirm::Ack => "basic.ack",
                Confirm::Nack => "basic.nack",
            };
            return Err(Violation::unexpected(
                self.id,
                format!("{name} from the broker outside confirm mode"),
            ));
        }
        events.push_back(Event::Confirm {
            channel: self.id,
            delivery_tag,
            multiple,
            verdict,
        });
        Ok(Outcome::Nothing)
    }

    /// Checks that `m` answers the oldest pending call; returns that call (still queued: the
    /// caller answers it).
    fn take_pending(&mut self, m: &Method) -> Result<Pending, Violation> {
        let key = (m.class_id(), m.method_id());
        match self.pending.front() {
            Some(p) if p.expect.contains(&key) => Ok(p.clone()),
            other => Err(Violation::unexpected(
                self.id,
                format!(
                    "unexpected {}.{}{}",
                    m.info().class_name,
                    m.info().method_name,
                    match other {
                        Some(p) => format!(
                            " (the pending call is {}.{})",
                            p.what.class_name, p.what.method_name
                        ),
                        None => " (no call is waiting for a reply)".into(),
                    }
                ),
            )),
        }
    }

    fn message(
        &mut self,
        msg: Message,
        events: &mut VecDeque<Event>,
    ) -> Result<Outcome, Violation> {
        let Message {
            method,
            header,
            body,
        } = msg;
        let properties: BasicProperties = header.properties;
        match method {
            Method::BasicDeliver(d) => {
                let Some(consumer) = self.consumers.get(d.consumer_tag.as_bytes()).copied() else {
                    return Err(Violation::unexpected(
                        self.id,
                        format!(
                            "basic.deliver for unknown consumer tag \"{}\"",
                            amqp_codec::Escaped(d.consumer_tag.as_bytes())
                        ),
                    ));
                };
                if consumer.cancelling {
                    // Cancelled by the client without waiting: give the message back to the
                    // queue rather than leave it unacknowledged until the channel closes.
                    if consumer.no_ack {
                        return Ok(Outcome::Nothing);
                    }
                    return Ok(Outcome::Send(Frame::Method(
                        self.id,
                        BasicReject {
                            delivery_tag: d.delivery_tag,
                            requeue: true,
                        }
                        .into(),
                    )));
                }
                events.push_back(Event::Delivery {
                    channel: self.id,
                    delivery: Box::new(Delivery {
                        delivery_tag: d.delivery_tag,
                        redelivered: d.redelivered,
                        exchange: d.exchange,
                        routing_key: d.routing_key,
                        consumer_tag: d.consumer_tag,
                        properties,
                        body,
                    }),
                });
                Ok(Outcome::Nothing)
            }
            Method::BasicReturn(r) => {
                events.push_back(Event::Returned {
                    channel: self.id,
                    returned: Box::new(Returned {
                        reply_code: r.reply_code,
                        reply_text: r.reply_text,
                        exchange: r.exchange,
                        routing_key: r.routing_key,
                        properties,
                        body,
                    }),
                });
                Ok(Outcome::Nothing)
            }
            Method::BasicGetOk(g) => {
                self.take_pending(&Method::BasicGetOk(Default::default()))?;
                let delivery = Delivery {
                    delivery_tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    exchange: g.exchange,
                    routing_key: g.routing_key,
                    consumer_tag: ShortString::default(),
                    properties,
                    body,
                };
                self.answer(
                    Ok(Reply::Get(Some(Box::new(GetMessage {
                        delivery,
                        message_count: g.message_count,
                    })))),
                    events,
                );
                Ok(Outcome::Nothing)
            }
            other => Err(Violation::unexpected(
                self.id,
                format!(
                    "content-carrying {}.{} from the broker",
                    other.info().class_name,
                    other.info().method_name
                ),
            )),
        }
    }
}
