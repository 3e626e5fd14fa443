//! The progress bar over the bytes read, for large files on a terminal (indicatif).

use std::io::{self, IsTerminal, Read};

use indicatif::{ProgressBar, ProgressStyle};

/// Files larger than this get a progress bar on a terminal.
const PROGRESS_THRESHOLD: u64 = 4 * 1024 * 1024;

/// A progress bar over the bytes read, or nothing.
#[derive(Debug, Clone, Default)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// No progress bar.
    pub fn none() -> Self {
        Progress(None)
    }

    /// A bar for a file of `len` bytes, when stderr is a terminal and the file is large.
    pub fn for_file(len: u64) -> Self {
        if len < PROGRESS_THRESHOLD || !io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}, {eta} left",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Progress(Some(bar))
    }

    /// `input`, advancing the bar by what is read from it.
    pub fn wrap<R: Read>(&self, input: R) -> Counting<R> {
        Counting {
            inner: input,
            bar: self.0.clone(),
        }
    }

    /// Take the bar off the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

/// A reader that advances a progress bar.
#[derive(Debug)]
pub struct Counting<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Ok(n)
    }
}
