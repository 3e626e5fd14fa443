//! Streaming decode: split points, need-more accounting, frame_max before buffering, message
//! splitting and reassembly, and errors that say what and where.

use amqp_codec::content::max_body_payload;
use amqp_codec::{
    check, encode_message, message_frames, Assembled, BasicDeliver, BasicProperties, BasicPublish,
    DecodeError, EncodeError, FieldTable, Frame, FrameDecoder, Message, MessageAssembler, Method,
    ProtocolHeader, Status,
};
use bytes::{Bytes, BytesMut};

fn sample_stream() -> (Vec<u8>, Vec<Frame>) {
    let frames = vec![
        Frame::ProtocolHeader(ProtocolHeader::AMQP_0_9_1),
        Frame::Method(
            1,
            BasicPublish {
                routing_key: "rpc_queue".into(),
                mandatory: true,
                ..Default::default()
            }
            .into(),
        ),
        Frame::Header(
            1,
            amqp_codec::ContentHeader::new(
                2,
                BasicProperties::default()
                    .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
                    .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw")
                    .with_headers(FieldTable::new().with("x-n", 7i32)),
            ),
        ),
        Frame::Body(1, Bytes::from_static(b"30")),
        Frame::Heartbeat,
        Frame::Method(
            2,
            amqp_codec::BasicAck {
                delivery_tag: 42,
                multiple: true,
            }
            .into(),
        ),
    ];
    let mut buf = BytesMut::new();
    for f in &frames {
        f.encode(&mut buf).unwrap();
    }
    (buf.to_vec(), frames)
}

fn drain(dec: &mut FrameDecoder, buf: &mut BytesMut, out: &mut Vec<Frame>) {
    loop {
        let before = buf.len();
        match dec.decode(buf).unwrap() {
            Some(f) => out.push(f),
            None => {
                assert_eq!(buf.len(), before, "need-more must consume nothing");
                return;
            }
        }
    }
}

#[test]
fn a_stream_split_at_every_byte_boundary_decodes_the_same() {
    let (bytes, frames) = sample_stream();
    for split in 0..=bytes.len() {
        let mut dec = FrameDecoder::default();
        let mut buf = BytesMut::from(&bytes[..split]);
        let mut out = Vec::new();
        drain(&mut dec, &mut buf, &mut out);
        buf.extend_from_slice(&bytes[split..]);
        drain(&mut dec, &mut buf, &mut out);
        assert!(buf.is_empty(), "split {split}: leftover");
        assert_eq!(out, frames, "split {split}");
    }
}

#[test]
fn byte_by_byte_feeding_decodes_the_same() {
    let (bytes, frames) = sample_stream();
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in bytes {
        buf.extend_from_slice(&[b]);
        drain(&mut dec, &mut buf, &mut out);
    }
    assert_eq!(out, frames);
}

#[test]
fn need_more_counts_exactly() {
    let (bytes, _) = sample_stream();
    // The first method frame starts after the 8-byte protocol header.
    let frame = &bytes[8..];
    let size = u32::from_be_bytes([frame[3], frame[4], frame[5], frame[6]]) as usize;
    let total = size + 8;
    for have in 0..total {
        let expect = if have < 7 { 7 - have } else { total - have };
        assert_eq!(
            check(&frame[..have], 131_072).unwrap(),
            Status::Incomplete(expect),
            "with {have} bytes"
        );
    }
    assert_eq!(
        check(&frame[..total], 131_072).unwrap(),
        Status::Complete(total)
    );
}

#[test]
fn oversize_frame_is_refused_from_its_header_before_buffering() {
    // Only the 7-byte header is present: a body frame claiming 1 GiB.
    let header = [3u8, 0, 1, 0x40, 0, 0, 0];
    let mut buf = BytesMut::from(&header[..]);
    let err = FrameDecoder::new(131_072).decode(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::FrameTooLarge {
            payload_size: 1 << 30,
            frame_size: (1 << 30) + 8,
            frame_max: 131_072
        }
    );
    assert_eq!(err.reply_code(), 501);
    assert_eq!(buf.len(), 7, "nothing consumed");
    // Exactly frame_max is allowed.
    let ok = [3u8, 0, 1, 0, 0, 0x0f, 0xf8];
    assert_eq!(check(&ok, 4096).unwrap(), Status::Incomplete(4096 - 7));
}

