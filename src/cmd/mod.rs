//! One-off commands beside the node: [`demo`] (three nodes in one process),
//! [`keygen`] (a new cluster key file), [`loadgen`] (simulated peers for the
//! benchmarks). Only the crate root imports this module.

pub mod demo;
pub mod keygen;
pub mod loadgen;
