//! Arbitrary bytes as a channel byte stream, delivered in arbitrary chunks: the frame reader and
//! the decoder must never panic, and every message that decodes must survive re-encoding.
//!
//!   cd fbs/fuzz && cargo +nightly fuzz run channel_frames -- -max_total_time=60

use ferrosfu_fbs::{
    Encoder, FrameBuffer, FrameEvent, decode_message, peek_request_id, split_frame,
};

/// One input.
pub fn run(data: &[u8]) {
    // First byte picks the chunk size the "pipe" delivers.
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let _ = split_frame(stream);
    let _ = peek_request_id(stream);
    let _ = decode_message(stream);

    let mut frames = FrameBuffer::new();
    let mut enc = Encoder::new();
    for piece in stream.chunks(chunk) {
        frames.extend_from_slice(piece);
        while let Some(ev) = frames.next_event() {
            let FrameEvent::Frame(payload) = ev else {
                continue;
            };
            if let Ok(msg) = decode_message(&payload) {
                let frame = enc.frame(&msg).expect("a decoded message re-encodes");
                let again = decode_message(&frame[4..]).expect("re-encoded message decodes");
                assert_eq!(again, msg);
            }
        }
    }
}
