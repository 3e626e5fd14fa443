//! Replies to RabbitMQ direct reply-to addresses, on a connection of their own.
//!
//! A caller using direct reply-to gets `reply_to = amq.rabbitmq.reply-to.<pid>.<key>`, and the
//! worker publishes its reply to that name. RabbitMQ (measured on 3.10.8) closes the publishing
//! *connection* with 541 INTERNAL_ERROR when the encoded pid does not decode to one of its nodes
//! — so any client could kill a worker's connection, and with it the consumer and every request in
//! flight, by sending a forged `reply_to`; and since the request was not acked it would be
//! redelivered and kill the next worker too. Publishing those replies on a separate connection
//! confines the damage to that connection: the consumer lives on, the request is acked (it is
//! bad input, not a reason to retry), and the reply connection is opened again on next use.
//!
//! The reply connection is in confirm mode and a request is acked only after the broker
//! confirmed its reply: the ack travels on another connection than the reply, so TCP ordering no
//! longer guarantees that the broker saw the reply first.

use tokio::sync::Mutex;

use amqp_client::{Channel, Confirm, Connection, ConnectionConfig, Error};
use amqp_codec::BasicProperties;

/// Outcome of a reply to a direct reply-to address.
#[derive(Debug)]
pub(crate) enum DirectOutcome {
    /// The broker confirmed the reply.
    Delivered,
    /// The broker closed the reply connection on this reply: a forged or stale address.
    Refused(Error),
    /// The reply connection could not be opened (the broker is unreachable).
    Unavailable(Error),
}

/// The lazily opened reply connection.
#[derive(Debug)]
pub(crate) struct DirectReplies {
    /// The server's own connection settings (all of a cluster's addresses).
    config: ConnectionConfig,
    link: Mutex<Option<(Connection, Channel)>>,
}

impl DirectReplies {
    pub(crate) fn new(config: ConnectionConfig) -> Self {
        DirectReplies {
            config,
            link: Mutex::new(None),
        }
    }

    async fn channel(&self) -> Result<Channel, Error> {
        let mut link = self.link.lock().await;
        if let Some((conn, ch)) = link.as_ref() {
            if conn.error().is_none() && ch.status().is_ok() {
                return Ok(ch.clone());
            }
        }
        let conn = Connection::connect_with(self.config.clone()).await?;
        let ch = conn.open_channel().await?;
        ch.confirm_select().await?;
        *link = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// Publishes one reply and waits for the broker's confirm.
    pub(crate) async fn publish(
        &self,
        reply_to: &[u8],
        properties: &BasicProperties,
        body: &[u8],
    ) -> DirectOutcome {
        let channel = match self.channel().await {
            Ok(ch) => ch,
            Err(e) => return DirectOutcome::Unavailable(e),
        };
        let confirmed = match channel
            .basic_publish_confirmed(
                "",
                reply_to,
                amqp_client::BasicPublishOptions::default(),
                properties,
                body,
            )
            .await
        {
            Ok(confirmation) => confirmation.wait().await,
            Err(e) => Err(e),
        };
        match confirmed {
            Ok(Confirm::Ack) => DirectOutcome::Delivered,
            Ok(Confirm::Nack) => {
                DirectOutcome::Refused(Error::Protocol("broker nacked the reply".into()))
            }
            Err(e) => DirectOutcome::Refused(e),
        }
    }

    /// Closes the reply connection, if open.
    pub(crate) async fn close(&self) {
        if let Some((conn, _)) = self.link.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}
