//! AMQP URIs as RabbitMQ specifies them, and the connection settings they stand for (sans-IO).
//!
//! `amqp[s]://user:pass@host:port/vhost?heartbeat=10&frame_max=131072&channel_max=2047&connection_timeout=5000`
//!
//! RabbitMQ's URI spec: user name, password and vhost are percent-decoded (`%2f` is the vhost `/`,
//! which is why a `/` inside the vhost must be encoded); an absent or empty vhost means the default
//! vhost `/`; host and port default to `127.0.0.1:5672` (`5671` for `amqps`), credentials to
//! `guest`/`guest`. Query parameters follow RabbitMQ's: `heartbeat` in seconds,
//! `connection_timeout` in milliseconds, plus the Erlang client's TLS keys (`cacertfile`,
//! `certfile`, `keyfile`, `server_name_indication`).
//!
//! Errors quote the part of the URI that is wrong, except a password, which is never echoed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};

/// The broker tutorial six talks to, as a URI: guest/guest on the local host, vhost `/`.
pub const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Default port of `amqp://`.
pub const DEFAULT_PORT: u16 = 5672;
/// Default port of `amqps://`.
pub const DEFAULT_TLS_PORT: u16 = 5671;
/// Default host.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Default heartbeat proposal, in seconds (RabbitMQ's server default too).
pub const DEFAULT_HEARTBEAT: u16 = 60;
/// Default channel-max proposal (RabbitMQ's server default).
pub const DEFAULT_CHANNEL_MAX: u16 = 2047;
/// Default bound on connect + handshake.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A password: shown as `***` by `Debug`, never printed anywhere.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wrap a password.
    pub fn new(p: impl Into<String>) -> Self {
        Password(p.into())
    }
    /// The secret itself, for the SASL response only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The SASL mechanism used to authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMechanism {
    /// `PLAIN` (RFC 4616): `\0user\0password`.
    #[default]
    Plain,
    /// `AMQPLAIN`: a field table `{LOGIN: user, PASSWORD: password}` without its length prefix.
    AmqPlain,
}

impl AuthMechanism {
    /// The mechanism's name in `connection.start-ok`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMechanism::Plain => "PLAIN",
            AuthMechanism::AmqPlain => "AMQPLAIN",
        }
    }
}

/// TLS settings for `amqps://` endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// A PEM file of CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// A PEM client certificate chain, for mutual TLS (needs `key_file`).
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// The name to check the server certificate against, instead of the host.
    pub server_name: Option<String>,
}

/// One broker endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS (`amqps`).
    pub tls: bool,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Everything needed to open a connection. `Debug` shows the password as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// Endpoints tried in turn until one completes the handshake (a cluster).
    pub addresses: Vec<Address>,
    /// User name.
    pub username: String,
    /// Password.
    pub password: Password,
    /// Virtual host.
    pub vhost: String,
    /// Heartbeat proposal in seconds (0 = take the broker's).
    pub heartbeat: u16,
    /// `frame_max` proposal in bytes (0 = take the broker's).
    pub frame_max: u32,
    /// `channel_max` proposal (0 = take the broker's).
    pub channel_max: u16,
    /// Bound on TCP connect plus TLS plus the whole AMQP handshake, per address.
    pub connection_timeout: Duration,
    /// SASL mechanism.
    pub mechanism: AuthMechanism,
    /// TLS settings, used by `amqps` addresses.
    pub tls: TlsOptions,
    /// `connection_name` client property, shown by the management UI.
    pub connection_name: Option<String>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            addresses: vec![Address {
                host: DEFAULT_HOST.into(),
                port: DEFAULT_PORT,
                tls: false,
            }],
            username: "guest".into(),
            password: Password::new("guest"),
            vhost: "/".into(),
            heartbeat: DEFAULT_HEARTBEAT,
            frame_max: amqp_codec::DEFAULT_FRAME_MAX,
            channel_max: DEFAULT_CHANNEL_MAX,
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            mechanism: AuthMechanism::Plain,
            tls: TlsOptions::default(),
            connection_name: None,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidUri(msg.into())
}

