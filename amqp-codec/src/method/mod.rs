//! Methods: one struct per method of every class RabbitMQ speaks, one file per class.
//!
//! Each class file lists its methods with `method_class!`, argument by argument in spec order, with
//! the spec's argument name and domain beside the Rust field. The macro writes the struct and its
//! decoder and encoder side by side, so the two cannot drift apart; [`Method`] is the enum over all
//! of them, dispatched on (class id, method id). The verbs are the crate's: [`Method::decode`] and
//! [`Method::encode`].
//!
//! Consecutive `bit` arguments share one octet, first bit in the least significant position (spec
//! 4.2.5.2); any other argument, or the end of the method, closes the octet.

use bytes::{BufMut, Bytes, BytesMut};

use crate::constants::FRAME_HEADER_SIZE;
use crate::error::{DecodeError, EncodeError};
use crate::wire::{Reader, Writer};

pub mod access;
pub mod basic;
pub mod channel;
pub mod confirm;
pub mod connection;
pub mod exchange;
pub mod queue;
pub mod tx;

pub use access::*;
pub use basic::*;
pub use channel::*;
pub use confirm::*;
pub use connection::*;
pub use exchange::*;
pub use queue::*;
pub use tx::*;

/// What the spec says about one method: ids, names, flags and arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodInfo {
    /// Class id, e.g. 60 for basic.
    pub class_id: u16,
    /// Method id within the class, e.g. 40 for publish.
    pub method_id: u16,
    /// Spec class name, e.g. `"basic"`.
    pub class_name: &'static str,
    /// Spec method name, e.g. `"publish"`.
    pub method_name: &'static str,
    /// The method expects a reply (`synchronous` in the spec).
    pub synchronous: bool,
    /// The method is followed by a content header and body frames.
    pub content: bool,
    /// `(spec argument name, spec domain)` in wire order.
    pub arguments: &'static [(&'static str, &'static str)],
}

macro_rules! arg_type {
    (bit) => {
        bool
    };
    (octet) => {
        u8
    };
    (short) => {
        u16
    };
    (long) => {
        u32
    };
    (longlong) => {
        u64
    };
    (timestamp) => {
        u64
    };
    (shortstr) => {
        $crate::wire::ShortString
    };
    (longstr) => {
        $crate::wire::LongString
    };
    (table) => {
        $crate::table::FieldTable
    };
}
pub(crate) use arg_type;

/// One argument's value, borrowed from a method: lets a dissector or a test walk any method's
/// arguments by spec name without matching on 66 structs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ArgValue<'a> {
    /// `bit`.
    Bit(bool),
    /// `octet`.
    Octet(u8),
    /// `short`.
    Short(u16),
    /// `long`.
    Long(u32),
    /// `longlong`.
    LongLong(u64),
    /// `timestamp`.
    Timestamp(u64),
    /// `shortstr`.
    ShortStr(&'a crate::wire::ShortString),
    /// `longstr`.
    LongStr(&'a crate::wire::LongString),
    /// `table`.
    Table(&'a crate::table::FieldTable),
}

macro_rules! arg_value {
    (bit, $v:expr) => {
        $crate::method::ArgValue::Bit($v)
    };
    (octet, $v:expr) => {
        $crate::method::ArgValue::Octet($v)
    };
    (short, $v:expr) => {
        $crate::method::ArgValue::Short($v)
    };
    (long, $v:expr) => {
        $crate::method::ArgValue::Long($v)
    };
    (longlong, $v:expr) => {
        $crate::method::ArgValue::LongLong($v)
    };
    (timestamp, $v:expr) => {
        $crate::method::ArgValue::Timestamp($v)
    };
    (shortstr, $v:expr) => {
        $crate::method::ArgValue::ShortStr(&$v)
    };
    (longstr, $v:expr) => {
        $crate::method::ArgValue::LongStr(&$v)
    };
    (table, $v:expr) => {
        $crate::method::ArgValue::Table(&$v)
    };
}
pub(crate) use arg_value;

macro_rules! read_arg {
    ($r:ident, bit, $n:literal) => {
        $r.bit($n)?
    };
    ($r:ident, octet, $n:literal) => {{
        $r.end_bits();
        $r.u8($n)?
    }};
    ($r:ident, short, $n:literal) => {{
        $r.end_bits();
        $r.u16($n)?
    }};
    ($r:ident, long, $n:literal) => {{
        $r.end_bits();
        $r.u32($n)?
    }};
    ($r:ident, longlong, $n:literal) => {{
        $r.end_bits();
        $r.u64($n)?
    }};
    ($r:ident, timestamp, $n:literal) => {{
        $r.end_bits();
        $r.u64($n)?
    }};
    ($r:ident, shortstr, $n:literal) => {{
        $r.end_bits();
        $r.short_string($n)?
    }};
    ($r:ident, longstr, $n:literal) => {{
        $r.end_bits();
        $r.long_string($n)?
    }};
    ($r:ident, table, $n:literal) => {{
        $r.end_bits();
        $crate::table::FieldTable::decode_from($r, $n)?
    }};
}
pub(crate) use read_arg;

macro_rules! write_arg {
    ($w:ident, bit, $v:expr, $n:literal) => {
        $w.bit($v)
    };
    ($w:ident, octet, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.u8($v)
    }};
    ($w:ident, short, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.u16($v)
    }};
    ($w:ident, long, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.u32($v)
    }};
    ($w:ident, longlong, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.u64($v)
    }};
    ($w:ident, timestamp, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.u64($v)
    }};
    ($w:ident, shortstr, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.short_string(&$v, $n)?
    }};
    ($w:ident, longstr, $v:expr, $n:literal) => {{
        $w.end_bits();
        $w.long_string(&$v, $n)?
    }};
    ($w:ident, table, $v:expr, $n:literal) => {{
        $w.end_bits();
        $v.encode_to($w.buf, $n)?
    }};
}
pub(crate) use write_arg;

