//! The dissector on arbitrary text: the hex-dump parser (every dump shape), then packets, TCP
//! reassembly and frames, and the same bytes as a raw AMQP stream (checks in `src/decode.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| amqp_rpc_fuzz::decode::check_hex(data));