fn decode(part: &str, what: &str, secret: bool) -> Result<String> {
    // percent_decode accepts a stray '%' verbatim; RabbitMQ's spec (RFC 3986) does not.
    let bytes = part.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%' {
            let ok = bytes
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(if secret {
                    invalid(format!("bad percent-encoding in the {what}"))
                } else {
                    invalid(format!("bad percent-encoding in the {what} {part:?}"))
                });
            }
        }
    }
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            if secret {
                invalid(format!("the {what} is not UTF-8 once percent-decoded"))
            } else {
                invalid(format!(
                    "the {what} {part:?} is not UTF-8 once percent-decoded"
                ))
            }
        })
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T> {
    value.parse().map_err(|_| {
        invalid(format!(
            "query parameter {key}={value:?} is not a valid number"
        ))
    })
}

impl ConnectionConfig {
    /// Parse one AMQP URI.
    pub fn parse(uri: &str) -> Result<Self> {
        let mut config = ConnectionConfig::default();
        let address = config.apply_uri(uri, true)?;
        config.addresses = vec![address];
        Ok(config)
    }

    /// Parse a list of URIs for a cluster: addresses are tried in the given order; credentials,
    /// vhost and parameters come from the first URI.
    pub fn parse_many<S: AsRef<str>>(uris: &[S]) -> Result<Self> {
        let Some((first, rest)) = uris.split_first() else {
            return Err(invalid("empty list of URIs"));
        };
        let mut config = ConnectionConfig::parse(first.as_ref())?;
        for uri in rest {
            let mut other = ConnectionConfig::default();
            let address = other.apply_uri(uri.as_ref(), false)?;
            config.addresses.push(address);
        }
        Ok(config)
    }

    /// Parse `uri` into `self`, returning its address. With `settings` false only the address
    /// is taken (the rest is still validated).
    fn apply_uri(&mut self, uri: &str, settings: bool) -> Result<Address> {
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| invalid("missing scheme: expected amqp:// or amqps://"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "amqp" => false,
            "amqps" => true,
            other => {
                return Err(invalid(format!(
                    "unknown scheme {other:?}: expected \"amqp\" or \"amqps\""
                )))
            }
        };
        // RFC 3986: a fragment ends the URI; RabbitMQ's URIs have none.
        if rest.contains('#') {
            return Err(invalid("fragment ('#...') not allowed in an AMQP URI"));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (before_query, None),
        };
        // The userinfo ends at the last '@' (an unencoded '@' in a password is a common mistake
        // that this keeps working); the host comes after.
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (host, port) = parse_hostport(hostport, tls)?;
        if let Some(userinfo) = userinfo {
            let (user, pass) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            let user = decode(user, "user name", false)?;
            let pass = pass.map(|p| decode(p, "password", true)).transpose()?;
            if settings {
                self.username = user;
                if let Some(p) = pass {
                    self.password = Password::new(p);
                }
            }
        }
        if let Some(path) = path {
            if path.contains('/') {
                return Err(invalid(format!(
                    "vhost {path:?} contains '/': encode it as %2f (the default vhost \"/\" is %2f or an empty path)"
                )));
            }
            let vhost = decode(path, "vhost", false)?;
            if settings {
                self.vhost = if vhost.is_empty() { "/".into() } else { vhost };
            }
        }
        if let Some(query) = query {
            let mut probe = self.clone();
            let target = if settings { self } else { &mut probe };
            target.apply_query(query)?;
        }
        Ok(Address { host, port, tls })
    }

