//! Class `channel` (20): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "channel" = 20;
    /// Client → broker: open a channel.
    ChannelOpen = 10, "open" [sync] {
        out_of_band: shortstr = "out-of-band": "shortstr",
    }
    /// Broker → client: the channel is open.
    ChannelOpenOk = 11, "open-ok" [] {
        channel_id: longstr = "channel-id": "longstr",
    }
    /// Either peer: ask the other to pause (`active = false`) or resume content flow.
    ChannelFlow = 20, "flow" [sync] {
        active: bit = "active": "bit",
    }
    /// Either peer: confirm a flow request.
    ChannelFlowOk = 21, "flow-ok" [] {
        active: bit = "active": "bit",
    }
    /// Either peer: close the channel, with the reason and the method that caused it.
    ChannelClose = 40, "close" [sync] {
        reply_code: short = "reply-code": "short",
        reply_text: shortstr = "reply-text": "shortstr",
        class_id: short = "class-id": "short",
        method_id: short = "method-id": "short",
    }
    /// Either peer: confirm a channel close.
    ChannelCloseOk = 41, "close-ok" [] {
    }
}
