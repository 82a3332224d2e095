//! The decoder (`wire::decode`) on arbitrary bytes. Beyond "never panics":
//! whatever it accepts, p2pmon can encode, and that encoding decodes again
//! to a message that encodes the same (what we accept we can forward).
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pmon::proto::wire::{Message, decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = decode(data) else {
        return;
    };
    let line = encode(&message);
    let again = decode(line.strip_suffix(b"\n").unwrap_or(&line));
    let Ok(again) = again else {
        panic!("accepted {message:?} but not its encoding {line:?}: {again:?}");
    };
    assert_eq!(
        matches!(message, Message::Legacy { .. }),
        matches!(again, Message::Legacy { .. })
    );
    assert_eq!(encode(&again), line, "encoding is not stable");
});
