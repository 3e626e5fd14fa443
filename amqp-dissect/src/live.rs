//! Live traffic: the bytes of one connection, as a program that carries them (a proxy, a
//! client recording itself) sees them, dissected into the same [`Event`]s a capture of that
//! connection would give.
//!
//! ```
//! use amqp_dissect::live::LiveStream;
//! use amqp_dissect::{Side, What};
//!
//! let mut stream = LiveStream::new(
//!     0,
//!     "127.0.0.1:40000".parse().unwrap(),
//!     "127.0.0.1:5672".parse().unwrap(),
//!     amqp_dissect::DEFAULT_FRAME_LIMIT,
//! );
//! let mut events = Vec::new();
//! // A heartbeat frame, in two reads.
//! stream.push(Side::Broker, &[8, 0, 0, 0], 4, Some(1.5), &mut |e| events.push(e));
//! stream.push(Side::Broker, &[0, 0, 0, 0xce], 5, Some(1.6), &mut |e| events.push(e));
//! assert_eq!(events.len(), 1);
//! assert_eq!((events[0].packet, events[0].side), (5, Side::Broker));
//! assert_eq!(events[0].endpoints.client, "127.0.0.1:40000");
//! assert!(matches!(events[0].what, What::Frame { .. }));
//! ```
//!
//! No TCP here: the bytes come in order, each direction whole, and the caller names the packet
//! (and time) each read is recorded as, so a live view and a later `decode` of the recording
//! agree on every event.

use std::net::SocketAddr;
use std::rc::Rc;

use crate::frames::{FrameStream, Located};
use crate::tcp::show;
use crate::{Endpoints, Event, Side};

/// One connection's two directions, dissected as their bytes arrive.
#[derive(Debug)]
pub struct LiveStream {
    index: u32,
    endpoints: Rc<Endpoints>,
    /// The client's direction, then the broker's.
    dirs: [FrameStream; 2],
    /// Bytes were pushed, per direction.
    started: [bool; 2],
    /// Each direction's end was reported.
    closed: [bool; 2],
    /// As `decode` would judge the connection: AMQP by its broker port ([`crate::AMQP_PORT`]),
    /// or once a direction opened with the protocol header. Only such a connection reports its
    /// ends, as `decode` does.
    amqp: bool,
}

impl LiveStream {
    /// Stream number `index` between `client` and `broker`, with frames up to `frame_max` bytes.
    pub fn new(index: u32, client: SocketAddr, broker: SocketAddr, frame_max: u32) -> Self {
        LiveStream {
            index,
            endpoints: Rc::new(Endpoints {
                client: show(client),
                broker: show(broker),
            }),
            dirs: [FrameStream::new(frame_max), FrameStream::new(frame_max)],
            started: [false; 2],
            closed: [false; 2],
            amqp: broker.port() == crate::AMQP_PORT,
        }
    }

    /// The stream number.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Bytes `from` sent, carried in packet `packet` at `time`: an event for every frame (or
    /// damage) they complete.
    pub fn push(
        &mut self,
        from: Side,
        bytes: &[u8],
        packet: u64,
        time: Option<f64>,
        emit: &mut dyn FnMut(Event),
    ) {
        let d = dir(from);
        if !self.started[d] && !bytes.is_empty() {
            self.started[d] = true;
            self.amqp |= bytes.starts_with(b"AMQP");
        }
        let (index, endpoints) = (self.index, &self.endpoints);
        self.dirs[d].push(bytes, packet, time, &mut |l| {
            emit(event(index, endpoints, from, l))
        });
    }

    /// `from` closed its direction (a FIN, or a RST when `reset`) in packet `packet` at `time`:
    /// a [`What::Closed`](crate::What::Closed) event, once per direction, at the offset where
    /// its bytes end.
    pub fn closed(
        &mut self,
        from: Side,
        reset: bool,
        packet: u64,
        time: Option<f64>,
        emit: &mut dyn FnMut(Event),
    ) {
        let d = dir(from);
        if self.closed[d] || !self.amqp {
            return;
        }
        self.closed[d] = true;
        emit(Event {
            packet,
            time,
            stream: self.index,
            side: from,
            offset: self.dirs[d].end_offset(),
            endpoints: self.endpoints.clone(),
            what: crate::What::Closed { reset },
        });
    }

