//! Faults on command, to see how a client recovers: `--delay` (each direction's bytes held back),
//! `--cut-after N` (both sockets reset after N frames) and `--stall-after N` (nothing forwarded
//! after N frames, both sockets left open: a network black hole).
//!
//! Frames are counted by their headers alone (the protocol header, then a 7-byte header whose
//! size says where the frame ends), on both directions of a connection together, as the bytes
//! are forwarded. The Nth frame is forwarded whole and nothing after it passes; bytes already
//! forwarded of a frame the other direction was in the middle of stay forwarded.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What happens when a connection's frame budget runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reset both sockets (RST), as a killed peer or a broken network looks.
    Cut,
    /// Forward nothing more either way and keep both sockets open.
    Stall,
}

/// The faults every proxied connection gets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Hold the client's bytes back this long before forwarding them to the broker.
    pub delay_up: Duration,
    /// Hold the broker's bytes back this long before forwarding them to the client.
    pub delay_down: Duration,
    /// After this many frames (both directions together), do this.
    pub after: Option<(u64, Action)>,
}

/// Frames a connection may still forward before its [`Action`].
#[derive(Debug)]
pub struct Budget {
    left: AtomicU64,
    action: Action,
}

impl Budget {
    /// `frames` frames, then `action`.
    pub fn new(frames: u64, action: Action) -> Self {
        Budget {
            left: AtomicU64::new(frames),
            action,
        }
    }

    /// Takes one frame: `Some(true)` for the last one, `None` when none was left.
    fn take(&self) -> Option<bool> {
        self.left
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .ok()
            .map(|before| before == 1)
    }
}

/// Where one direction is in its frames.
#[derive(Debug, Default)]
pub struct FrameCounter {
    header: [u8; 7],
    /// Header bytes seen of the frame being read.
    have: usize,
    /// Bytes of the current frame still to pass once its header is read.
    rest: u64,
}

impl FrameCounter {
    /// Follows `data`; calls `end` with the offset just past each frame that ends in it, until
    /// `end` returns false.
    fn frames(&mut self, data: &[u8], end: &mut dyn FnMut(usize) -> bool) {
        let mut i = 0;
        while i < data.len() {
            if self.rest > 0 {
                let n = self.rest.min((data.len() - i) as u64);
                i += n as usize;
                self.rest -= n;
                if self.rest == 0 && !end(i) {
                    return;
                }
                continue;
            }
            self.header[self.have] = data[i];
            self.have += 1;
            i += 1;
            if self.have == 1 && self.header[0] == b'A' {
                // The protocol header: `AMQP` and four octets of version.
                self.rest = 7;
                self.have = 0;
            } else if self.have == self.header.len() {
                let [_, _, _, a, b, c, d] = self.header;
                // The payload and the frame-end octet.
                self.rest = u64::from(u32::from_be_bytes([a, b, c, d])) + 1;
                self.have = 0;
            }
        }
    }

    /// How much of `data` may be forwarded under `budget`, and the action to take once it has
    /// been (when its last frame was the budget's last).
    pub fn admit(&mut self, data: &[u8], budget: &Budget) -> (usize, Option<Action>) {
        let mut pass = data.len();
        let mut then = None;
        let mut start = 0;
        self.frames(data, &mut |end| match budget.take() {
            Some(false) => {
                start = end;
                true
            }
            Some(true) => {
                pass = end;
                then = Some(budget.action);
                false
            }
            // The other direction took the last frame: not even this one passes.
            None => {
                pass = start;
                false
            }
        });
        (pass, then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(size: u32) -> Vec<u8> {
        let mut f = vec![1, 0, 1];
        f.extend_from_slice(&size.to_be_bytes());
        f.extend(std::iter::repeat_n(0, size as usize));
        f.push(0xce);
        f
    }

    #[test]
    fn the_nth_frame_passes_whole_and_nothing_after_it() {
        let mut stream = b"AMQP\x00\x00\x09\x01".to_vec();
        stream.extend(frame(3));
        stream.extend(frame(100));
        stream.extend(frame(0));
        let budget = Budget::new(3, Action::Cut);
        let mut counter = FrameCounter::default();
        // Byte by byte: frames end across reads.
        let mut passed = 0;
        for b in stream.chunks(1) {
            let (n, then) = counter.admit(b, &budget);
            passed += n;
            if then.is_some() {
                assert_eq!(then, Some(Action::Cut));
                break;
            }
        }
        assert_eq!(passed, 8 + 11 + 108);
    }

    #[test]
    fn both_directions_share_the_budget() {
        let budget = Budget::new(2, Action::Stall);
        let (mut up, mut down) = (FrameCounter::default(), FrameCounter::default());
        let two = [frame(1), frame(2)].concat();
        assert_eq!(up.admit(&frame(5), &budget), (13, None));
        assert_eq!(down.admit(&two, &budget), (9, Some(Action::Stall)));
        assert_eq!(up.admit(&frame(1), &budget), (0, None));
    }
}
