//! Step-by-step progress lines on stdout.

use std::time::Instant;

/// Prints `[i/n] what ...` and, when finished, the time it took.
pub struct Progress {
    total: usize,
    done: usize,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        Progress { total, done: 0 }
    }
    /// Runs one step, printing its start and its outcome.
    pub fn step<T, E: std::fmt::Display>(&mut self, what: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        self.done += 1;
        print!("[{}/{}] {what} ... ", self.done, self.total);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let t = Instant::now();
        let r = f();
        match &r {
            Ok(_) => println!("ok ({:.2}s)", t.elapsed().as_secs_f64()),
            Err(e) => println!("FAILED\n    {e}"),
        }
        r
    }
}
