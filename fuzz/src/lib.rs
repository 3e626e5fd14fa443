//! The properties the fuzz targets check, one module per target.
//!
//! Each module is self-contained (it uses only `amqp_codec` and `bytes`, `amqp_connection`, or
//! `amqp_dissect`), so that an ordinary test can include the same file with `#[path]` and replay
//! the committed corpus on stable Rust in CI: `amqp-codec/tests/fuzz_corpus.rs` for `frame` and
//! `table`, `amqp-connection/tests/fuzz_corpus.rs` for `connection`,
//! `amqp-dissect/tests/fuzz_corpus.rs` for `decode`.

pub mod connection;
pub mod decode;
pub mod frame;
pub mod table;
