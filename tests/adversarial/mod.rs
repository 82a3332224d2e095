//! The adversary's tests (issue 12): each item an outsider (no key, able to
//! reach port 5000 from many addresses, record and replay traffic, run its
//! own listener) used to break, attacked again against the real binary.
//! Each test takes its addresses from `util::Block`, like every other.

mod endpoint;
mod files;
mod hooks;
mod listener;
mod names;
mod sealing;
mod sender;
