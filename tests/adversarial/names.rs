//! Adversarial tests: see `mod.rs` for the item list and the address blocks.
