//! Class `confirm` (RabbitMQ extension): publisher confirms.

use amqp_codec::ConfirmSelect;

use super::Channel;
use crate::error::Result;

impl Channel {
    /// `confirm.select`: from now on every publish is confirmed by the broker; use
    /// [`basic_publish_confirmed`](Self::basic_publish_confirmed) to await a confirm. The core
    /// counts publishes from the moment the select is sent, so acks that overtake select-ok are
    /// understood.
    pub async fn confirm_select(&self) -> Result<()> {
        self.call_method(ConfirmSelect { nowait: false }.into())
            .await
            .map(drop)
    }
}
