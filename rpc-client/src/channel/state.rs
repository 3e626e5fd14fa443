//! One channel's protocol state, driven by the frames the broker sends on it (sans-IO).
//!
//! The reader task feeds every frame of the channel to [`ChannelState::handle`], which reassembles
//! content, hands deliveries to consumers, returns to the publisher, confirms to their waiters and
//! synchronous replies to the one pending call, and says what to send back. It does no I/O and
//! owns no task, so each rule is unit-tested without a socket.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use amqp_codec::{
    Assembled, BasicProperties, BasicReject, ChannelCloseOk, ChannelFlowOk, Frame, Message,
    MessageAssembler, Method,
};

use crate::error::{Error, Result, UNEXPECTED_FRAME};
use crate::message::{Confirm, ConsumerItem, Delivery, GetMessage, Returned};

/// A protocol violation by the peer that must close the whole connection with `code`.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub code: u16,
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

/// The answer to a synchronous method.
#[derive(Debug)]
pub(crate) enum Reply {
    Method(Method),
    Get(Option<Box<GetMessage>>),
}

/// A call waiting for its synchronous reply.
#[derive(Debug)]
pub(crate) struct Pending {
    /// `(class id, method id)` of the replies the request allows.
    pub expect: &'static [(u16, u16)],
    pub reply: oneshot::Sender<Result<Reply>>,
    /// For `basic.consume`: where the consumer's deliveries go, installed when consume-ok names
    /// the tag and before any delivery for it can be read.
    pub consumer: Option<ConsumerSlot>,
}

/// Where one consumer's deliveries go.
#[derive(Debug)]
pub(crate) struct ConsumerSlot {
    pub sink: ConsumerSink,
    /// Deliveries need no ack: nothing to give back if the consumer is gone.
    pub no_ack: bool,
}

/// A consumer's receiving end.
pub(crate) enum ConsumerSink {
    /// A [`crate::Consumer`]'s queue, read by the application's task.
    Queue(mpsc::UnboundedSender<ConsumerItem>),
    /// A function the reader task calls with each delivery, in order, and finally with the
    /// reason the consumer ended (see [`crate::Channel::basic_consume_inline`]). It runs while
    /// the channel's state is locked, so it must not call into the connection; the RPC client
    /// uses it to complete its correlation map with no task hop per reply.
    Inline(Box<dyn FnMut(ConsumerItem) + Send>),
}

impl ConsumerSink {
    /// Hands `item` over; false when the receiving end is gone.
    pub(crate) fn send(&mut self, item: ConsumerItem) -> bool {
        match self {
            ConsumerSink::Queue(tx) => tx.send(item).is_ok(),
            ConsumerSink::Inline(f) => {
                f(item);
                true
            }
        }
    }
}

