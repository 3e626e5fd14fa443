//! The calls in flight: correlation id -> the waiting caller.
//!
//! One map per client, shared by the callers (who insert and, on timeout or cancellation, remove)
//! and the dispatch task (which removes and completes). A reply whose id is not in the map —
//! unknown, already answered, or answered after its call timed out — is dropped and counted:
//! tutorial six explains that a server may crash after replying and before acking, so a
//! restarted server answers the same request again, and the client must take that gracefully.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::{Reply, RpcError};

type Waiter = oneshot::Sender<Result<Reply, RpcError>>;

/// The correlation map and its counters.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    waiters: Mutex<HashMap<String, Waiter>>,
    /// Set once the client can no longer receive replies; later calls fail at once with it.
    closed: Mutex<Option<RpcError>>,
    dropped: AtomicU64,
    answered: AtomicU64,
}

impl Pending {
    fn waiters(&self) -> MutexGuard<'_, HashMap<String, Waiter>> {
        // A panic while holding the lock cannot leave the map inconsistent (every operation is
        // one insert or remove), so a poisoned lock is still usable.
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a call; the guard removes it again if the call ends without an answer.
    pub(crate) fn register(
        self: &Arc<Self>,
        correlation_id: String,
    ) -> Result<(PendingGuard, oneshot::Receiver<Result<Reply, RpcError>>), RpcError> {
        let (tx, rx) = oneshot::channel();
        {
            let closed = self.closed.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = closed.as_ref() {
                return Err(e.clone());
            }
            self.waiters().insert(correlation_id.clone(), tx);
        }
        Ok((
            PendingGuard {
                pending: Arc::clone(self),
                correlation_id,
            },
            rx,
        ))
    }

    /// Hands a reply (or a returned request's error) to its caller. A reply nobody waits for is
    /// dropped and counted; returns whether a caller took it.
    pub(crate) fn complete(&self, correlation_id: &str, outcome: Result<Reply, RpcError>) -> bool {
        let waiter = self.waiters().remove(correlation_id);
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
        }
        taken
    }

    /// Counts a reply that could not be matched at all (no correlation id).
    pub(crate) fn drop_unmatched(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
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
    correlation_id: String,
}

impl PendingGuard {
    pub(crate) fn correlation_id(&self) -> &str {
        &self.correlation_id
    }
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.pending.waiters().remove(&self.correlation_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn reply(body: &'static str) -> Result<Reply, RpcError> {
        Ok(Reply {
            body: Bytes::from_static(body.as_bytes()),
            properties: Default::default(),
        })
    }

    #[tokio::test]
    async fn matches_by_id_and_drops_the_rest() {
        let pending = Arc::new(Pending::default());
        let (_g1, rx1) = pending.register("a".into()).unwrap();
        let (_g2, rx2) = pending.register("b".into()).unwrap();
        assert!(pending.complete("b", reply("2")));
        assert!(pending.complete("a", reply("1")));
        assert_eq!(rx1.await.unwrap().unwrap().body, "1");
        assert_eq!(rx2.await.unwrap().unwrap().body, "2");
        // Already answered, and never asked.
        assert!(!pending.complete("a", reply("1")));
        assert!(!pending.complete("zzz", reply("?")));
        assert_eq!(pending.dropped(), 2);
        assert_eq!(pending.answered(), 2);
    }

    #[tokio::test]
    async fn a_timed_out_call_leaves_the_map() {
        let pending = Arc::new(Pending::default());
        let (guard, rx) = pending.register("late".into()).unwrap();
        drop((guard, rx));
        assert_eq!(pending.in_flight(), 0);
        assert!(!pending.complete("late", reply("x")));
        assert_eq!(pending.dropped(), 1);
    }

    #[tokio::test]
    async fn close_fails_waiting_and_later_calls() {
        let pending = Arc::new(Pending::default());
        let (_g, rx) = pending.register("a".into()).unwrap();
        pending.close(RpcError::Closed);
        assert!(matches!(rx.await.unwrap(), Err(RpcError::Closed)));
        assert!(matches!(
            pending.register("b".into()),
            Err(RpcError::Closed)
        ));
    }
}
