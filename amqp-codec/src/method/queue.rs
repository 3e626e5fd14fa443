//! Class `queue` (50): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "queue" = 50;
    /// Create a queue (an empty name asks the broker to name it), or check it exists (`passive`).
    QueueDeclare = 10, "declare" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        passive: bit = "passive": "bit",
        durable: bit = "durable": "bit",
        exclusive: bit = "exclusive": "bit",
        auto_delete: bit = "auto-delete": "bit",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The queue was declared: its name, ready messages and consumers.
    QueueDeclareOk = 11, "declare-ok" [] {
        queue: shortstr = "queue": "queue-name",
        message_count: long = "message-count": "message-count",
        consumer_count: long = "consumer-count": "long",
    }
    /// Bind a queue to an exchange.
    QueueBind = 20, "bind" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The binding was made.
    QueueBindOk = 21, "bind-ok" [] {
    }
    /// Remove all ready messages from a queue.
    QueuePurge = 30, "purge" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        nowait: bit = "nowait": "bit",
    }
    /// The queue was purged: how many messages went.
    QueuePurgeOk = 31, "purge-ok" [] {
        message_count: long = "message-count": "message-count",
    }
    /// Delete a queue.
    QueueDelete = 40, "delete" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        if_unused: bit = "if-unused": "bit",
        if_empty: bit = "if-empty": "bit",
        nowait: bit = "nowait": "bit",
    }
    /// The queue was deleted: how many messages went with it.
    QueueDeleteOk = 41, "delete-ok" [] {
        message_count: long = "message-count": "message-count",
    }
    /// Remove a queue binding.
    QueueUnbind = 50, "unbind" [sync] {
        ticket: short = "ticket": "short",
        queue: shortstr = "queue": "queue-name",
        exchange: shortstr = "exchange": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        arguments: table = "arguments": "table",
    }
    /// The binding was removed.
    QueueUnbindOk = 51, "unbind-ok" [] {
    }
}
