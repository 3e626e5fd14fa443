//! The calls in flight: correlation id -> the waiting caller.
//!
//! One map per client, shared by the callers (who insert and, on timeout or cancellation, remove)
//! and the reply path (which removes and completes). A reply whose id is not in the map —
//! unknown, already answered, or answered after its call timed out — is dropped and counted:
//! tutorial six explains that a server may crash after replying and before acking, so a
//! restarted server answers the same request again, and the client must take that gracefully.
//!
//! Correlation ids are uuid v4s made here, and the map is keyed by their 128 bits rather than
//! their 36-character text: no string is allocated or hashed per call (measured: the pipelined
//! client's SipHash, String allocations and frees were ~4 % of its CPU).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{Reply, RpcError};

type Waiter = oneshot::Sender<Result<Reply, RpcError>>;

/// Hashes a call's 128-bit id by folding its halves together.
///
/// Not a general-purpose hasher, and it need not be one: every key in the map is a uuid v4 this
/// client drew from a CSPRNG (122 random bits; the fold mixes the 6 fixed version and variant
/// bits with random ones), so the keys are spread evenly however the peer behaves. A hostile
/// server only chooses the ids it *looks up*, and a lookup costs one probe sequence over those
/// evenly spread keys: it cannot build a collision chain, which is what SipHash guards against.
#[derive(Debug, Default)]
pub(crate) struct CallIdHasher(u64);

