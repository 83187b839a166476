//! Progress lines on stderr. Stdout carries only the JSON report, so
//! everything a person watching the run should see goes through here.

/// Progress on stderr, stamped with the time since the harness started.
macro_rules! progress {
    ($start:expr, $($arg:tt)*) => {
        eprintln!("[{:7.1} s] {}", $start.elapsed().as_secs_f64(), format!($($arg)*))
    };
}

pub(crate) use progress;