    /// `missing` bytes `from` sent will never be pushed (`cause` says why): reported as an error
    /// event, and the frames after them found again.
    pub fn gap(&mut self, from: Side, missing: u64, cause: &str, emit: &mut dyn FnMut(Event)) {
        let (index, endpoints) = (self.index, &self.endpoints);
        self.dirs[dir(from)].gap_because(missing, cause, &mut |l| {
            emit(event(index, endpoints, from, l))
        });
    }

    /// The connection ended: a frame cut off in either direction is reported (a `decode` of the
    /// recording reports it at the end of the file instead).
    pub fn finish(&mut self, emit: &mut dyn FnMut(Event)) {
        for from in [Side::Client, Side::Broker] {
            let (index, endpoints) = (self.index, &self.endpoints);
            self.dirs[dir(from)].finish(&mut |l| emit(event(index, endpoints, from, l)));
        }
    }
}

fn dir(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Broker => 1,
    }
}

fn event(index: u32, endpoints: &Rc<Endpoints>, side: Side, located: Located) -> Event {
    Event {
        packet: located.packet,
        time: located.time,
        stream: index,
        side,
        offset: located.offset,
        endpoints: endpoints.clone(),
        what: located.found.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::What;

    #[test]
    fn a_gap_is_reported_with_its_cause_and_the_next_frame_found() {
        let heartbeat = [8u8, 0, 0, 0, 0, 0, 0, 0xce];
        let mut s = LiveStream::new(
            3,
            "[::1]:1".parse().unwrap(),
            "[::1]:5672".parse().unwrap(),
            1 << 20,
        );
        let mut events = Vec::new();
        s.push(Side::Client, &heartbeat[..3], 1, None, &mut |e| {
            events.push(e)
        });
        s.gap(Side::Client, 100, "the printer fell behind", &mut |e| {
            events.push(e)
        });
        s.push(Side::Client, &heartbeat, 2, None, &mut |e| events.push(e));
        s.finish(&mut |e| events.push(e));
        assert_eq!(events.len(), 2, "{events:#?}");
        let What::Error { message, .. } = &events[0].what else {
            panic!("{:?}", events[0]);
        };
        assert!(message.contains("the printer fell behind"), "{message}");
        assert!(matches!(events[1].what, What::Frame { .. }));
        assert_eq!((events[1].stream, events[1].offset), (3, 103));
        assert_eq!(events[1].endpoints.broker, "[::1]:5672");
    }

    #[test]
    fn each_direction_reports_its_end_once_as_decode_would() {
        let mut events = Vec::new();
        let mut amqp = LiveStream::new(
            0,
            "127.0.0.1:40000".parse().unwrap(),
            "127.0.0.1:5671".parse().unwrap(),
            1 << 20,
        );
        // Not on 5672: the connection is AMQP once a direction opens with the protocol header.
        amqp.closed(Side::Broker, false, 1, None, &mut |e| events.push(e));
        assert!(events.is_empty());
        amqp.push(Side::Client, b"AMQP\x00\x00\x09\x01", 2, None, &mut |e| {
            events.push(e)
        });
        amqp.closed(Side::Client, true, 3, None, &mut |e| events.push(e));
        amqp.closed(Side::Client, false, 4, None, &mut |e| events.push(e));
        amqp.closed(Side::Broker, false, 5, None, &mut |e| events.push(e));
        let ends: Vec<_> = events
            .iter()
            .filter_map(|e| match e.what {
                What::Closed { reset } => Some((e.packet, e.side, e.offset, reset)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            [(3, Side::Client, 8, true), (5, Side::Broker, 0, false)]
        );
    }
}
