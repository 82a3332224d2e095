//! Build script: release binaries link the functions a node runs into one
//! block at the start of the text, with the linker script
//! `link/text-order.ld` (made by `scripts/text-order.sh`). A page fault maps
//! the 64 KiB around the page it touches, so a node's resident text follows
//! how widely the functions it runs are spread, not how many there are:
//! gathered, a node maps ~0.6 MiB less (BENCHMARKS.md, "Footprint"). The
//! script only orders sections (`INSERT BEFORE .text`): nothing is dropped,
//! and a function missing from the list is linked as before. Set
//! `P2PMON_NO_TEXT_ORDER=1` to link without it (a linker that does not take
//! GNU linker scripts, or to measure the difference).

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=link/text-order.ld");
    println!("cargo:rerun-if-env-changed=P2PMON_NO_TEXT_ORDER");
    let release = env::var("PROFILE").is_ok_and(|p| p == "release");
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let off = env::var_os("P2PMON_NO_TEXT_ORDER").is_some_and(|v| !v.is_empty() && v != "0");
    let Ok(dir) = env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let script = Path::new(&dir).join("link").join("text-order.ld");
    if release && linux && !off && script.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