    fn apply_query(&mut self, query: &str) -> Result<()> {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(raw, &format!("value of {key}"), false)?;
            match key {
                "heartbeat" => self.heartbeat = parse_number(key, &value)?,
                "frame_max" => {
                    let v: u32 = parse_number(key, &value)?;
                    // Spec: frame-max below FRAME-MIN-SIZE (4096) cannot be negotiated.
                    if v != 0 && v < amqp_codec::FRAME_MIN_SIZE {
                        return Err(invalid(format!(
                            "query parameter frame_max={value:?} is below the AMQP minimum 4096"
                        )));
                    }
                    self.frame_max = v;
                }
                "channel_max" => self.channel_max = parse_number(key, &value)?,
                "connection_timeout" => {
                    let ms: u64 = parse_number(key, &value)?;
                    if ms == 0 {
                        return Err(invalid("query parameter connection_timeout=\"0\" must be > 0"));
                    }
                    self.connection_timeout = Duration::from_millis(ms);
                }
                "auth_mechanism" => {
                    self.mechanism = match value.to_ascii_uppercase().as_str() {
                        "PLAIN" => AuthMechanism::Plain,
                        "AMQPLAIN" => AuthMechanism::AmqPlain,
                        _ => {
                            return Err(invalid(format!(
                                "query parameter auth_mechanism={value:?}: expected plain or amqplain"
                            )))
                        }
                    }
                }
                "connection_name" => self.connection_name = Some(value),
                "cacertfile" => self.tls.ca_file = Some(value.into()),
                "certfile" => self.tls.cert_file = Some(value.into()),
                "keyfile" => self.tls.key_file = Some(value.into()),
                "server_name_indication" => self.tls.server_name = Some(value),
                // Erlang-client keys whose behaviour is fixed here: peers are always verified.
                "verify" if value == "verify_peer" => {}
                "fail_if_no_peer_cert" => {}
                _ => {
                    return Err(invalid(format!(
                        "unknown query parameter {key:?} (known: heartbeat, frame_max, channel_max, connection_timeout, auth_mechanism, connection_name, cacertfile, certfile, keyfile, server_name_indication)"
                    )))
                }
            }
        }
        Ok(())
    }
}

fn parse_hostport(hostport: &str, tls: bool) -> Result<(String, u16)> {
    let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
    let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(format!("unclosed '[' in host {hostport:?}")))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid(format!("unexpected {p:?} after IPv6 address [{h}]")))?,
            ),
        };
        (h.to_string(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host", false)?, Some(p)),
            None => (decode(hostport, "host", false)?, None),
        }
    };
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| invalid(format!("port {p:?} is not a number in 1..=65535")))?,
    };
    let host = if host.is_empty() {
        DEFAULT_HOST.to_string()
    } else {
        host
    };
    Ok((host, port))
}