#[test]
fn unknown_frame_type_names_the_byte() {
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&[0x04u8][..]))
        .unwrap_err();
    assert_eq!(err, DecodeError::UnknownFrameType { found: 4 });
    assert!(err.to_string().contains("unknown frame type 4"), "{err}");
}

#[test]
fn bad_frame_end_names_offset_and_octet() {
    let mut bytes = BytesMut::new();
    Frame::Heartbeat.encode(&mut bytes).unwrap();
    bytes[7] = 0x00;
    let err = FrameDecoder::default().decode(&mut bytes).unwrap_err();
    assert_eq!(
        err,
        DecodeError::BadFrameEnd {
            offset: 7,
            found: 0
        }
    );
    assert!(
        err.to_string().contains("expected 0xce, found 0x00"),
        "{err}"
    );
}

#[test]
fn a_peers_other_protocol_header_is_a_version_mismatch() {
    let mut buf = BytesMut::from(&b"AMQP\x00\x01\x00\x00"[..]);
    let f = FrameDecoder::default().decode(&mut buf).unwrap().unwrap();
    let Frame::ProtocolHeader(h) = f else {
        panic!("{f:?}")
    };
    let err = h.check().unwrap_err();
    assert!(err.to_string().contains("AMQP 1.0"), "{err}");
    assert!(ProtocolHeader::AMQP_0_9_1.check().is_ok());
    // "AMQX" is no header at all.
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&b"AMQX"[..]))
        .unwrap_err();
    assert_eq!(err, DecodeError::UnknownFrameType { found: b'A' });
}

#[test]
fn truncated_method_says_which_argument_and_where() {
    // basic.publish whose routing-key claims 9 bytes but the payload ends after 3.
    let payload = [0u8, 60, 0, 40, 0, 0, 0, 9, b'r', b'p', b'c'];
    let mut bytes = vec![1u8, 0, 1];
    bytes.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    bytes.extend_from_slice(&payload);
    bytes.push(0xCE);
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap_err();
    assert_eq!(
        err,
        DecodeError::Truncated {
            offset: 15,
            expected: "routing-key",
            needed: 9,
            available: 3
        }
    );
    assert_eq!(err.reply_code(), 502);
}

#[test]
fn unknown_method_names_ids() {
    let payload = [0u8, 60, 0, 99];
    let mut bytes = vec![1u8, 0, 1, 0, 0, 0, 4];
    bytes.extend_from_slice(&payload);
    bytes.push(0xCE);
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&bytes[..]))
        .unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownMethod {
            class_id: 60,
            method_id: 99
        }
    );
}

#[test]
fn encode_errors_leave_the_buffer_untouched() {
    let mut buf = BytesMut::from(&b"prefix"[..]);
    let publish: Method = BasicPublish {
        routing_key: "k".repeat(256).into(),
        ..Default::default()
    }
    .into();
    let err = Frame::Method(1, publish.clone())
        .encode(&mut buf)
        .unwrap_err();
    assert_eq!(
        err,
        EncodeError::ShortStringTooLong {
            what: "routing-key",
            len: 256
        }
    );
    assert_eq!(&buf[..], b"prefix");
    let err = encode_message(
        &mut buf,
        1,
        &publish,
        &BasicProperties::default(),
        b"x",
        4096,
    )
    .unwrap_err();
    assert!(matches!(err, EncodeError::ShortStringTooLong { .. }));
    assert_eq!(&buf[..], b"prefix");
}

fn split_and_reassemble(body_len: usize, frame_max: u32) {
    let body: Vec<u8> = (0..body_len).map(|i| (i % 251) as u8).collect();
    let publish: Method = BasicPublish {
        routing_key: "q".into(),
        ..Default::default()
    }
    .into();
    let props = BasicProperties::default().with_correlation_id("id");
    let mut wire = BytesMut::new();
    encode_message(&mut wire, 3, &publish, &props, &body, frame_max).unwrap();

    let chunk = max_body_payload(frame_max).unwrap();
    let mut dec = FrameDecoder::new(frame_max);
    let mut asm = MessageAssembler::new(3);
    let mut bodies = 0;
    let mut done = None;
    while let Some(f) = dec.decode(&mut wire).unwrap() {
        if let Frame::Body(_, p) = &f {
            assert!(p.len() <= chunk && !p.is_empty());
            bodies += 1;
        }
        if let Some(Assembled::Message(m)) = asm.push(f).unwrap() {
            done = Some(m);
        }
    }
    assert_eq!(bodies, body_len.div_ceil(chunk), "body {body_len}");
    let Message {
        method,
        header,
        body: got,
    } = done.expect("message completed");
    assert_eq!(method, publish);
    assert_eq!(header.body_size, body_len as u64);
    assert_eq!(header.properties, props);
    assert_eq!(&got[..], &body[..]);
    assert!(asm.is_idle());
}

