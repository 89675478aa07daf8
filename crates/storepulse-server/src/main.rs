//! `storepulse`: parse the command line, run it, map failure to exit code 1.

// The ingest path allocates a few small strings per event on several threads at once; mimalloc
// handles that pattern markedly faster than glibc's malloc (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    storepulse_server::telemetry::init_tracing();
    match storepulse_server::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", storepulse_server::cli::error_message(&error));
            std::process::ExitCode::FAILURE
        }
    }
}
