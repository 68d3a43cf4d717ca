//! Any bytes as a JSON client frame: decoding never panics, and a frame
//! that decodes encodes and decodes to itself.
#![no_main]

use herald_protocol::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Codec::Json.decode_client(data) {
        let again = Codec::Json.encode_client(&frame);
        assert_eq!(Codec::Json.decode_client(&again).ok(), Some(frame));
    }
});
