//! `amqp-rpc`: the CLI's subcommands as a library, so tests and fuzz targets reach them.
#![forbid(unsafe_code)]

pub mod decode;
pub mod metrics;
