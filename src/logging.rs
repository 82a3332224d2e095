//! stderr logging: every warning and reason goes there, never to stdout
//! (stdout carries only event lines). Level by -v/-q, RUST_LOG wins.

use std::io::Write;

/// Sets up stderr logging: warnings by default, -v info, -vv debug, -q errors
/// only; RUST_LOG, when set, wins.
pub fn init(verbose: u8, quiet: u8) {
    let level = match (quiet, verbose) {
        (q, _) if q > 0 => log::LevelFilter::Error,
        (_, 0) => log::LevelFilter::Warn,
        (_, 1) => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder.format(|buf, record| {
        let level = match record.level() {
            log::Level::Error => "error",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug => "debug",
            log::Level::Trace => "trace",
        };
        writeln!(buf, "{level}: {}", record.args())
    });
    // A second initialisation (tests, the demo) keeps the first logger.
    let _ = builder.try_init();
}
