//! Entry point of the `tideline` binary; everything else lives in the library.

#![forbid(unsafe_code)]

/// jemalloc instead of glibc's malloc. Loading Automerge documents is
/// allocation-heavy and runs on several threads at once; glibc kept each
/// thread's freed memory in that thread's own arena, so the server's
/// resident size grew with every thread that had loaded a page, and its
/// allocator was a tenth of the CPU of a first sync. docs/PERFORMANCE.md
/// has both measurements.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tideline_server::cli::main()
}
