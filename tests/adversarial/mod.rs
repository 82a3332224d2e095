//! The adversary's tests (issue 12): each item an outsider (no key, able to
//! reach port 5000 from many addresses, record and replay traffic, run its
//! own listener) used to break, attacked again against the real binary.
//!
//! Blocks: 40-47 sealing and membership, 48-55 listener, 56-63 sender,
//! 64-71 names and hooks, 72-79 the status endpoint, 80-87 files and durations.

mod endpoint;
mod files;
mod hooks;
mod listener;
mod names;
mod sealing;
mod sender;
