//! Every message encodes and decodes back to itself.

mod common;

use common::{samples, walk};
use hcs_agent_protocol::*;

#[test]
fn every_message_type_has_a_sample() {
    let types: Vec<MessageType> = samples().iter().map(|m| m.message_type()).collect();
    for code in 0..=u16::MAX {
        if let Some(t) = MessageType::from_u16(code) {
            assert_eq!(t as u16, code);
            assert!(types.contains(&t), "no sample for {t:?}");
        }
    }
}

#[test]
fn round_trip_every_message() {
    for (i, msg) in samples().iter().enumerate() {
        let id = 0x1122_3344_5566_7700 + i as u64;
        let bytes = msg.encode_to_vec(PROTOCOL_VERSION, id).unwrap();
        assert_eq!(bytes.len(), msg.frame_len().unwrap());
        let (header, decoded, used) = decode_frame(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        assert_eq!(header.request_id, id);
        assert_eq!(header.version, PROTOCOL_VERSION);
        assert_eq!(header.message_type(), Some(msg.message_type()));
        assert_eq!(&decoded, msg, "sample {i}");
        walk(&decoded);
        // A decoded (wire) view re-encodes to the same bytes.
        assert_eq!(decoded.encode_to_vec(PROTOCOL_VERSION, id).unwrap(), bytes);
    }
}

#[test]
fn header_layout_is_fixed() {
    let bytes = Message::WaitProcess(WaitProcess { pid: 0x0a0b0c0d })
        .encode_to_vec(PROTOCOL_VERSION, 0x0102030405060708)
        .unwrap();
    assert_eq!(
        bytes,
        [
            b'H', b'C', b'S', b'A', 2, 0, 0x05, 0x00, 8, 7, 6, 5, 4, 3, 2, 1, 4, 0, 0, 0, 0, 0, 0,
            0, 0x0d, 0x0c, 0x0b, 0x0a
        ]
    );
}

#[test]
fn encode_into_slice_never_overruns() {
    for msg in samples() {
        let len = msg.frame_len().unwrap();
        let mut buf = vec![0u8; len];
        for short in 0..len {
            assert_eq!(
                msg.encode(PROTOCOL_VERSION, 1, &mut buf[..short]),
                Err(EncodeError::BufferTooSmall)
            );
        }
        assert_eq!(msg.encode(PROTOCOL_VERSION, 1, &mut buf), Ok(len));
    }
}

#[test]
fn oversized_payload_is_refused_both_ways() {
    let big = vec![0u8; MAX_PAYLOAD as usize];
    let msg = Message::Error(ErrorReply {
        hresult: 1,
        message: &big,
    });
    assert_eq!(
        msg.encode_to_vec(PROTOCOL_VERSION, 1),
        Err(EncodeError::TooLarge)
    );
    let mut header = Message::Ok.encode_to_vec(PROTOCOL_VERSION, 1).unwrap();
    header[16..20].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    assert_eq!(Header::decode(&header), Err(DecodeError::PayloadTooLarge));
}

#[test]
fn versions_are_checked_except_for_the_handshake() {
    let hello = Message::Hello(Hello {
        versions: List::Slice(&[7, 9]),
        client: b"x",
    });
    let bytes = hello.encode_to_vec(9, 1).unwrap();
    assert!(
        decode_frame(&bytes).is_ok(),
        "Hello decodes whatever its header version"
    );
    let error = Message::Error(ErrorReply {
        hresult: 1,
        message: b"no",
    });
    assert!(
        decode_frame(&error.encode_to_vec(9, 1).unwrap()).is_ok(),
        "so is Error"
    );
    let bytes = Message::ProcessList.encode_to_vec(9, 1).unwrap();
    let err = decode_frame(&bytes).unwrap_err();
    assert_eq!(err, DecodeError::UnsupportedVersion);
    assert_eq!(err.hresult(), hresult::HCS_E_UNSUPPORTED_PROTOCOL_VERSION);
    assert_eq!(negotiate([1, 2, 3]), Some(2));
    assert_eq!(negotiate([1, 3]), None, "version 1 is no longer spoken");
}

#[test]
fn specific_decode_errors() {
    let mut bytes = Message::Ok.encode_to_vec(PROTOCOL_VERSION, 1).unwrap();
    bytes[0] = b'X';
    assert_eq!(decode_frame(&bytes).unwrap_err(), DecodeError::BadMagic);
    let mut bytes = Message::Ok.encode_to_vec(PROTOCOL_VERSION, 1).unwrap();
    bytes[6] = 0x77;
    assert_eq!(
        decode_frame(&bytes).unwrap_err(),
        DecodeError::UnknownMessageType
    );
    assert_eq!(
        DecodeError::UnknownMessageType.hresult(),
        hresult::HCS_E_UNKNOWN_MESSAGE
    );
    let mut bytes = Message::Ok.encode_to_vec(PROTOCOL_VERSION, 1).unwrap();
    bytes[23] = 1;
    assert_eq!(
        decode_frame(&bytes).unwrap_err(),
        DecodeError::ReservedNotZero
    );
    // Trailing byte inside the payload.
    let mut bytes = Message::WaitProcess(WaitProcess { pid: 1 })
        .encode_to_vec(PROTOCOL_VERSION, 1)
        .unwrap();
    bytes.push(0);
    bytes[16] = 5;
    assert_eq!(
        decode_frame(&bytes).unwrap_err(),
        DecodeError::TrailingBytes
    );
    // A list claiming 2^32-1 strings in a tiny payload.
    let mut bytes = Message::ProcessListReply(ProcessListReply {
        processes: List::Slice(&[]),
    })
    .encode_to_vec(PROTOCOL_VERSION, 1)
    .unwrap();
    bytes[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode_frame(&bytes).unwrap_err(),
        DecodeError::InvalidLength
    );
    // A bad tag.
    let mut bytes = Message::Shutdown(Shutdown {
        action: ShutdownAction::Reboot,
    })
    .encode_to_vec(PROTOCOL_VERSION, 1)
    .unwrap();
    bytes[24] = 2;
    assert_eq!(decode_frame(&bytes).unwrap_err(), DecodeError::InvalidTag);
    assert_eq!(
        DecodeError::InvalidTag.to_string(),
        "invalid tag or boolean value"
    );
}

#[test]
fn frame_io_reads_back_what_it_wrote() {
    let mut stream = Vec::new();
    for (i, msg) in samples().iter().enumerate() {
        write_frame(&mut stream, msg, PROTOCOL_VERSION, i as u64).unwrap();
    }
    let mut reader = std::io::Cursor::new(stream);
    let mut payload = Vec::new();
    for (i, msg) in samples().iter().enumerate() {
        let header = read_frame(&mut reader, &mut payload).unwrap().unwrap();
        assert_eq!(header.request_id, i as u64);
        assert_eq!(&Message::decode(&header, &payload).unwrap(), msg);
    }
    assert!(
        read_frame(&mut reader, &mut payload).unwrap().is_none(),
        "clean EOF"
    );
    let mut cut = std::io::Cursor::new(
        Message::Ok.encode_to_vec(PROTOCOL_VERSION, 1).unwrap()[..10].to_vec(),
    );
    assert!(matches!(
        read_frame(&mut cut, &mut payload),
        Err(FrameError::Io(_))
    ));
}
