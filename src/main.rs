//! The `p2pmon` binary: everything lives in the library; this only maps the
//! outcome to an exit code (0 clean stop, 1 runtime failure, 2 bad usage).

fn main() -> std::process::ExitCode {
    match p2pmon::run(std::env::args_os()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::from(error.exit_code())
        }
    }
}
