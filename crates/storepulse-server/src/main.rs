//! `storepulse`: parse the command line, run it, map failure to exit code 1.

fn main() -> std::process::ExitCode {
    storepulse_server::telemetry::init_tracing();
    match storepulse_server::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
