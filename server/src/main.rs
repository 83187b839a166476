//! Entry point of the `tideline` binary; everything else lives in the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tideline_server::cli::main()
}
