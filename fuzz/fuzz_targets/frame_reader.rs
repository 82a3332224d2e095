//! The frame reader (`proto::FrameBuffer::push`) against a reference split,
//! under arbitrary chunking. Input: a byte `n`, then `n % 16` chunk sizes
//! (cycled; a size byte `s` is `s` bytes below 128, else `s - 127` KiB; 0
//! counts as 1), then the stream. In the stream, `0xFF k` expands to
//! `k % 72` KiB of `x`, so small inputs reach the 64 KiB frame limit.
//! (Chunks are at least 1/4096 of the stream, to keep the run fast.)
//! Checks: the same frames in the same order, the too-large error exactly
//! when a frame passes `MAX_FRAME`, never more than `MAX_FRAME` held, the
//! same unfinished rest; every frame also goes through the decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use p2pmon::limits::MAX_FRAME;
use p2pmon::proto::FrameBuffer;
use p2pmon::proto::wire::decode;

fn expand(stream: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(stream.len());
    let mut bytes = stream.iter();
    while let Some(&byte) = bytes.next() {
        if byte == 0xFF {
            let kib = usize::from(bytes.next().copied().unwrap_or(0) % 72);
            out.extend(std::iter::repeat_n(b'x', kib * 1024));
        } else {
            out.push(byte);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(count % 16).min(rest.len());
    let (sizes, stream) = rest.split_at(count);
    let stream = expand(stream);

    // The reference: split at newlines; the first piece over the limit ends it.
    let mut expected: Vec<&[u8]> = Vec::new();
    let mut too_large = false;
    let mut pieces = stream.split(|b| *b == b'\n').peekable();
    let mut expected_rest: &[u8] = &[];
    while let Some(piece) = pieces.next() {
        if piece.len() > MAX_FRAME {
            too_large = true;
            break;
        }
        if pieces.peek().is_some() {
            expected.push(piece);
        } else {
            expected_rest = piece;
        }
    }

    let mut buffer = FrameBuffer::default();
    let mut delivered = 0;
    let mut failed = false;
    // At most 4096 pushes per input, so a long stream in 1-byte chunks does
    // not slow the run down to a few inputs a second.
    let floor = stream.len().div_ceil(4096).max(1);
    let mut at = 0;
    let mut index = 0;
    while at < stream.len() {
        let size = sizes
            .get(index % sizes.len().max(1))
            .map_or(stream.len(), |&s| match s {
                0 => 1,
                1..128 => usize::from(s),
                _ => usize::from(s - 127) * 1024,
            })
            .max(floor);
        index += 1;
        let end = (at + size).min(stream.len());
        let pushed = buffer.push(&stream[at..end], |frame| {
            assert!(frame.len() <= MAX_FRAME, "a frame of {} bytes", frame.len());
            assert!(!frame.contains(&b'\n'));
            // In order, each the same as the reference's (compared as they
            // come: no copies, which slow the run down under ASan).
            assert_eq!(expected.get(delivered), Some(&frame), "frame {delivered}");
            delivered += 1;
            let _ = decode(frame);
        });
        at = end;
        assert!(
            buffer.pending_len() <= MAX_FRAME,
            "{} held",
            buffer.pending_len()
        );
        if pushed.is_err() {
            failed = true;
            break;
        }
    }
    assert_eq!(failed, too_large, "too-large error and reference disagree");
    // Every frame before the one too large was delivered.
    assert_eq!(delivered, expected.len(), "frames lost");
    if !failed {
        let rest = buffer.take_rest();
        let want =
            (!expected_rest.iter().all(u8::is_ascii_whitespace)).then(|| expected_rest.to_vec());
        assert_eq!(rest, want);
    }
});
