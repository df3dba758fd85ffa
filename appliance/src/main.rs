//! The `portcullis` binary: see [`portcullis::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
