//! Class `connection` (10): its methods, argument for argument as in the spec.

use crate::method::method_class;

method_class! {
    class "connection" = 10;
    /// Broker → client: start the handshake, offering versions, SASL mechanisms and locales.
    ConnectionStart = 10, "start" [sync] {
        version_major: octet = "version-major": "octet",
        version_minor: octet = "version-minor": "octet",
        server_properties: table = "server-properties": "peer-properties",
        mechanisms: longstr = "mechanisms": "longstr",
        locales: longstr = "locales": "longstr",
    }
    /// Client → broker: choose a mechanism and locale and send the SASL response.
    ConnectionStartOk = 11, "start-ok" [] {
        client_properties: table = "client-properties": "peer-properties",
        mechanism: shortstr = "mechanism": "shortstr",
        response: longstr = "response": "longstr",
        locale: shortstr = "locale": "shortstr",
    }
    /// Broker → client: a further SASL challenge.
    ConnectionSecure = 20, "secure" [sync] {
        challenge: longstr = "challenge": "longstr",
    }
    /// Client → broker: the response to a SASL challenge.
    ConnectionSecureOk = 21, "secure-ok" [] {
        response: longstr = "response": "longstr",
    }
    /// Broker → client: proposed channel-max, frame-max and heartbeat.
    ConnectionTune = 30, "tune" [sync] {
        channel_max: short = "channel-max": "short",
        frame_max: long = "frame-max": "long",
        heartbeat: short = "heartbeat": "short",
    }
    /// Client → broker: the negotiated channel-max, frame-max and heartbeat.
    ConnectionTuneOk = 31, "tune-ok" [] {
        channel_max: short = "channel-max": "short",
        frame_max: long = "frame-max": "long",
        heartbeat: short = "heartbeat": "short",
    }
    /// Client → broker: open a virtual host.
    ConnectionOpen = 40, "open" [sync] {
        virtual_host: shortstr = "virtual-host": "shortstr",
        capabilities: shortstr = "capabilities": "shortstr",
        insist: bit = "insist": "bit",
    }
    /// Broker → client: the virtual host is open.
    ConnectionOpenOk = 41, "open-ok" [] {
        known_hosts: shortstr = "known-hosts": "shortstr",
    }
    /// Either peer: close the connection, with the reason and the method that caused it.
    ConnectionClose = 50, "close" [sync] {
        reply_code: short = "reply-code": "short",
        reply_text: shortstr = "reply-text": "shortstr",
        class_id: short = "class-id": "short",
        method_id: short = "method-id": "short",
    }
    /// Either peer: confirm a connection close.
    ConnectionCloseOk = 51, "close-ok" [] {
    }
    /// Broker → client: publishing is blocked (RabbitMQ extension, e.g. memory alarm).
    ConnectionBlocked = 60, "blocked" [] {
        reason: shortstr = "reason": "shortstr",
    }
    /// Broker → client: publishing is no longer blocked (RabbitMQ extension).
    ConnectionUnblocked = 61, "unblocked" [] {
    }
    /// Client → broker: replace the credentials (e.g. an expiring OAuth token) (RabbitMQ extension).
    ConnectionUpdateSecret = 70, "update-secret" [sync] {
        new_secret: longstr = "new-secret": "longstr",
        reason: shortstr = "reason": "shortstr",
    }
    /// Broker → client: the secret was updated (RabbitMQ extension).
    ConnectionUpdateSecretOk = 71, "update-secret-ok" [] {
    }
}