#[test]
fn messages_split_into_frame_max_sized_bodies_and_reassemble() {
    let c = 4096 - 8;
    for len in [0, 1, c - 1, c, c + 1, 2 * c, 2 * c + 1, 3 * 1024 * 1024] {
        split_and_reassemble(len, 4096);
    }
    split_and_reassemble(300 * 1024, 131_072);
    assert_eq!(
        max_body_payload(100),
        Err(EncodeError::FrameMaxTooSmall { frame_max: 100 })
    );
}

#[test]
fn message_frames_slice_the_body_without_copying() {
    let body = Bytes::from(vec![7u8; 10_000]);
    let frames = message_frames(
        1,
        BasicPublish::default().into(),
        BasicProperties::default(),
        body.clone(),
        4096,
    )
    .unwrap();
    assert_eq!(frames.len(), 2 + 3);
    let Frame::Body(_, first) = &frames[2] else {
        panic!()
    };
    assert_eq!(first.as_ptr(), body.as_ptr(), "zero-copy slice");
}

#[test]
fn decoded_bodies_are_slices_of_the_input() {
    let mut wire = BytesMut::new();
    Frame::Body(1, Bytes::from(vec![1u8; 1000]))
        .encode(&mut wire)
        .unwrap();
    let input = wire.freeze();
    let mut src = input.clone();
    let Some(Frame::Body(_, payload)) = FrameDecoder::default().decode_bytes(&mut src).unwrap()
    else {
        panic!()
    };
    assert_eq!(payload.as_ptr(), input[7..].as_ptr());
}

#[test]
fn out_of_order_content_is_unexpected_frame_505() {
    let mut asm = MessageAssembler::new(5);
    let err = asm
        .push(Frame::Body(5, Bytes::from_static(b"x")))
        .unwrap_err();
    assert_eq!(err.reply_code(), 505);
    asm.push(Frame::Method(5, BasicDeliver::default().into()))
        .unwrap();
    let err = asm
        .push(Frame::Method(5, BasicDeliver::default().into()))
        .unwrap_err();
    assert!(
        err.to_string().contains("expected a content header"),
        "{err}"
    );
    asm.push(Frame::Header(
        5,
        amqp_codec::ContentHeader::new(1, BasicProperties::default()),
    ))
    .unwrap();
    let err = asm
        .push(Frame::Body(5, Bytes::from_static(b"xy")))
        .unwrap_err();
    assert_eq!(err.reply_code(), 505);
}

#[test]
fn encode_publish_matches_encode_message_byte_for_byte() {
    let props = BasicProperties::default()
        .with_correlation_id("c1e5f310-0996-45fb-a3d8-bf2081cd891c")
        .with_reply_to("amq.gen-p169XGGXAjsVdvgeJjMlOw");
    for (mandatory, immediate) in [(false, false), (true, false), (false, true), (true, true)] {
        for body in [&b""[..], b"30", &[9u8; 9000][..]] {
            let mut a = BytesMut::new();
            amqp_codec::encode_publish(
                &mut a,
                7,
                "ex",
                "rpc_queue",
                mandatory,
                immediate,
                &props,
                body,
                4096,
            )
            .unwrap();
            let method: Method = BasicPublish {
                ticket: 0,
                exchange: "ex".into(),
                routing_key: "rpc_queue".into(),
                mandatory,
                immediate,
            }
            .into();
            let mut b = BytesMut::new();
            encode_message(&mut b, 7, &method, &props, body, 4096).unwrap();
            assert_eq!(a, b);
        }
    }
    let mut buf = BytesMut::new();
    let long = "k".repeat(300);
    let err = amqp_codec::encode_publish(&mut buf, 1, "", &long, false, false, &props, b"", 4096)
        .unwrap_err();
    assert!(matches!(
        err,
        EncodeError::ShortStringTooLong {
            what: "routing-key",
            ..
        }
    ));
    assert!(buf.is_empty());
}

