//! The `portcullis` binary: see [`portcullis::cli`].
#![forbid(unsafe_code)]

/// jemalloc, built with its background threads on: memory freed after a flood
/// (transactions, queues) goes back to the OS after its decay time (10 s of
/// jemalloc's default `dirty_decay_ms`) instead of staying in the process as
/// glibc's arenas keep it. See docs/operator-guide.md, "Memory under flood".
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    portcullis::cli::main()
}