impl Hasher for CallIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u128(&mut self, id: u128) {
        self.0 ^= (id as u64) ^ ((id >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed; this keeps any other use correct (FNV-1a).
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Waiters = HashMap<u128, Waiter, BuildHasherDefault<CallIdHasher>>;

/// How a client writes the correlation ids of its requests. Either way the id is a fresh uuid v4
/// and a reply matches a call only when its `correlation_id` is the request's, byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CorrelationIds {
    /// 36 lowercase hyphenated characters, as pika's tutorial client writes `str(uuid.uuid4())`
    /// (the default: readable in logs and captures).
    #[default]
    UuidText,
    /// The uuid's 16 raw bytes, as RabbitMQ's Erlang tutorial client sends them: 20 bytes fewer
    /// in every request and every reply. Servers must echo the id byte for byte (ours and pika's
    /// do; one that decodes it as UTF-8 will not).
    UuidBinary,
}

impl CorrelationIds {
    /// A fresh uuid v4 and the correlation id that writes it in this format: 36 ASCII characters
    /// or 16 raw bytes, in the first `len` bytes of the array.
    pub(crate) fn fresh(self) -> (u128, [u8; 36], u8) {
        let uuid = Uuid::new_v4();
        let mut wire = [0u8; 36];
        let len = match self {
            CorrelationIds::UuidText => {
                wire = rpc_wire::uuid_text(uuid.as_u128());
                36
            }
            CorrelationIds::UuidBinary => {
                wire[..16].copy_from_slice(uuid.as_bytes());
                16
            }
        };
        (uuid.as_u128(), wire, len as u8)
    }

    /// The call id a reply's correlation id names in this format: anything that is not exactly
    /// the bytes this client writes (another spelling of the same uuid included) is not an echo
    /// of one of ours.
    pub(crate) fn parse(self, correlation_id: &[u8]) -> Option<u128> {
        match self {
            CorrelationIds::UuidText => parse_call_id(correlation_id),
            CorrelationIds::UuidBinary => correlation_id.try_into().ok().map(u128::from_be_bytes),
        }
    }
}

/// How many ids of calls that gave up (timed out or were dropped) are remembered, so that a
/// reply arriving for one of them is told apart from a reply nobody ever asked for.
const GIVEN_UP_MEMORY: usize = 4096;

/// The ids of the last [`GIVEN_UP_MEMORY`] calls that ended without their reply.
#[derive(Debug, Default)]
pub(crate) struct GivenUp {
    ids: std::collections::HashSet<u128>,
    order: std::collections::VecDeque<u128>,
}

impl GivenUp {
    pub(crate) fn remember(&mut self, id: u128) {
        if self.order.len() == GIVEN_UP_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        if self.ids.insert(id) {
            self.order.push_back(id);
        }
    }

    /// Whether `id` gave up (once: a second reply for it is a duplicate, counted as unknown).
    pub(crate) fn take(&mut self, id: u128) -> bool {
        self.ids.remove(&id)
    }
}

/// The correlation map and its counters.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    format: CorrelationIds,
    waiters: Mutex<Waiters>,
    given_up: Mutex<GivenUp>,
    late: AtomicU64,
    metrics: Option<Arc<crate::metrics::ClientMetrics>>,
    /// Set once the client can no longer receive replies; later calls fail at once with it.
    closed: Mutex<Option<RpcError>>,
    dropped: AtomicU64,
    answered: AtomicU64,
}

/// The call id a reply names: our ids are lowercase hyphenated uuids, so anything else (another
/// format of the same uuid included) is not an echo of one of ours.
fn parse_call_id(correlation_id: &[u8]) -> Option<u128> {
    if correlation_id.len() != 36 || correlation_id.iter().any(u8::is_ascii_uppercase) {
        return None;
    }
    Uuid::try_parse_ascii(correlation_id)
        .ok()
        .map(|u| u.as_u128())
}

impl Pending {
    /// An empty map for ids written as `format`, counting in `metrics` if given.
    pub(crate) fn new(
        format: CorrelationIds,
        metrics: Option<Arc<crate::metrics::ClientMetrics>>,
    ) -> Self {
        Pending {
            format,
            metrics,
            ..Pending::default()
        }
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters> {
        // A panic while holding the lock cannot leave the map inconsistent (every operation is
        // one insert or remove), so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call under a fresh uuid v4; the guard carries its correlation id and removes
    /// it again if the call ends without an answer.
    pub(crate) fn register(
        self: &Arc<Self>,
    ) -> Result<(PendingGuard, oneshot::Receiver<Result<Reply, RpcError>>), RpcError> {
        let (id, wire, len) = self.format.fresh();
        let (tx, rx) = oneshot::channel();
        {
            let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = closed.as_ref() {
                return Err(e.clone());
            }
            self.waiters().insert(id, tx);
        }
        Ok((
            PendingGuard {
                pending: Arc::clone(self),
                id,
                wire,
                len,
            },
            rx,
        ))
    }

    /// Hands a reply (or a returned request's error) to the caller whose correlation id it
    /// names. A reply nobody waits for is dropped and counted; returns whether a caller took it.
    pub(crate) fn complete(&self, correlation_id: &[u8], outcome: Result<Reply, RpcError>) -> bool {
        let id = self.format.parse(correlation_id);
        let waiter = id.and_then(|id| self.waiters().remove(&id));
        // A failed send means the caller's future was dropped between its last poll and now:
        // as late as a reply after a timeout.
        let taken = match waiter {
            Some(tx) => tx.send(outcome).is_ok(),
            None => false,
        };
        if taken {
            self.answered.fetch_add(1, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let late = id.is_some_and(|id| {
                self.given_up
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(id)
            });
            if late {
                self.late.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(m) = &self.metrics {
                m.dropped_reply(late);
            }
        }
        taken
    }

    /// Counts a reply that could not be matched at all (no correlation id).
    pub(crate) fn drop_unmatched(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.dropped_reply(false);
        }
    }

    /// Replies that came for a call after it had timed out or been dropped.
    pub(crate) fn late(&self) -> u64 {
        self.late.load(Ordering::Relaxed)
    }

    /// Fails every waiting call with `error` and every later one too.
    pub(crate) fn close(&self, error: RpcError) {
        let mut closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
        if closed.is_none() {
            *closed = Some(error.clone());
        }
        let waiters: Vec<Waiter> = self.waiters().drain().map(|(_, tx)| tx).collect();
        drop(closed);
        for tx in waiters {
            let _ = tx.send(Err(error.clone()));
        }
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.waiters().len()
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }
}

/// Removes a call from the map when the call ends by timeout, error or cancellation.
#[derive(Debug)]
pub(crate) struct PendingGuard {
    pending: Arc<Pending>,
    id: u128,
    /// The id as the request carries it, in its first `len` bytes: 36 ASCII characters or 16
    /// raw bytes ([`CorrelationIds`]).
    wire: [u8; 36],
    len: u8,
}

impl PendingGuard {
    /// The request's `correlation_id`, as it goes on the wire.
    pub(crate) fn correlation_id(&self) -> &[u8] {
        &self.wire[..usize::from(self.len)]
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        // Still waiting: the call gave up (timed out, or its future was dropped). A reply that
        // comes now is late, not unknown.
        if self.pending.waiters().remove(&self.id).is_some() {
            self.pending
                .given_up
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remember(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn uuid_text_is_the_uuid_crates_byte_for_byte() {
        for _ in 0..10_000 {
            let (call_id, wire, len) = CorrelationIds::UuidText.fresh();
            let uuid = Uuid::from_u128(call_id);
            assert_eq!(
                &wire[..usize::from(len)],
                uuid.hyphenated().to_string().as_bytes()
            );
            assert_eq!(CorrelationIds::UuidText.parse(&wire[..36]), Some(call_id));
        }
        for id in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210] {
            assert_eq!(
                &rpc_wire::uuid_text(id)[..],
                Uuid::from_u128(id).hyphenated().to_string().as_bytes()
            );
        }
    }

    fn reply(body: &'static str) -> Result<Reply, RpcError> {
        Ok(Reply {
            body: Bytes::from_static(body.as_bytes()),
            properties: Default::default(),
        })
    }

    fn id(guard: &PendingGuard) -> Vec<u8> {
        guard.correlation_id().to_vec()
    }

    #[tokio::test]
    async fn matches_by_id_and_drops_the_rest() {
        let pending = Arc::new(Pending::default());
        let (g1, rx1) = pending.register().unwrap();
        let (g2, rx2) = pending.register().unwrap();
        assert_ne!(g1.correlation_id(), g2.correlation_id());
        assert!(Uuid::try_parse_ascii(g1.correlation_id()).is_ok());
        assert!(pending.complete(&id(&g2), reply("2")));
        assert!(pending.complete(&id(&g1), reply("1")));
        assert_eq!(rx1.await.unwrap().unwrap().body, "1");
        assert_eq!(rx2.await.unwrap().unwrap().body, "2");
        // Already answered, and never asked.
        assert!(!pending.complete(&id(&g1), reply("1")));
        assert!(!pending.complete(b"zzz", reply("?")));
        assert_eq!(pending.dropped(), 2);
        assert_eq!(pending.answered(), 2);
    }

    #[tokio::test]
    async fn only_the_exact_id_matches() {
        let pending = Arc::new(Pending::default());
        let (g, mut rx) = pending.register().unwrap();
        let exact = String::from_utf8(g.correlation_id().to_vec()).unwrap();
        // The same uuid written another way is not an echo of the request's id.
        let other_forms = [
            exact.to_uppercase(),
            exact.replace('-', ""),
            format!("{{{exact}}}"),
            format!("urn:uuid:{exact}"),
            format!("{exact} "),
        ];
        for form in &other_forms {
            assert!(!pending.complete(form.as_bytes(), reply("x")), "{form}");
        }
        assert!(rx.try_recv().is_err());
        assert!(pending.complete(exact.as_bytes(), reply("ok")));
        assert_eq!(rx.await.unwrap().unwrap().body, "ok");
        assert_eq!(pending.dropped(), other_forms.len() as u64);
    }

    #[tokio::test]
    async fn binary_ids_are_the_uuids_16_bytes_and_match_only_exactly() {
        let pending = Arc::new(Pending::new(CorrelationIds::UuidBinary, None));
        let (g, mut rx) = pending.register().unwrap();
        let raw = g.correlation_id().to_vec();
        assert_eq!(raw.len(), 16);
        let uuid = Uuid::from_slice(&raw).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        // The text form of the same uuid, a prefix, or one more byte: not this call's id.
        let text = uuid.hyphenated().to_string();
        let mut longer = raw.clone();
        longer.push(0);
        for other in [text.as_bytes(), &raw[..15], &longer] {
            assert!(!pending.complete(other, reply("x")));
        }
        assert!(rx.try_recv().is_err());
        assert!(pending.complete(&raw, reply("ok")));
        assert_eq!(rx.await.unwrap().unwrap().body, "ok");
        // A text-format client does not take a binary id either.
        let text_client = Arc::new(Pending::default());
        let (g, _rx) = text_client.register().unwrap();
        let uuid = Uuid::try_parse_ascii(g.correlation_id()).unwrap();
        assert!(!text_client.complete(uuid.as_bytes(), reply("x")));
    }

    #[tokio::test]
    async fn late_replies_are_told_apart_from_unknown_ones() {
        let pending = Arc::new(Pending::default());
        let (guard, rx) = pending.register().unwrap();
        let late = id(&guard);
        drop((guard, rx));
        assert!(!pending.complete(&late, reply("x")));
        // The same id again is a duplicate: unknown. Never-asked ids are unknown.
        assert!(!pending.complete(&late, reply("x")));
        assert!(!pending.complete(b"never-asked", reply("x")));
        assert_eq!((pending.late(), pending.dropped()), (1, 3));
        // An answered call is not remembered as given up.
        let (g, rx) = pending.register().unwrap();
        let answered = id(&g);
        assert!(pending.complete(&answered, reply("ok")));
        drop((g, rx));
        assert!(!pending.complete(&answered, reply("again")));
        assert_eq!(pending.late(), 1);
    }

    #[tokio::test]
    async fn a_timed_out_call_leaves_the_map() {
        let pending = Arc::new(Pending::default());
        let (guard, rx) = pending.register().unwrap();
        let late = id(&guard);
        drop((guard, rx));
        assert_eq!(pending.in_flight(), 0);
        assert!(!pending.complete(&late, reply("x")));
        assert_eq!(pending.dropped(), 1);
    }

    #[tokio::test]
    async fn many_calls_in_flight_each_get_their_own_reply() {
        let pending = Arc::new(Pending::default());
        let calls: Vec<_> = (0..10_000).map(|_| pending.register().unwrap()).collect();
        assert_eq!(pending.in_flight(), 10_000);
        // Answer in reverse order; every caller gets the body naming its own id.
        for (guard, _) in calls.iter().rev() {
            let body = Bytes::copy_from_slice(guard.correlation_id());
            let outcome = Ok(Reply {
                body,
                properties: Default::default(),
            });
            assert!(pending.complete(&id(guard), outcome));
        }
        for (guard, rx) in calls {
            assert_eq!(rx.await.unwrap().unwrap().body, guard.correlation_id());
        }
        assert_eq!(pending.in_flight(), 0);
    }

    #[test]
    fn the_hasher_spreads_uuid_keys() {
        // Fold of the two halves: the fixed version/variant bits do not leave constant hash bits.
        let mut ones = [0u32; 64];
        for _ in 0..4096 {
            let mut h = CallIdHasher::default();
            h.write_u128(Uuid::new_v4().as_u128());
            let v = h.finish();
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += ((v >> bit) & 1) as u32;
            }
        }
        for (bit, &count) in ones.iter().enumerate() {
            assert!(
                (1500..2600).contains(&count),
                "hash bit {bit} set {count} times of 4096"
            );
        }
    }

    #[tokio::test]
    async fn close_fails_waiting_and_later_calls() {
        let pending = Arc::new(Pending::default());
        let (_g, rx) = pending.register().unwrap();
        pending.close(RpcError::Closed);
        assert!(matches!(rx.await.unwrap(), Err(RpcError::Closed)));
        assert!(matches!(pending.register(), Err(RpcError::Closed)));
    }
}
