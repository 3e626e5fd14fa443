//! Target `table`: any bytes as the body of a field table, through the public frame API.
//!
//! The input is wrapped, with its true length, as the `arguments` table of a `queue.declare`
//! method frame and as the `headers` property of a content header frame. Either it decodes, and
//! the frame then round-trips (see [`round_trip`]), or it fails with a 502 syntax error pointing
//! inside the table; never a panic.

use amqp_codec::{error::SYNTAX_ERROR, Frame, FrameDecoder, Method};
use bytes::{BufMut, BytesMut};

use super::frame::round_trip;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_END: u8 = 0xCE;
/// Property flag of `headers`.
const HEADERS: u16 = 1 << 13;

/// Run every check on one input.
pub fn check(data: &[u8]) {
    let Ok(len) = u32::try_from(data.len()) else {
        return;
    };

    // queue.declare: class 50, method 10, ticket, queue "q", the five bits, arguments.
    let mut payload = BytesMut::new();
    payload.put_u16(50);
    payload.put_u16(10);
    payload.put_u16(0);
    payload.put_slice(&[1, b'q', 0]);
    let table_at = 7 + payload.len();
    payload.put_u32(len);
    payload.put_slice(data);
    let decoded = decode_one(FRAME_METHOD, &payload, table_at, data.len());
    if let Some(Frame::Method(_, m)) = &decoded {
        assert!(matches!(m, Method::QueueDeclare(_)), "{m:?}");
    }

    // A content header: class 60, weight 0, body size 0, flags = headers, the table.
    let mut payload = BytesMut::new();
    payload.put_u16(60);
    payload.put_u16(0);
    payload.put_u64(0);
    payload.put_u16(HEADERS);
    let table_at = 7 + payload.len();
    payload.put_u32(len);
    payload.put_slice(data);
    let decoded = decode_one(FRAME_HEADER, &payload, table_at, data.len());
    if let Some(Frame::Header(_, h)) = &decoded {
        assert!(h.properties.headers.is_some());
    }
}

/// Frame `payload` as one frame of `kind` on channel 1 and decode it: a frame that round-trips,
/// or a syntax error within the table (which starts at `table_at` in the frame).
fn decode_one(kind: u8, payload: &[u8], table_at: usize, table_len: usize) -> Option<Frame> {
    let mut wire = BytesMut::with_capacity(payload.len() + 8);
    wire.put_u8(kind);
    wire.put_u16(1);
    wire.put_u32(u32::try_from(payload.len()).ok()?);
    wire.put_slice(payload);
    wire.put_u8(FRAME_END);
    let wire = wire.freeze();
    let mut src = wire.clone();
    match FrameDecoder::new(0).decode_bytes(&mut src) {
        Ok(Some(frame)) => {
            assert!(src.is_empty());
            round_trip(&frame, &wire);
            Some(frame)
        }
        Ok(None) => panic!("a whole frame was taken for a partial one"),
        Err(e) => {
            assert_eq!(e.reply_code(), SYNTAX_ERROR, "{e}");
            // The table's length prefix was true, so the error lies within its bytes.
            let offset = e.offset();
            assert!(
                offset >= table_at + 4 && offset <= table_at + 4 + table_len,
                "error offset {offset} outside the table at {table_at}..: {e}"
            );
            None
        }
    }
}
