//! Class `exchange` (40): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "exchange" = 40;
    /// Create an exchange, or check it exists (`passive`).
    ExchangeDeclare = 10, "declare" [sync] {
        ticket: short = "ticket": "short",
        exchange: shortstr = "exchange": "exchange-name",
        kind: shortstr = "type": "shortstr",
        passive: bit = "passive": "bit",
        durable: bit = "durable": "bit",
        auto_delete: bit = "auto-delete": "bit",
        internal: bit = "internal": "bit",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The exchange was declared.
    ExchangeDeclareOk = 11, "declare-ok" [] {
    }
    /// Delete an exchange.
    ExchangeDelete = 20, "delete" [sync] {
        ticket: short = "ticket": "short",
        exchange: shortstr = "exchange": "exchange-name",
        if_unused: bit = "if-unused": "bit",
        nowait: bit = "nowait": "bit",
    }
    /// The exchange was deleted.
    ExchangeDeleteOk = 21, "delete-ok" [] {
    }
    /// Bind an exchange to an exchange (RabbitMQ extension).
    ExchangeBind = 30, "bind" [sync] {
        ticket: short = "ticket": "short",
        destination: shortstr = "destination": "exchange-name",
        source: shortstr = "source": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The exchange-to-exchange binding was made.
    ExchangeBindOk = 31, "bind-ok" [] {
    }
    /// Remove an exchange-to-exchange binding (RabbitMQ extension).
    ExchangeUnbind = 40, "unbind" [sync] {
        ticket: short = "ticket": "short",
        destination: shortstr = "destination": "exchange-name",
        source: shortstr = "source": "exchange-name",
        routing_key: shortstr = "routing-key": "shortstr",
        nowait: bit = "nowait": "bit",
        arguments: table = "arguments": "table",
    }
    /// The exchange-to-exchange binding was removed.
    ExchangeUnbindOk = 51, "unbind-ok" [] {
    }
}
