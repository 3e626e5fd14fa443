//! `amqp-rpc decode` on arbitrary bytes as a capture file (pcap, pcapng) and as detected input:
//! the capture reader, link/IP/TCP layers, reassembly, frames and the printers. Nothing may panic.
#![no_main]

use amqp_rpc::decode::{decode_slice, DecodeArgs, FlowStyle, InputFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut args = DecodeArgs::new(Some(InputFormat::Pcap));
    let _ = decode_slice(data, &args);
    args.format = None;
    args.flow = Some(FlowStyle::Text);
    let _ = decode_slice(data, &args);
    args.flow = None;
    args.json = true;
    let _ = decode_slice(data, &args);
});
