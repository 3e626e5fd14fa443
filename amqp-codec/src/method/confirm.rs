//! Class `confirm` (85): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "confirm" = 85;
    /// Put the channel in publisher-confirm mode (RabbitMQ extension).
    ConfirmSelect = 10, "select" [sync] {
        nowait: bit = "nowait": "bit",
    }
    /// Publisher confirms are on.
    ConfirmSelectOk = 11, "select-ok" [] {
    }
}
