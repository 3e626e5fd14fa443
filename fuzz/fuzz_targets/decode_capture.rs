//! The dissector on arbitrary bytes as a capture file (pcap, pcapng) and as detected input: the
//! capture reader, link/IP/TCP layers, reassembly and frames (checks in `src/decode.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| amqp_rpc_fuzz::decode::check_capture(data));
