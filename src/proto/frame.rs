//! Framing: a TCP byte stream cut into newline-terminated frames, bounded so
//! a peer that never sends a newline costs at most one frame of memory. The
//! listener and `loadgen` read every connection through a [`FrameBuffer`];
//! what a frame holds is [`super::wire`]'s to decode.

use crate::limits::MAX_FRAME;
use crate::proto::wire::DecodeError;

/// Splits a byte stream into frames. Bytes go in with [`FrameBuffer::fill`]
/// and frames come out one at a time with [`FrameBuffer::next_frame`], so a
/// caller can stop after a budget of frames and come back later; filled only
/// once every whole frame is taken, it holds at most one unfinished frame of
/// [`MAX_FRAME`] bytes plus one read. Past that the stream is unusable and
/// the caller closes it.
#[derive(Debug, Default)]
pub struct FrameBuffer {
    pending: Vec<u8>,
    /// Where the next frame starts in `pending`.
    start: usize,
    /// `pending[start..scanned]` has no newline: no byte is searched twice.
    scanned: usize,
}

impl FrameBuffer {
    /// Appends bytes read from the stream (take the whole frames first).
    pub fn fill(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.pending.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.pending.extend_from_slice(bytes);
    }

    /// The next complete frame (without its newline), `None` when only an
    /// unfinished one is left, or `Err(TooLarge)` once a frame exceeds
    /// [`MAX_FRAME`] (the buffer is then emptied).
    pub fn next_frame(&mut self) -> Option<Result<&[u8], DecodeError>> {
        let newline = memchr::memchr(b'\n', &self.pending[self.scanned..]);
        let Some(offset) = newline else {
            self.scanned = self.pending.len();
            if self.pending.len() - self.start > MAX_FRAME {
                self.clear();
                return Some(Err(DecodeError::TooLarge));
            }
            return None;
        };
        let (start, end) = (self.start, self.scanned + offset);
        if end - start > MAX_FRAME {
            self.clear();
            return Some(Err(DecodeError::TooLarge));
        }
        self.start = end + 1;
        self.scanned = end + 1;
        Some(Ok(&self.pending[start..end]))
    }

    /// Appends `bytes` and calls `on_frame` for each complete frame (without
    /// its newline). Returns `Err(TooLarge)` once a frame exceeds
    /// [`MAX_FRAME`]; frames before it were delivered.
    pub fn push(
        &mut self,
        bytes: &[u8],
        mut on_frame: impl FnMut(&[u8]),
    ) -> Result<(), DecodeError> {
        self.fill(bytes);
        while let Some(frame) = self.next_frame() {
            on_frame(frame?);
        }
        Ok(())
    }

    fn clear(&mut self) {
        *self = FrameBuffer::default();
    }

