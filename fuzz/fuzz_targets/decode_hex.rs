//! `amqp-rpc decode` on arbitrary text: the hex-dump parser (every dump shape), then packets,
//! TCP reassembly, frames and every printer. Nothing may panic.
#![no_main]

use amqp_rpc::decode::{decode_slice, hexdump, DecodeArgs, InputFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = hexdump::parse(&text);
    let mut args = DecodeArgs::new(Some(InputFormat::Hex));
    let _ = decode_slice(data, &args);
    args.json = true;
    let _ = decode_slice(data, &args);
    args.json = false;
    args.raw = true;
    args.summary = true;
    let _ = decode_slice(data, &args);
});
