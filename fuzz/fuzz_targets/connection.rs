//! The sans-IO connection core (`amqp_connection::Connection`) after a handshake, fed arbitrary
//! broker bytes in arbitrary pieces with a simulated clock: see `fuzz/src/connection.rs` for the
//! input format and the checks, and `fuzz/README.md` for the runs' figures.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| amqp_rpc_fuzz::connection::check(data));
