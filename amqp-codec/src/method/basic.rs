//! Class `basic` (60): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "basic" = 60;
    /// Set the prefetch window of the channel (or, with `global`, RabbitMQ: of the channel rather than per consumer).
    BasicQos = 10, "qos" [sync] {
        prefetch_size: long = "prefetch-size": "long",
        prefetch_count: short = "prefetch-count": "short",
        global: bit = "global": "bit",
    }
    /// The prefetch window was set.
    BasicQosOk = 11, "qos-ok" [] {
    }
    /// Start a consumer on a queue.
    BasicConsume = 20, "consume" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        consumer_tag: shortstr = "consumer-tag": "shortstr",
        no_local: bit = "no-local": "bit",
        no_ack: bit = "no-ack": "bit",
        exclusive: bit = "exclusive": "bit",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The consumer started: its tag.
    BasicConsumeOk = 21, "consume-ok" [] {
        consumer_tag: shortstr = "consumer-tag": "shortstr",
    }
    /// End a consumer (sent by RabbitMQ too, when the queue goes away and the client announced `consumer_cancel_notify`).
    BasicCancel = 30, "cancel" [sync] {
        consumer_tag: shortstr = "consumer-tag": "shortstr",
        nowait: bit = "nowait": "bit",
    }
    /// The consumer was cancelled.
    BasicCancelOk = 31, "cancel-ok" [] {
        consumer_tag: shortstr = "consumer-tag": "shortstr",
    }
    /// Publish a message (followed by a content header and body frames).
    BasicPublish = 40, "publish" [content] {
        ticket: short = "ticket": "short",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        mandatory: bit = "mandatory": "bit",
        immediate: bit = "immediate": "bit",
    }
    /// Broker → client: an unroutable `mandatory` message comes back (followed by its content).
    BasicReturn = 50, "return" [content] {
        reply_code: short = "reply-code": "short",
        reply_text: shortstr = "reply-text": "shortstr",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
    }
    /// Broker → client: a message for a consumer (followed by its content).
    BasicDeliver = 60, "deliver" [content] {
        consumer_tag: shortstr = "consumer-tag": "shortstr",
        delivery_tag: longlong = "delivery-tag": "longlong",
        redelivered: bit = "redelivered": "bit",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
    }
    /// Fetch one message from a queue synchronously.
    BasicGet = 70, "get" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        no_ack: bit = "no-ack": "bit",
    }
    /// The fetched message (followed by its content).
    BasicGetOk = 71, "get-ok" [content] {
        delivery_tag: longlong = "delivery-tag": "longlong",
        redelivered: bit = "redelivered": "bit",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        message_count: long = "message-count": "message-count",
    }
    /// The queue had no message to fetch.
    BasicGetEmpty = 72, "get-empty" [] {
        cluster_id: shortstr = "cluster-id": "shortstr",
    }
    /// Acknowledge one delivery, or all up to `delivery-tag` with `multiple`; from the broker, a publisher confirm.
    BasicAck = 80, "ack" [] {
        delivery_tag: longlong = "delivery-tag": "longlong",
        multiple: bit = "multiple": "bit",
    }
    /// Reject one delivery, requeuing it or not.
    BasicReject = 90, "reject" [] {
        delivery_tag: longlong = "delivery-tag": "longlong",
        requeue: bit = "requeue": "bit",
    }
    /// Deprecated: redeliver unacknowledged messages, without a reply.
    BasicRecoverAsync = 100, "recover-async" [] {
        requeue: bit = "requeue": "bit",
    }
    /// Redeliver all unacknowledged messages on the channel.
    BasicRecover = 110, "recover" [sync] {
        requeue: bit = "requeue": "bit",
    }
    /// The messages were recovered.
    BasicRecoverOk = 111, "recover-ok" [] {
    }
    /// Reject one or many deliveries (RabbitMQ extension); from the broker, a negative publisher confirm.
    BasicNack = 120, "nack" [] {
        delivery_tag: longlong = "delivery-tag": "longlong",
        multiple: bit = "multiple": "bit",
        requeue: bit = "requeue": "bit",
    }
}