impl std::str::FromStr for ConnectionConfig {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ConnectionConfig::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = ConnectionConfig::parse("amqp://").unwrap();
        assert_eq!(c, ConnectionConfig::default());
        assert_eq!(c.addresses[0].to_string(), "127.0.0.1:5672");
        assert_eq!(c.vhost, "/");
        assert_eq!(c.username, "guest");
        assert_eq!(c.password.expose(), "guest");
    }

    #[test]
    fn rabbitmq_spec_examples() {
        // The examples of RabbitMQ's URI spec.
        let c = ConnectionConfig::parse("amqp://user:pass@host:10000/vhost").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose(), c.vhost.as_str()),
            ("user", "pass", "vhost")
        );
        assert_eq!(c.addresses[0].to_string(), "host:10000");
        let c = ConnectionConfig::parse("amqp://user%61:%61pass@ho%61st:10000/v%2fhost").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose(), c.vhost.as_str()),
            ("usera", "apass", "v/host")
        );
        assert_eq!(c.addresses[0].host, "hoast");
        let c = ConnectionConfig::parse("amqp://host").unwrap();
        assert_eq!(c.addresses[0].port, 5672);
        let c = ConnectionConfig::parse("amqp://:@/").unwrap();
        assert_eq!((c.username.as_str(), c.password.expose()), ("", ""));
        assert_eq!(c.vhost, "/");
        let c = ConnectionConfig::parse("amqp://user@").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.expose()),
            ("user", "guest")
        );
        let c = ConnectionConfig::parse("amqp://[::1]").unwrap();
        assert_eq!(c.addresses[0].host, "::1");
        assert_eq!(c.addresses[0].to_string(), "[::1]:5672");
        let c = ConnectionConfig::parse("amqp://[::1]:5673/%2f").unwrap();
        assert_eq!((c.addresses[0].port, c.vhost.as_str()), (5673, "/"));
    }

    #[test]
    fn amqps_default_port() {
        let c = ConnectionConfig::parse("amqps://localhost").unwrap();
        assert_eq!(
            c.addresses[0],
            Address {
                host: "localhost".into(),
                port: 5671,
                tls: true
            }
        );
    }

    #[test]
    fn query_parameters() {
        let c = ConnectionConfig::parse(
            "amqp://h/?heartbeat=5&frame_max=8192&channel_max=10&connection_timeout=2500&auth_mechanism=amqplain&connection_name=rpc%20client",
        )
        .unwrap();
        assert_eq!(c.heartbeat, 5);
        assert_eq!(c.frame_max, 8192);
        assert_eq!(c.channel_max, 10);
        assert_eq!(c.connection_timeout, Duration::from_millis(2500));
        assert_eq!(c.mechanism, AuthMechanism::AmqPlain);
        assert_eq!(c.connection_name.as_deref(), Some("rpc client"));
        let c = ConnectionConfig::parse(
            "amqps://h?cacertfile=/tmp/ca.pem&certfile=/tmp/c.pem&keyfile=/tmp/k.pem&server_name_indication=rabbit",
        )
        .unwrap();
        assert_eq!(
            c.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/tmp/ca.pem"))
        );
        assert_eq!(c.tls.server_name.as_deref(), Some("rabbit"));
    }

    #[test]
    fn errors_quote_the_bad_part() {
        let e = |u: &str| ConnectionConfig::parse(u).unwrap_err().to_string();
        assert!(e("http://h").contains("\"http\""), "{}", e("http://h"));
        assert!(e("localhost:5672").contains("missing scheme"));
        assert!(e("amqp://h:99999").contains("\"99999\""));
        assert!(e("amqp://h:abc").contains("\"abc\""));
        assert!(e("amqp://h/?heartbeat=ten").contains("heartbeat=\"ten\""));
        assert!(e("amqp://h/?frame_max=100").contains("frame_max=\"100\""));
        assert!(e("amqp://h/?bogus=1").contains("\"bogus\""));
        assert!(e("amqp://h/a/b").contains("\"a/b\""));
        assert!(e("amqp://h/%zz").contains("\"%zz\""));
        assert!(e("amqp://[::1/").contains("unclosed"));
    }

    #[test]
    fn password_never_shown() {
        let secret = "s3cr%zzet";
        let err = ConnectionConfig::parse(&format!("amqp://u:{secret}@h/"))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cr"), "{err}");
        assert!(err.contains("password"));
        let c = ConnectionConfig::parse("amqp://u:hunter2@h/").unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("***"));
    }

    #[test]
    fn cluster_list() {
        let c = ConnectionConfig::parse_many(&[
            "amqp://u:p@a:1/v?heartbeat=3",
            "amqp://b:2",
            "amqps://c",
        ])
        .unwrap();
        let addrs: Vec<String> = c.addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(addrs, ["a:1", "b:2", "c:5671"]);
        assert_eq!(
            (c.username.as_str(), c.vhost.as_str(), c.heartbeat),
            ("u", "v", 3)
        );
        assert!(ConnectionConfig::parse_many::<&str>(&[]).is_err());
        assert!(ConnectionConfig::parse_many(&["amqp://a", "amqp://b:x"]).is_err());
    }
}
