//! Target `frame`: any byte stream through [`FrameDecoder`].
//!
//! For every input: decoding never panics and always ends (each frame consumes at least its 8-byte
//! envelope); the stream decoded from one buffer and the stream fed in small pieces give the same
//! frames and the same error; a small `frame_max` lets through exactly the frames that fit it and
//! refuses the first one that does not; and every decoded frame re-encodes to bytes that decode
//! to the same frame and re-encode to the same bytes.

use amqp_codec::{DecodeError, Frame, FrameDecoder, Status};
use bytes::{Bytes, BytesMut};

/// Small enough for fuzz-sized inputs to cross; the decoder takes any limit (4096 is only the
/// floor a peer may negotiate).
const SMALL_FRAME_MAX: u32 = 64;

/// Piece sizes for the streaming run: byte by byte, a frame header at a time, and a size that
/// falls on no field boundary.
const PIECES: [usize; 3] = [1, 7, 13];

/// Frames decoded (each with its size on the wire) and the error that stopped decoding, if any.
pub type Decoded = (Vec<(Frame, usize)>, Option<DecodeError>);

/// Run every check on one input.
pub fn check(data: &[u8]) {
    let (frames, error) = decode_whole(data, 0);
    let wire = Bytes::copy_from_slice(data);
    let mut at = 0;
    for (frame, size) in &frames {
        round_trip(frame, &wire.slice(at..at + size));
        at += size;
    }

    for piece in PIECES {
        let (streamed, streamed_error) = decode_pieces(data, 0, piece);
        assert_eq!(streamed.len(), frames.len(), "piece size {piece}");
        for ((a, a_size), (b, b_size)) in streamed.iter().zip(&frames) {
            assert!(same(a, b), "piece size {piece}: {a:?} != {b:?}");
            assert_eq!(a_size, b_size);
        }
        assert_eq!(streamed_error, error, "piece size {piece}");
    }

    let (small, small_error) = decode_whole(data, SMALL_FRAME_MAX);
    assert!(small.len() <= frames.len());
    for ((a, a_size), (b, _)) in small.iter().zip(&frames) {
        assert!(same(a, b));
        assert!(*a_size <= SMALL_FRAME_MAX as usize);
    }
    match small_error {
        Some(DecodeError::FrameTooLarge {
            frame_size,
            frame_max,
            ..
        }) => {
            assert_eq!(frame_max, SMALL_FRAME_MAX);
            assert!(frame_size > u64::from(SMALL_FRAME_MAX));
        }
        other => {
            assert_eq!(small.len(), frames.len());
            assert_eq!(other, error);
        }
    }
}

/// Decode all of `data` from one immutable buffer, as a capture reader does.
pub fn decode_whole(data: &[u8], frame_max: u32) -> Decoded {
    let mut src = Bytes::copy_from_slice(data);
    let mut decoder = FrameDecoder::new(frame_max);
    let mut frames = Vec::new();
    loop {
        let before = src.len();
        match decoder.decode_bytes(&mut src) {
            Ok(Some(frame)) => {
                let size = before - src.len();
                assert!(size >= 8, "a frame is at least 8 bytes, consumed {size}");
                frames.push((frame, size));
            }
            Ok(None) => {
                assert_eq!(src.len(), before, "need-more consumes nothing");
                return (frames, None);
            }
            Err(e) => return (frames, Some(e)),
        }
    }
}

/// Decode `data` arriving `piece` bytes at a time into a growing buffer, as a socket reader does.
pub fn decode_pieces(data: &[u8], frame_max: u32, piece: usize) -> Decoded {
    let mut buf = BytesMut::new();
    let mut decoder = FrameDecoder::new(frame_max);
    let mut frames = Vec::new();
    for chunk in data.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => frames.push((frame, before - buf.len())),
                Ok(None) => {
                    assert_eq!(buf.len(), before, "need-more consumes nothing");
                    match decoder.status(&buf) {
                        Ok(Status::Incomplete(n)) => assert!(n > 0),
                        other => panic!("decode said need more, status says {other:?}"),
                    }
                    break;
                }
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

/// `frame` (decoded from `wire`) encodes, the encoding decodes to the same frame, and that frame
/// encodes to the same bytes again. The re-encoding may be shorter than `wire` (a continuation
/// flags word carries nothing in basic), never longer.
pub fn round_trip(frame: &Frame, wire: &Bytes) {
    let mut first = BytesMut::new();
    frame.encode(&mut first).expect("a decoded frame encodes");
    assert!(
        first.len() <= wire.len(),
        "re-encoding grew {} -> {} bytes",
        wire.len(),
        first.len()
    );
    let mut src = first.clone().freeze();
    let again = FrameDecoder::new(0)
        .decode_bytes(&mut src)
        .expect("an encoded frame decodes")
        .expect("an encoded frame is whole");
    assert!(src.is_empty(), "an encoded frame is decoded exactly");
    assert!(same(&again, frame), "{again:?} != {frame:?}");
    let mut second = BytesMut::new();
    again.encode(&mut second).expect("a decoded frame encodes");
    assert_eq!(first, second, "encoding is stable");
}

/// Equal, counting a NaN float field as equal to itself.
pub fn same(a: &Frame, b: &Frame) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}
