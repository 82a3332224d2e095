//! Integration tests: the real binary on loopback, one module per subject.
//! Each test takes a block of addresses 127.N.0.0/16 from `util::Block`, so
//! tests run in parallel (in one process or many) without fighting over
//! port 5000. Tests that need root or a tool a contributor may not have are
//! `#[ignore = "needs …"]`; `scripts/test.sh` runs them too.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adversarial;
mod alerts;
mod cli;
mod cluster;
mod duty;
mod faults;
mod health;
mod interop;
mod membership;
mod observe;
mod ops;
mod protocol;
mod seal;
mod top;
mod util;
mod web;
mod wire;
