//! Class `tx`: standard transactions (publishes and acks applied at commit).

use amqp_codec::{TxCommit, TxRollback, TxSelect};

use super::Channel;
use crate::error::Result;

impl Channel {
    /// `tx.select`: the channel becomes transactional.
    pub async fn tx_select(&self) -> Result<()> {
        self.call_method(TxSelect {}.into()).await.map(drop)
    }

    /// `tx.commit`: apply the publishes and acks since the last commit or rollback.
    pub async fn tx_commit(&self) -> Result<()> {
        self.call_method(TxCommit {}.into()).await.map(drop)
    }

    /// `tx.rollback`: discard them.
    pub async fn tx_rollback(&self) -> Result<()> {
        self.call_method(TxRollback {}.into()).await.map(drop)
    }
}
