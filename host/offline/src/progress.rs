//! Progress on long work, for a person at a terminal: one line on standard
//! error that rewrites itself ("precompiling 3/11: model_updates, 12 s").
//! When standard error is not a terminal it prints nothing, so logs and
//! pipes see only the lines the commands print for good.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The least time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);

/// One piece of long work in progress.
pub struct Progress {
    what: String,
    started: Instant,
    shown: bool,
    /// When the line was last drawn.
    drawn: Mutex<Option<Instant>>,
}

impl Progress {
    /// Starts showing `what` (on a terminal).
    pub fn start(what: impl Into<String>) -> Progress {
        let progress = Progress {
            what: what.into(),
            started: Instant::now(),
            shown: std::io::stderr().is_terminal(),
            drawn: Mutex::new(None),
        };
        progress.show("");
        progress
    }

    /// Whether it shows anything (standard error is a terminal).
    pub fn shown(&self) -> bool {
        self.shown
    }

    /// Says how far it is: "3/11: model_updates".
    pub fn step(&self, done: usize, total: usize, item: &str) {
        self.show(&format!(" {done}/{total}: {item}"));
    }

    /// Shows the time it has taken so far.
    pub fn tick(&self) {
        self.show("");
    }

    /// Says what it is doing now.
    pub fn note(&self, note: &str) {
        self.show(&format!(": {note}"));
    }

    fn show(&self, detail: &str) {
        if !self.shown {
            return;
        }
        {
            let mut drawn = self.drawn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if drawn.is_some_and(|at| at.elapsed() < REDRAW) {
                return;
            }
            *drawn = Some(Instant::now());
        }
        {
            let seconds = self.started.elapsed().as_secs();
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K{}{detail}, {seconds} s", self.what);
            let _ = err.flush();
        }
    }
}

impl Drop for Progress {
    /// Clears the line: what the work printed for good follows.
    fn drop(&mut self) {
        if self.shown {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
        }
    }
}
