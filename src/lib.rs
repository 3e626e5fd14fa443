//! `amqp-rpc`: the CLI's subcommands as a library, so tests and fuzz targets reach them.
#![forbid(unsafe_code)]

pub mod bench;
pub mod decode;
pub mod duration;
pub mod metrics;
pub mod record;