macro_rules! is_sync {
    (sync) => {
        true
    };
    (content) => {
        false
    };
}
pub(crate) use is_sync;

macro_rules! is_content {
    (sync) => {
        false
    };
    (content) => {
        true
    };
}
pub(crate) use is_content;

/// Declares the methods of one class: for each, the struct (fields named after the spec's
/// arguments), its spec metadata, and its decoder and encoder side by side.
macro_rules! method_class {
    (
        class $class_name:literal = $class_id:literal;
        $(
            $(#[$doc:meta])*
            $name:ident = $method_id:literal, $method_name:literal [$($flag:ident)*] {
                $( $field:ident : $kind:ident = $arg:literal : $domain:literal, )*
            }
        )*
    ) => {
        $(
            $(#[$doc])*
            #[doc = ""]
            #[doc = concat!("Spec: `", $class_name, ".", $method_name, "` (class ", stringify!($class_id), ", method ", stringify!($method_id), ").")]
            #[derive(Debug, Clone, PartialEq, Default)]
            pub struct $name {
                $(
                    #[doc = concat!("Spec argument `", $arg, "` (domain `", $domain, "`).")]
                    pub $field: $crate::method::arg_type!($kind),
                )*
            }

            impl $name {
                /// Class id on the wire.
                pub const CLASS_ID: u16 = $class_id;
                /// Method id on the wire.
                pub const METHOD_ID: u16 = $method_id;
                /// The spec's description of this method.
                pub const INFO: $crate::method::MethodInfo = $crate::method::MethodInfo {
                    class_id: $class_id,
                    method_id: $method_id,
                    class_name: $class_name,
                    method_name: $method_name,
                    synchronous: false $(|| $crate::method::is_sync!($flag))*,
                    content: false $(|| $crate::method::is_content!($flag))*,
                    arguments: &[$(($arg, $domain)),*],
                };

                #[allow(unused_variables, clippy::redundant_field_names)]
                pub(crate) fn decode_from(r: &mut $crate::wire::Reader<'_>) -> Result<Self, $crate::error::DecodeError> {
                    Ok($name {
                        $( $field: $crate::method::read_arg!(r, $kind, $arg), )*
                    })
                }

                /// The arguments in wire order, by spec name.
                pub fn arguments(&self) -> Vec<(&'static str, $crate::method::ArgValue<'_>)> {
                    vec![$( ($arg, $crate::method::arg_value!($kind, self.$field)), )*]
                }

                #[allow(unused_variables)]
                pub(crate) fn encode_to(&self, w: &mut $crate::wire::Writer<'_>) -> Result<(), $crate::error::EncodeError> {
                    $( $crate::method::write_arg!(w, $kind, self.$field, $arg); )*
                    Ok(())
                }
            }

            impl From<$name> for $crate::method::Method {
                fn from(m: $name) -> Self {
                    $crate::method::Method::$name(m)
                }
            }
        )*
    };
}
pub(crate) use method_class;

macro_rules! method_enum {
    ($($variant:ident,)*) => {
        /// Any method of any class, as carried by a method frame.
        #[derive(Debug, Clone, PartialEq)]
        #[allow(missing_docs)]
        pub enum Method {
            $( $variant($variant), )*
        }

        /// Every method the codec knows, in spec order.
        pub const ALL_METHODS: &[MethodInfo] = &[$( $variant::INFO, )*];

        impl Method {
            /// The spec's description of this method.
            pub fn info(&self) -> &'static MethodInfo {
                match self {
                    $( Method::$variant(_) => &$variant::INFO, )*
                }
            }

            /// The arguments in wire order, by spec name.
            pub fn arguments(&self) -> Vec<(&'static str, ArgValue<'_>)> {
                match self {
                    $( Method::$variant(m) => m.arguments(), )*
                }
            }

            fn decode_arguments(class_id: u16, method_id: u16, r: &mut Reader<'_>) -> Result<Method, DecodeError> {
                Ok(match (class_id, method_id) {
                    $( ($variant::CLASS_ID, $variant::METHOD_ID) => Method::$variant($variant::decode_from(r)?), )*
                    _ => return Err(DecodeError::UnknownMethod { class_id, method_id }),
                })
            }

            fn encode_arguments(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                match self {
                    $( Method::$variant(m) => m.encode_to(w), )*
                }
            }
        }
    };
}

method_enum! {
    ConnectionStart, ConnectionStartOk, ConnectionSecure, ConnectionSecureOk, ConnectionTune,
    ConnectionTuneOk, ConnectionOpen, ConnectionOpenOk, ConnectionClose, ConnectionCloseOk,
    ConnectionBlocked, ConnectionUnblocked, ConnectionUpdateSecret, ConnectionUpdateSecretOk,
    ChannelOpen, ChannelOpenOk, ChannelFlow, ChannelFlowOk, ChannelClose, ChannelCloseOk,
    AccessRequest, AccessRequestOk,
    ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete, ExchangeDeleteOk, ExchangeBind,
    ExchangeBindOk, ExchangeUnbind, ExchangeUnbindOk,
    QueueDeclare, QueueDeclareOk, QueueBind, QueueBindOk, QueuePurge, QueuePurgeOk, QueueDelete,
    QueueDeleteOk, QueueUnbind, QueueUnbindOk,
    BasicQos, BasicQosOk, BasicConsume, BasicConsumeOk, BasicCancel, BasicCancelOk, BasicPublish,
    BasicReturn, BasicDeliver, BasicGet, BasicGetOk, BasicGetEmpty, BasicAck, BasicReject,
    BasicRecoverAsync, BasicRecover, BasicRecoverOk, BasicNack,
    TxSelect, TxSelectOk, TxCommit, TxCommitOk, TxRollback, TxRollbackOk,
    ConfirmSelect, ConfirmSelectOk,
}

impl Method {
    /// Class id on the wire.
    pub fn class_id(&self) -> u16 {
        self.info().class_id
    }
    /// Method id on the wire.
    pub fn method_id(&self) -> u16 {
        self.info().method_id
    }
    /// True when a content header and body frames follow this method.
    pub fn has_content(&self) -> bool {
        self.info().content
    }

    /// Decode a method frame's payload: class id, method id, arguments. `payload` is the frame
    /// payload (byte 7 of the frame onwards, without the frame-end); strings and tables are
    /// zero-copy slices of it.
    pub fn decode(payload: &Bytes) -> Result<Method, DecodeError> {
        Method::decode_from(&mut Reader::new(payload, FRAME_HEADER_SIZE))
    }

    /// [`Method::decode`] from a reader over exactly the payload.
    pub(crate) fn decode_from(r: &mut Reader<'_>) -> Result<Method, DecodeError> {
        let class_id = r.u16("class id")?;
        let method_id = r.u16("method id")?;
        let method = Method::decode_arguments(class_id, method_id, r)?;
        r.finish(method.info().method_name)?;
        Ok(method)
    }

    /// Append the method frame payload (class id, method id, arguments).
    pub fn encode(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let info = self.info();
        buf.put_u16(info.class_id);
        buf.put_u16(info.method_id);
        self.encode_arguments(&mut Writer::new(buf))
    }
}

#[cfg(test)]
mod arguments_tests {
    use super::*;

    #[test]
    fn arguments_follow_the_spec_table_for_every_method() {
        for info in ALL_METHODS {
            let mut payload = BytesMut::new();
            payload.put_u16(info.class_id);
            payload.put_u16(info.method_id);
            // Zeroes decode as any method's arguments: empty strings, empty tables, false bits.
            payload.put_bytes(0, 64);
            let payload = payload.freeze();
            let mut r = Reader::new(&payload, 0);
            r.u16("class id").unwrap();
            r.u16("method id").unwrap();
            let m = Method::decode_arguments(info.class_id, info.method_id, &mut r).unwrap();
            let names: Vec<_> = m.arguments().iter().map(|(n, _)| *n).collect();
            let spec: Vec<_> = info.arguments.iter().map(|(n, _)| *n).collect();
            assert_eq!(names, spec, "{}.{}", info.class_name, info.method_name);
        }
    }

    #[test]
    fn arguments_carry_the_values() {
        let m: Method = BasicPublish {
            routing_key: "rpc_queue".into(),
            mandatory: true,
            ..Default::default()
        }
        .into();
        let args = m.arguments();
        assert_eq!(args[0], ("ticket", ArgValue::Short(0)));
        assert!(
            matches!(args[2], ("routing-key", ArgValue::ShortStr(s)) if s.as_bytes() == b"rpc_queue")
        );
        assert_eq!(args[3], ("mandatory", ArgValue::Bit(true)));
        assert_eq!(args[4], ("immediate", ArgValue::Bit(false)));
    }
}