impl std::fmt::Debug for ConsumerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConsumerSink::Queue(tx) => f.debug_tuple("Queue").field(tx).finish(),
            ConsumerSink::Inline(_) => f.write_str("Inline(..)"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Status {
    /// `channel.open` sent, open-ok not yet seen.
    Opening,
    Open,
    /// This client sent `channel.close`; everything but close/close-ok is discarded (spec).
    Closing,
    /// Closed, with the reason every later call gets.
    Closed(Error),
}

/// Publisher-confirm bookkeeping: the next sequence number and who waits for which.
#[derive(Debug, Default)]
pub(crate) struct Confirms {
    /// The delivery tag the broker will give the next publish (starts at 1).
    pub next: u64,
    waiters: BTreeMap<u64, oneshot::Sender<Result<Confirm>>>,
}

impl Confirms {
    fn new() -> Self {
        Confirms {
            next: 1,
            waiters: BTreeMap::new(),
        }
    }

    /// Take the next sequence number; with `wait`, register a waiter for its confirm.
    pub(crate) fn publish(
        &mut self,
        wait: bool,
    ) -> (u64, Option<oneshot::Receiver<Result<Confirm>>>) {
        let tag = self.next;
        self.next += 1;
        if !wait {
            return (tag, None);
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.insert(tag, tx);
        (tag, Some(rx))
    }

    /// Settle `tag`, or with `multiple` every tag up to and including it.
    fn settle(&mut self, tag: u64, multiple: bool, verdict: Confirm) {
        if multiple {
            let rest = self.waiters.split_off(&(tag.saturating_add(1)));
            for (_, w) in std::mem::replace(&mut self.waiters, rest) {
                let _ = w.send(Ok(verdict));
            }
        } else if let Some(w) = self.waiters.remove(&tag) {
            let _ = w.send(Ok(verdict));
        }
    }

    fn fail(&mut self, e: &Error) {
        for (_, w) in std::mem::take(&mut self.waiters) {
            let _ = w.send(Err(e.clone()));
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.len()
    }
}

/// What the reader must do after a frame.
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
    pub status: Status,
    assembler: MessageAssembler,
    /// Calls waiting for their reply, oldest first: the broker answers a channel's synchronous
    /// methods in order, so a call whose future was dropped still takes its own reply.
    pub pending: VecDeque<Pending>,
    consumers: HashMap<Bytes, ConsumerSlot>,
    pub returns: Option<mpsc::UnboundedSender<Returned>>,
    pub confirms: Option<Confirms>,
}

fn text(s: &amqp_codec::ShortString) -> String {
    s.to_string_lossy().into_owned()
}

impl ChannelState {
    pub(crate) fn new(id: u16) -> Self {
        ChannelState {
            id,
            status: Status::Opening,
            assembler: MessageAssembler::new(id),
            pending: VecDeque::new(),
            consumers: HashMap::new(),
            returns: None,
            confirms: None,
        }
    }

    /// `Ok` when calls may be made; else the reason the channel is unusable.
    pub(crate) fn check_open(&self) -> Result<()> {
        match &self.status {
            Status::Open | Status::Opening => Ok(()),
            Status::Closing => Err(Error::ChannelClosed {
                code: crate::error::REPLY_SUCCESS,
                text: "channel is closing".into(),
                class_id: 0,
                method_id: 0,
            }),
            Status::Closed(e) => Err(e.clone()),
        }
    }

    pub(crate) fn enable_confirms(&mut self) {
        if self.confirms.is_none() {
            self.confirms = Some(Confirms::new());
        }
    }

    /// Close the channel for good with `e`: the pending call, every consumer and every confirm
    /// waiter get it.
    pub(crate) fn fail(&mut self, e: Error) {
        for p in self.pending.drain(..) {
            let _ = p.reply.send(Err(e.clone()));
        }
        for (_, mut c) in self.consumers.drain() {
            c.sink.send(Err(e.clone()));
        }
        if let Some(c) = &mut self.confirms {
            c.fail(&e);
        }
        self.returns = None;
        self.status = Status::Closed(e);
    }

    /// One frame from the broker on this channel.
    pub(crate) fn handle(&mut self, frame: Frame) -> Result<Outcome, Violation> {
        if matches!(self.status, Status::Closing) {
            // Spec 2.2.2.2 / channel.close: after sending close, discard everything until
            // close-ok (a crossing close from the peer counts as one).
            return Ok(match frame {
                Frame::Method(_, Method::ChannelCloseOk(_)) => self.closed_ok(),
                Frame::Method(_, Method::ChannelClose(close)) => {
                    // Our close crossed the broker's. We answer its close, but the number stays
                    // reserved: RabbitMQ still answers our close with a close-ok, and releasing
                    // now would make that close-ok land on a "channel that is not open" (or on the
                    // next channel given the same number) and kill the connection.
                    let e = Error::ChannelClosed {
                        code: close.reply_code,
                        text: text(&close.reply_text),
                        class_id: close.class_id,
                        method_id: close.method_id,
                    };
                    self.fail(e);
                    self.status = Status::Closing;
                    Outcome::Send(Frame::Method(self.id, ChannelCloseOk {}.into()))
                }
                _ => Outcome::Nothing,
            });
        }
        if let Status::Closed(_) = self.status {
            return Err(Violation {
                code: crate::error::CHANNEL_ERROR,
                error: Error::Protocol(format!("frame on closed channel {}", self.id)),
            });
        }
        let assembled = self.assembler.push(frame).map_err(|e| Violation {
            code: e.reply_code(),
            error: Error::Decode(e),
        })?;
        match assembled {
            None => Ok(Outcome::Nothing),
            Some(Assembled::Method(m)) => self.method(m),
            Some(Assembled::Message(msg)) => self.message(msg),
        }
    }

    fn closed_ok(&mut self) -> Outcome {
        let e = Error::ChannelClosed {
            code: crate::error::REPLY_SUCCESS,
            text: "closed by client".into(),
            class_id: 0,
            method_id: 0,
        };
        // The close call is the last in the queue; earlier ones never get their replies.
        if let Some(p) = self.pending.pop_back() {
            let _ = p.reply.send(Ok(Reply::Method(ChannelCloseOk {}.into())));
        }
        self.fail(e);
        Outcome::Release
    }

    fn method(&mut self, m: Method) -> Result<Outcome, Violation> {
        match m {
            Method::ChannelClose(close) => {
                let e = Error::ChannelClosed {
                    code: close.reply_code,
                    text: text(&close.reply_text),
                    class_id: close.class_id,
                    method_id: close.method_id,
                };
                self.fail(e);
                Ok(Outcome::SendAndRelease(Frame::Method(
                    self.id,
                    ChannelCloseOk {}.into(),
                )))
            }
            Method::ChannelFlow(flow) => Ok(Outcome::Send(Frame::Method(
                self.id,
                ChannelFlowOk {
                    active: flow.active,
                }
                .into(),
            ))),
            Method::BasicAck(ack) => {
                let confirms = self.confirms.as_mut().ok_or_else(|| {
                    Violation::unexpected(
                        self.id,
                        "basic.ack from the broker outside confirm mode".into(),
                    )
                })?;
                confirms.settle(ack.delivery_tag, ack.multiple, Confirm::Ack);
                Ok(Outcome::Nothing)
            }
            Method::BasicNack(nack) => {
                let confirms = self.confirms.as_mut().ok_or_else(|| {
                    Violation::unexpected(
                        self.id,
                        "basic.nack from the broker outside confirm mode".into(),
                    )
                })?;
                confirms.settle(nack.delivery_tag, nack.multiple, Confirm::Nack);
                Ok(Outcome::Nothing)
            }
            // Broker-initiated cancel (capability consumer_cancel_notify): the queue went away.
            // The broker expects no cancel-ok.
            Method::BasicCancel(cancel) => {
                let tag = cancel.consumer_tag.clone().into_bytes();
                if let Some(mut c) = self.consumers.remove(&tag) {
                    c.sink
                        .send(Err(Error::ConsumerCancelled(text(&cancel.consumer_tag))));
                }
                Ok(Outcome::Nothing)
            }
            Method::BasicGetEmpty(_) => {
                self.reply(Method::BasicGetEmpty(Default::default()), Reply::Get(None))?;
                Ok(Outcome::Nothing)
            }
            other => {
                if let Method::BasicCancelOk(ok) = &other {
                    // End the consumer here: after cancel-ok no delivery for it can follow.
                    let tag = ok.consumer_tag.clone().into_bytes();
                    if let Some(mut c) = self.consumers.remove(&tag) {
                        c.sink
                            .send(Err(Error::ConsumerCancelled(text(&ok.consumer_tag))));
                    }
                }
                if let Method::ChannelOpenOk(_) = &other {
                    self.status = Status::Open;
                }
                let consume_tag = match &other {
                    Method::BasicConsumeOk(ok) => Some(ok.consumer_tag.clone().into_bytes()),
                    _ => None,
                };
                let key = (other.class_id(), other.method_id());
                let pending = self.take_pending(key, &other)?;
                if let (Some(tag), Some(slot)) = (consume_tag, pending.consumer) {
                    self.consumers.insert(tag, slot);
                }
                let _ = pending.reply.send(Ok(Reply::Method(other)));
                Ok(Outcome::Nothing)
            }
        }
    }

    fn take_pending(&mut self, key: (u16, u16), m: &Method) -> Result<Pending, Violation> {
        match self.pending.front() {
            Some(p) if p.expect.contains(&key) => {
                Ok(self.pending.pop_front().expect("front exists"))
            }
            other => {
                let waiting = other.is_some();
                Err(Violation::unexpected(
                    self.id,
                    format!(
                        "unexpected {}.{}{}",
                        m.info().class_name,
                        m.info().method_name,
                        if waiting {
                            " (not the reply the pending call expects)"
                        } else {
                            " (no call is waiting for a reply)"
                        }
                    ),
                ))
            }
        }
    }

    fn reply(&mut self, m: Method, reply: Reply) -> Result<(), Violation> {
        let key = (m.class_id(), m.method_id());
        let pending = self.take_pending(key, &m)?;
        let _ = pending.reply.send(Ok(reply));
        Ok(())
    }

    fn message(&mut self, msg: Message) -> Result<Outcome, Violation> {
        let Message {
            method,
            header,
            body,
        } = msg;
        let properties: BasicProperties = header.properties;
        match method {
            Method::BasicDeliver(d) => {
                let key = d.consumer_tag.clone().into_bytes();
                let delivery = Delivery {
                    delivery_tag: d.delivery_tag,
                    redelivered: d.redelivered,
                    exchange: d.exchange,
                    routing_key: d.routing_key,
                    consumer_tag: d.consumer_tag,
                    properties,
                    body,
                };
                match self.consumers.get_mut(&key) {
                    Some(c) => {
                        let tag = delivery.delivery_tag;
                        if !c.sink.send(Ok(delivery)) && !c.no_ack {
                            // The Consumer was dropped (its basic.cancel is on the way): give the
                            // message back to the queue rather than leave it unacknowledged.
                            return Ok(Outcome::Send(Frame::Method(
                                self.id,
                                BasicReject {
                                    delivery_tag: tag,
                                    requeue: true,
                                }
                                .into(),
                            )));
                        }
                    }
                    None => {
                        return Err(Violation::unexpected(
                            self.id,
                            format!(
                                "basic.deliver for unknown consumer tag {:?}",
                                text(&delivery.consumer_tag)
                            ),
                        ))
                    }
                }
                Ok(Outcome::Nothing)
            }
            Method::BasicReturn(r) => {
                if let Some(tx) = &self.returns {
                    let _ = tx.send(Returned {
                        reply_code: r.reply_code,
                        reply_text: r.reply_text,
                        exchange: r.exchange,
                        routing_key: r.routing_key,
                        properties,
                        body,
                    });
                } else {
                    tracing::debug!(
                        channel = self.id,
                        code = r.reply_code,
                        "basic.return with no returns() listener"
                    );
                }
                Ok(Outcome::Nothing)
            }
            Method::BasicGetOk(g) => {
                let m: Method = Method::BasicGetOk(Default::default());
                let delivery = Delivery {
                    delivery_tag: g.delivery_tag,
                    redelivered: g.redelivered,
                    exchange: g.exchange,
                    routing_key: g.routing_key,
                    consumer_tag: Default::default(),
                    properties,
                    body,
                };
                self.reply(
                    m,
                    Reply::Get(Some(Box::new(GetMessage {
                        delivery,
                        message_count: g.message_count,
                    }))),
                )?;
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

    /// Register the end of a consumer the client itself gave up on (its future was dropped).
    pub(crate) fn forget_consumer(&mut self, tag: &str) {
        self.consumers.remove(tag.as_bytes());
    }

    pub(crate) fn has_consumer(&self, tag: &str) -> bool {
        self.consumers.contains_key(tag.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amqp_codec::{
        BasicAck, BasicCancel, BasicConsumeOk, BasicDeliver, BasicNack, ChannelClose,
        ChannelOpenOk, ContentHeader, QueueDeclareOk,
    };

    fn open(id: u16) -> ChannelState {
        let mut s = ChannelState::new(id);
        s.status = Status::Open;
        s
    }

    fn pending(
        s: &mut ChannelState,
        expect: &'static [(u16, u16)],
    ) -> oneshot::Receiver<Result<Reply>> {
        let (tx, rx) = oneshot::channel();
        s.pending.push_back(Pending {
            expect,
            reply: tx,
            consumer: None,
        });
        rx
    }

    #[test]
    fn sync_reply_goes_to_the_pending_call() {
        let mut s = ChannelState::new(1);
        let mut rx = pending(&mut s, &[(20, 11)]);
        let out = s
            .handle(Frame::Method(1, ChannelOpenOk::default().into()))
            .unwrap();
        assert_eq!(out, Outcome::Nothing);
        assert!(matches!(
            rx.try_recv(),
            Ok(Ok(Reply::Method(Method::ChannelOpenOk(_))))
        ));
        assert!(matches!(s.status, Status::Open));
    }

    #[test]
    fn an_abandoned_call_still_takes_its_own_reply() {
        let mut s = open(1);
        drop(pending(&mut s, &[(50, 11)]));
        let mut second = pending(&mut s, &[(50, 11)]);
        let ok = |n: &str| {
            Frame::Method(
                1,
                QueueDeclareOk {
                    queue: n.into(),
                    ..Default::default()
                }
                .into(),
            )
        };
        s.handle(ok("first")).unwrap();
        assert!(
            second.try_recv().is_err(),
            "first reply must not reach the second call"
        );
        s.handle(ok("second")).unwrap();
        let Ok(Ok(Reply::Method(Method::QueueDeclareOk(q)))) = second.try_recv() else {
            panic!()
        };
        assert_eq!(q.queue.as_str(), Some("second"));
    }

    #[test]
    fn unexpected_reply_is_a_connection_violation() {
        let mut s = open(1);
        let v = s
            .handle(Frame::Method(1, QueueDeclareOk::default().into()))
            .unwrap_err();
        assert_eq!(v.code, 505);
        let _rx = pending(&mut s, &[(20, 11)]);
        let v = s
            .handle(Frame::Method(1, QueueDeclareOk::default().into()))
            .unwrap_err();
        assert!(v.error.to_string().contains("not the reply"), "{}", v.error);
    }

    #[test]
    fn channel_exception_fails_the_call_and_answers_close_ok() {
        let mut s = open(3);
        let mut rx = pending(&mut s, &[(50, 11)]);
        let close = ChannelClose {
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED - inequivalent arg 'durable'".into(),
            class_id: 50,
            method_id: 10,
        };
        let out = s.handle(Frame::Method(3, close.into())).unwrap();
        assert_eq!(
            out,
            Outcome::SendAndRelease(Frame::Method(3, ChannelCloseOk {}.into()))
        );
        let Ok(Err(Error::ChannelClosed {
            code: 406,
            class_id: 50,
            method_id: 10,
            ..
        })) = rx.try_recv()
        else {
            panic!()
        };
        assert!(matches!(
            s.check_open(),
            Err(Error::ChannelClosed { code: 406, .. })
        ));
    }

    #[test]
    fn deliveries_reach_their_consumer() {
        let mut s = open(1);
        let (tx, _rx) = oneshot::channel();
        let (ctx, mut crx) = mpsc::unbounded_channel();
        s.pending.push_back(Pending {
            expect: &[(60, 21)],
            reply: tx,
            consumer: Some(ConsumerSlot {
                sink: ConsumerSink::Queue(ctx),
                no_ack: false,
            }),
        });
        s.handle(Frame::Method(
            1,
            BasicConsumeOk {
                consumer_tag: "c1".into(),
            }
            .into(),
        ))
        .unwrap();
        let deliver = BasicDeliver {
            consumer_tag: "c1".into(),
            delivery_tag: 7,
            ..Default::default()
        };
        s.handle(Frame::Method(1, deliver.into())).unwrap();
        let header = ContentHeader::new(3, BasicProperties::default().with_correlation_id("x"));
        s.handle(Frame::Header(1, header)).unwrap();
        s.handle(Frame::Body(1, Bytes::from_static(b"ab"))).unwrap();
        assert!(crx.try_recv().is_err());
        s.handle(Frame::Body(1, Bytes::from_static(b"c"))).unwrap();
        let d = crx.try_recv().unwrap().unwrap();
        assert_eq!((d.delivery_tag, &d.body[..]), (7, &b"abc"[..]));
        assert_eq!(d.properties.correlation_id.unwrap().as_str(), Some("x"));
        // Broker-initiated cancel ends the consumer.
        s.handle(Frame::Method(
            1,
            BasicCancel {
                consumer_tag: "c1".into(),
                nowait: true,
            }
            .into(),
        ))
        .unwrap();
        assert!(matches!(crx.try_recv(), Ok(Err(Error::ConsumerCancelled(t))) if t == "c1"));
        // A delivery to an unknown tag is a violation.
        let deliver = BasicDeliver {
            consumer_tag: "zz".into(),
            ..Default::default()
        };
        s.handle(Frame::Method(1, deliver.into())).unwrap();
        let v = s
            .handle(Frame::Header(1, ContentHeader::new(0, Default::default())))
            .unwrap_err();
        assert_eq!(v.code, 505);
    }

    #[test]
    fn confirms_settle_single_and_multiple() {
        let mut s = open(1);
        s.enable_confirms();
        let c = s.confirms.as_mut().unwrap();
        let mut rxs: Vec<_> = (0..5).map(|_| c.publish(true).1.unwrap()).collect();
        s.handle(Frame::Method(
            1,
            BasicAck {
                delivery_tag: 2,
                multiple: true,
            }
            .into(),
        ))
        .unwrap();
        s.handle(Frame::Method(
            1,
            BasicNack {
                delivery_tag: 4,
                multiple: false,
                requeue: false,
            }
            .into(),
        ))
        .unwrap();
        let got: Vec<_> = rxs
            .iter_mut()
            .map(|r| r.try_recv().ok().map(|r| r.unwrap()))
            .collect();
        assert_eq!(
            got,
            [
                Some(Confirm::Ack),
                Some(Confirm::Ack),
                None,
                Some(Confirm::Nack),
                None
            ]
        );
        assert_eq!(s.confirms.as_ref().unwrap().waiting(), 2);
        s.fail(Error::ConnectionLost("x".into()));
        assert!(matches!(
            rxs[2].try_recv(),
            Ok(Err(Error::ConnectionLost(_)))
        ));
    }

    #[test]
    fn ack_outside_confirm_mode_is_a_violation() {
        let mut s = open(1);
        let v = s
            .handle(Frame::Method(
                1,
                BasicAck {
                    delivery_tag: 1,
                    multiple: false,
                }
                .into(),
            ))
            .unwrap_err();
        assert_eq!(v.code, 505);
    }

    #[test]
    fn closing_discards_until_close_ok() {
        let mut s = open(2);
        s.status = Status::Closing;
        let mut rx = pending(&mut s, &[(20, 41)]);
        let deliver = BasicDeliver::default();
        assert_eq!(
            s.handle(Frame::Method(2, deliver.into())).unwrap(),
            Outcome::Nothing
        );
        assert_eq!(
            s.handle(Frame::Method(2, ChannelCloseOk {}.into()))
                .unwrap(),
            Outcome::Release
        );
        assert!(matches!(rx.try_recv(), Ok(Ok(_))));
        assert!(s.check_open().is_err());
    }

    #[test]
    fn crossing_closes_keep_the_number_until_the_brokers_close_ok() {
        let mut s = open(4);
        s.status = Status::Closing;
        let mut rx = pending(&mut s, &[(20, 41)]);
        let close = ChannelClose {
            reply_code: 406,
            reply_text: "PRECONDITION_FAILED".into(),
            class_id: 60,
            method_id: 40,
        };
        assert_eq!(
            s.handle(Frame::Method(4, close.into())).unwrap(),
            Outcome::Send(Frame::Method(4, ChannelCloseOk {}.into()))
        );
        // The close call learns why the channel went.
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(Error::ChannelClosed { code: 406, .. }))
        ));
        // The broker's close-ok to our own close then releases the number.
        assert_eq!(
            s.handle(Frame::Method(4, ChannelCloseOk {}.into()))
                .unwrap(),
            Outcome::Release
        );
    }
}
