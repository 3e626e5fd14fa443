//! Class `access` (30): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "access" = 30;
    /// Deprecated access-ticket request (kept for old clients; RabbitMQ answers it trivially).
    AccessRequest = 10, "request" [sync] {
        realm: shortstr = "realm": "shortstr",
        exclusive: bit = "exclusive": "bit",
        passive: bit = "passive": "bit",
        active: bit = "active": "bit",
        write: bit = "write": "bit",
        read: bit = "read": "bit",
    }
    /// Deprecated access-ticket grant.
    AccessRequestOk = 11, "request-ok" [] {
        ticket: short = "ticket": "short",
    }
}
