//! Fuzz target: any bytes through the frame decoder, fed in arbitrary
//! pieces, and every frame found through the request and answer decoders
//! and both session state machines. Nothing may panic, the decoder's
//! buffer stays bounded, and a decoded message re-encodes to itself.
#![no_main]

use std::time::{Duration, Instant};

use evsync_recorder_protocol::frame::{Decoded, Decoder};
use evsync_recorder_protocol::message::{Answer, Request};
use evsync_recorder_protocol::session::{Requester, Responder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoder = Decoder::new();
    let mut responder = Responder::new();
    let mut requester = Requester::new(Duration::from_millis(10), 3);
    let _ = requester.start(&Request::Identify, Instant::now());
    let cut = data.first().map_or(1, |b| usize::from(*b).max(1));
    for piece in data.chunks(cut) {
        decoder.push(piece);
        while let Some(d) = decoder.decode() {
            if let Decoded::Frame(f) = &d {
                if let Ok(req) = Request::decode(f.code, &f.payload) {
                    assert_eq!(Request::decode(req.code(), &req.encode()), Ok(req));
                }
                if let Ok(answer) = Answer::decode(f.code, &f.payload) {
                    assert_eq!(Answer::decode(f.code, &answer.encode()), Ok(answer));
                }
            }
            let _ = responder.on_decoded(d.clone());
            let _ = requester.on_decoded(d, Instant::now());
        }
        assert!(decoder.buffered() <= 4 * (10 + 32 * 1024 + 64 + 4));
    }
});
