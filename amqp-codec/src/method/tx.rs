//! Class `tx` (90): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "tx" = 90;
    /// Put the channel in transactional mode.
    TxSelect = 10, "select" [sync] {
    }
    /// The channel is transactional.
    TxSelectOk = 11, "select-ok" [] {
    }
    /// Commit the current transaction.
    TxCommit = 20, "commit" [sync] {
    }
    /// The transaction was committed.
    TxCommitOk = 21, "commit-ok" [] {
    }
    /// Abandon the current transaction.
    TxRollback = 30, "rollback" [sync] {
    }
    /// The transaction was rolled back.
    TxRollbackOk = 31, "rollback-ok" [] {
    }
}
