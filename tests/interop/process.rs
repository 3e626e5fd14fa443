//! Child processes under a time bound: their stdout and stderr lines (the Go programs log to
//! stderr) on one channel, killed when dropped, so a failing test leaves none behind.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Bound on anything one step of a scenario waits for.
pub const STEP: Duration = Duration::from_secs(30);

/// A running child; its output lines arrive on a channel. Killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line read so far, stdout and stderr interleaved as they arrived.
    pub seen: Vec<String>,
}

fn forward(stream: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

impl Proc {
    pub fn spawn(name: &str, command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let (tx, lines) = mpsc::channel();
        forward(child.stdout.take().expect("piped stdout"), tx.clone());
        forward(child.stderr.take().expect("piped stderr"), tx);
        Proc {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most `STEP`) for an output line containing `needle`; fails naming what was seen,
    /// also when the process exits first.
    pub fn expect_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "{} exited ({status:?}) without printing {needle:?}; its output: {:#?}",
                        self.name, self.seen
                    )
                }
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "{}: no line containing {needle:?} within {STEP:?}; its output: {:#?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Every output line so far, without waiting.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// How many lines so far contain `needle`.
    pub fn count(&mut self, needle: &str) -> usize {
        self.drain().iter().filter(|l| l.contains(needle)).count()
    }

    /// Sends a signal (`TERM`, `INT`) to the process.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
    }

    /// SIGTERM, then wait (at most `STEP`) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        let deadline = Instant::now() + STEP;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.drain();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} ignored SIGTERM for {STEP:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (until `deadline`) for the exit; all output lines and the status.
    pub fn finish(mut self, deadline: Instant) -> (ExitStatus, Vec<String>) {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // The readers end at EOF, shortly after the exit.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                return (status, std::mem::take(&mut self.seen));
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                self.drain();
                panic!(
                    "{} did not finish in time; its output: {:#?}",
                    self.name, self.seen
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion within `STEP`: its status and output lines.
pub fn run(name: &str, command: &mut Command) -> (ExitStatus, Vec<String>) {
    Proc::spawn(name, command).finish(Instant::now() + STEP)
}
