//! The properties the fuzz targets check, one module per target.
//!
//! Each module is self-contained (it uses only `amqp_codec` and `bytes`, or `amqp_dissect`), so
//! that `amqp-codec/tests/fuzz_corpus.rs` and `amqp-dissect/tests/fuzz_corpus.rs` can include the
//! same file with `#[path]` and replay the committed corpus on stable Rust in CI.

pub mod decode;
pub mod frame;
pub mod table;
