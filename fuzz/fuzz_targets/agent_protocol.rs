//! The guest agent's protocol decoder: a stream of frames as the agent
//! (host requests) and the host (agent replies) read them, frame by frame
//! from a byte slice and through the blocking `read_frame` both sides use.
//! Every decoded message's lists are walked to the end, and the message
//! must encode back to exactly the bytes it was decoded from (the
//! encoding is canonical) and decode to the same message again.
#![no_main]

use hcs_agent_protocol::{decode_frame, read_frame, Message};
use libfuzzer_sys::fuzz_target;

/// Touch every element of every list the message borrows.
fn walk(msg: &Message<'_>) -> usize {
    match msg {
        Message::Hello(h) => h.versions.iter().count(),
        Message::CreateProcess(c) => c.args.iter().count() + c.env.iter().count(),
        Message::ProcessListReply(r) => r.processes.iter().map(|p| p.command_line.len()).sum(),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    // Frame by frame from a slice, as the no_std guest does.
    let mut rest = data;
    while let Ok((header, msg, used)) = decode_frame(rest) {
        let _ = walk(&msg);
        let frame = &rest[..used];
        match msg.encode_to_vec(header.version, header.request_id) {
            Ok(bytes) => {
                assert_eq!(bytes, frame, "{msg:?} does not encode to the bytes it came from");
                let (h2, m2, n2) = decode_frame(&bytes).expect("a re-encoded frame decodes");
                assert_eq!((h2, m2, n2), (header, msg, used));
            }
            Err(e) => panic!("{msg:?} was decoded but does not encode: {e:?}"),
        }
        rest = &rest[used..];
    }
    // Through std::io, as the host and the Linux agent do.
    let mut cursor = std::io::Cursor::new(data);
    let mut payload = Vec::new();
    while let Ok(Some(header)) = read_frame(&mut cursor, &mut payload) {
        if let Ok(msg) = Message::decode(&header, &payload) {
            let _ = walk(&msg);
        }
    }
});