/// tokio-util's convention: once a header announces a frame, the buffer is grown to hold all of it,
/// so the next read takes the rest at once.
#[test]
fn need_more_reserves_what_the_frame_needs() {
    let body = vec![7u8; 60_000];
    let mut wire = BytesMut::new();
    Frame::Body(1, Bytes::from(body)).encode(&mut wire).unwrap();
    let mut buf = BytesMut::with_capacity(16);
    buf.extend_from_slice(&wire[..10]);
    let mut dec = FrameDecoder::default();
    assert_eq!(dec.decode(&mut buf).unwrap(), None);
    assert_eq!(buf.len(), 10, "nothing consumed");
    assert!(
        buf.capacity() >= wire.len(),
        "capacity {} for a {}-byte frame",
        buf.capacity(),
        wire.len()
    );
}

/// A declared size alone never reserves more than the limit in force (here none: 128 KiB).
#[test]
fn reservation_is_bounded_without_a_frame_max() {
    let header = [3u8, 0, 1, 0x40, 0, 0, 0]; // a body frame claiming 1 GiB
    let mut buf = BytesMut::from(&header[..]);
    assert_eq!(FrameDecoder::new(0).decode(&mut buf).unwrap(), None);
    assert!(buf.capacity() < 1 << 20, "reserved {}", buf.capacity());
}

#[test]
fn decode_eof_returns_the_whole_frames_then_none() {
    let (bytes, frames) = sample_stream();
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = FrameDecoder::default();
    let mut out = Vec::new();
    while let Some(f) = dec.decode_eof(&mut buf).unwrap() {
        out.push(f);
    }
    assert_eq!(out, frames);
    assert_eq!(dec.decode_eof(&mut buf), Ok(None));
}

#[test]
fn decode_eof_names_the_partial_frame() {
    let (bytes, frames) = sample_stream();
    // The stream ends 12 bytes into the content header frame (channel 1).
    let mut at = 0;
    let mut sizes = Vec::new();
    for f in &frames {
        let mut b = BytesMut::new();
        f.encode(&mut b).unwrap();
        sizes.push((at, b.len()));
        at += b.len();
    }
    let (header_at, header_size) = sizes[2];
    let mut buf = BytesMut::from(&bytes[..header_at + 12]);
    let mut dec = FrameDecoder::default();
    assert!(matches!(
        dec.decode_eof(&mut buf),
        Ok(Some(Frame::ProtocolHeader(_)))
    ));
    assert!(matches!(
        dec.decode_eof(&mut buf),
        Ok(Some(Frame::Method(1, _)))
    ));
    let err = dec.decode_eof(&mut buf).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PartialFrame {
            frame: "content header frame",
            channel: Some(1),
            received: 12,
            size: Some(header_size as u64),
        }
    );
    assert_eq!(
        err.to_string(),
        format!("stream ended inside a content header frame on channel 1: 12 of {header_size} bytes received")
    );
    assert_eq!(err.reply_code(), 501);
    assert_eq!(buf.len(), 12, "the partial frame is left in the buffer");

    // Before the size is known: 3 bytes of a method frame, 5 of a protocol header.
    let err = dec
        .decode_eof(&mut BytesMut::from(&[1u8, 0, 2][..]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream ended inside a method frame: 3 of at least 7 bytes received"
    );
    let err = dec
        .decode_eof(&mut BytesMut::from(&b"AMQP\0"[..]))
        .unwrap_err();
    assert_eq!(
        err,
        DecodeError::PartialFrame {
            frame: "protocol header",
            channel: None,
            received: 5,
            size: Some(8),
        }
    );
}

#[test]
fn decode_errors_map_to_reply_codes() {
    use amqp_codec::ReplyCode;
    let err = FrameDecoder::default()
        .decode(&mut BytesMut::from(&[9u8, 0, 0, 0, 0, 0, 0, 0xCE][..]))
        .unwrap_err();
    assert_eq!(err.reply(), ReplyCode::FrameError);
    assert_eq!(err.reply().to_string(), "501 FRAME_ERROR");
    assert_eq!(err.reply_code(), u16::from(err.reply()));
}