    /// The unfinished frame left when the stream ended (the Python original
    /// sends its status without a newline and closes).
    pub fn take_rest(&mut self) -> Option<Vec<u8>> {
        let rest = self.pending.split_off(self.start.min(self.pending.len()));
        self.clear();
        if rest.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(rest)
        }
    }

    /// Bytes held and not yet handed out as frames.
    pub fn pending_len(&self) -> usize {
        self.pending.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_buffer_splits_lines_across_reads() {
        let mut buffer = FrameBuffer::default();
        let mut frames = Vec::new();
        buffer.push(b"ab", |f| frames.push(f.to_vec())).ok();
        buffer.push(b"c\nde\n\nf", |f| frames.push(f.to_vec())).ok();
        assert_eq!(frames, vec![b"abc".to_vec(), b"de".to_vec(), b"".to_vec()]);
        assert_eq!(buffer.take_rest(), Some(b"f".to_vec()));
        assert_eq!(buffer.take_rest(), None);
    }

    #[test]
    fn frame_buffer_bounds_an_endless_line() {
        let mut buffer = FrameBuffer::default();
        let chunk = vec![b'x'; 1000];
        let mut result = Ok(());
        for _ in 0..100 {
            result = buffer.push(&chunk, |_| {});
            assert!(buffer.pending_len() <= MAX_FRAME);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(DecodeError::TooLarge));
        let mut buffer = FrameBuffer::default();
        let one_huge = vec![b'x'; MAX_FRAME + 10];
        assert_eq!(
            buffer.push(&[one_huge.as_slice(), b"\n"].concat(), |_| {}),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn frame_buffer_hands_out_frames_one_at_a_time() {
        let mut buffer = FrameBuffer::default();
        buffer.fill(b"a\n\nbc\nd");
        assert_eq!(buffer.next_frame(), Some(Ok(&b"a"[..])));
        assert_eq!(buffer.next_frame(), Some(Ok(&b""[..])));
        // Stopping here keeps the rest for later.
        assert_eq!(buffer.pending_len(), 4);
        assert_eq!(buffer.next_frame(), Some(Ok(&b"bc"[..])));
        assert_eq!(buffer.next_frame(), None);
        buffer.fill(b"e\n");
        assert_eq!(buffer.next_frame(), Some(Ok(&b"de"[..])));
        assert_eq!(buffer.next_frame(), None);
        buffer.fill(&vec![b'x'; MAX_FRAME + 1]);
        assert_eq!(buffer.next_frame(), Some(Err(DecodeError::TooLarge)));
        assert_eq!(buffer.pending_len(), 0);
    }

    #[test]
    fn frame_buffer_accepts_a_frame_of_exactly_max_size() {
        let mut buffer = FrameBuffer::default();
        let mut count = 0;
        let frame = vec![b'x'; MAX_FRAME];
        assert!(buffer.push(&frame[..100], |_| count += 1).is_ok());
        assert!(buffer.push(&frame[100..], |_| count += 1).is_ok());
        assert!(buffer.push(b"\n", |_| count += 1).is_ok());
        assert_eq!(count, 1);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::proto::wire::{Header, Message, decode, encode};
    use proptest::prelude::*;

    /// Feeds `bytes` in chunks cut at `cuts` and decodes every frame.
    fn feed(bytes: &[u8], cuts: &[usize]) -> (Vec<Result<Message, DecodeError>>, bool) {
        let mut buffer = FrameBuffer::default();
        let mut results = Vec::new();
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut too_large = false;
        for pair in points.windows(2) {
            let chunk = &bytes[pair[0]..pair[1]];
            if buffer
                .push(chunk, |frame| results.push(decode(frame)))
                .is_err()
            {
                too_large = true;
                break;
            }
            assert!(buffer.pending_len() <= MAX_FRAME);
        }
        (results, too_large)
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            "[a-z0-9-]{1,20}",
            1u16..,
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            1u64..3_600_000,
            0.0f64..=100.0,
            0.0f64..=100.0,
            any::<bool>(),
        )
            .prop_map(
                |(node, port, boot, seq, ts, interval_ms, cpu, memory, leave)| {
                    let header = Header {
                        node,
                        port,
                        boot,
                        seq,
                        ts,
                        interval_ms,
                        members: Vec::new(),
                    };
                    if leave {
                        Message::Leave { header }
                    } else {
                        Message::Status {
                            header,
                            cpu: (cpu * 10.0).round() / 10.0,
                            memory: (memory * 10.0).round() / 10.0,
                            health: Default::default(),
                        }
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_in_arbitrary_chunks_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<usize>(), 0..16),
        ) {
            let (results, _) = feed(&bytes, &cuts);
            let newlines = bytes.iter().filter(|b| **b == b'\n').count();
            prop_assert!(results.len() <= newlines);
        }

        #[test]
        fn valid_frames_split_anywhere_decode_the_same(
            messages in proptest::collection::vec(message(), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..16),
        ) {
            let stream: Vec<u8> = messages.iter().flat_map(encode).collect();
            let (results, too_large) = feed(&stream, &cuts);
            prop_assert!(!too_large);
            let decoded: Vec<Message> = results.into_iter().map(|r| r.unwrap_or_else(|e| panic!("{e}"))).collect();
            prop_assert_eq!(decoded, messages);
        }
    }
}
