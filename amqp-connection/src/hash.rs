//! A cheap hasher for the maps a connection looks up on every frame: channel numbers, consumer
//! tags, and the shells' own ticket and queue ids.
//!
//! SipHash (std's default) guards a map against keys chosen to collide. Here the numbers are the
//! client's own, and the only keys a broker chooses are the tags of this client's own consumers
//! (one per `basic.consume` it made), so there is nothing to guard: the worst a hostile broker
//! could do is slow its own connection's lookups. SipHash on these maps was ~800 instructions
//! of a blocking RPC call (callgrind, `bench/NOTES.md`); this is a multiply for numbers and
//! FNV-1a for tags.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes numbers with one multiply and byte strings with FNV-1a (see the module's notes).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

/// 2^64 / φ: spreads consecutive numbers over the high bits the table's probe uses.
const SPREAD: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h.wrapping_mul(SPREAD);
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(SPREAD);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// A `HashMap` with [`IdHasher`].
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn maps_find_what_they_hold() {
        let mut numbers: IdMap<u16, u16> = IdMap::default();
        for n in 0..2048u16 {
            numbers.insert(n, n ^ 0x55);
        }
        assert!((0..2048u16).all(|n| numbers.get(&n) == Some(&(n ^ 0x55))));
        let mut tags: IdMap<Bytes, usize> = IdMap::default();
        for i in 0..100 {
            tags.insert(Bytes::from(format!("amq.ctag-{i}")), i);
        }
        assert_eq!(tags.get(&b"amq.ctag-42"[..]), Some(&42));
        assert_eq!(tags.get(&b"amq.ctag-100"[..]), None);
    }
}
