//! `amqp-rpc serve` as a child process: its output collected, killed (SIGKILL) when dropped.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `amqp-rpc serve`.
pub struct Serve {
    child: Child,
    /// The write end of the child's stdin: when this process ends, however it ends, the kernel
    /// closes it and the child (`--stop-on-stdin-eof`) stops: no orphan keeps reconnecting.
    _stdin: Option<ChildStdin>,
    output: Arc<Mutex<String>>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(stream: impl Read + Send + 'static, output: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut out = output.lock().unwrap();
            out.push_str(&line);
            out.push('\n');
        }
    });
}

impl Serve {
    /// Starts `amqp-rpc serve ARGS` with `RUST_LOG=info` (its reconnect lines are what the
    /// tests read).
    pub fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_amqp-rpc"))
            .arg("serve")
            .arg("--stop-on-stdin-eof")
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn amqp-rpc serve");
        let output = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take().unwrap(), Arc::clone(&output));
        collect(child.stderr.take().unwrap(), Arc::clone(&output));
        let stdin = child.stdin.take();
        Serve {
            child,
            _stdin: stdin,
            output,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Lines that contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.output().lines().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `needle` has appeared `times` times; panics with the output after `limit`.
    pub async fn wait_for(&self, needle: &str, times: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count(needle) < times {
            if Instant::now() > deadline {
                panic!(
                    "`{needle}` not seen {times} times within {limit:?}; output:\n{}",
                    self.output()
                );
            }
            if let Ok(Some(status)) = self.child_status() {
                panic!(
                    "amqp-rpc serve exited ({status}) before `{needle}`; output:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn child_status(&self) -> std::io::Result<Option<std::process::ExitStatus>> {
        // `try_wait` needs `&mut`; /proc tells whether the pid is a zombie or gone.
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()));
        Ok(match stat {
            Ok(s) if s.contains(") Z ") => Some(std::process::ExitStatus::default()),
            Ok(_) => None,
            Err(_) => Some(std::process::ExitStatus::default()),
        })
    }

    /// `kill -9`: no goodbye to the broker; the kernel resets its sockets.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (graceful stop), then waits up to `limit` for the exit; true if it exited 0.
    pub fn terminate(mut self, limit: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => return false,
            }
        }
    }
}

/// Checks that every "connect attempt N" of serve's reconnect loop is logged in exactly one
/// line, N counting 1, 2, ... and starting again at 1 after each "connection lost"; returns how
/// many attempt lines there are.
pub fn assert_attempts_logged_once(output: &str) -> u32 {
    let mut expected = 1u32;
    let mut total = 0;
    for line in output.lines() {
        if line.contains("connection lost") {
            expected = 1;
            continue;
        }
        let Some(rest) = line.split("connect attempt ").nth(1) else {
            continue;
        };
        let n: u32 = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .expect("attempt number");
        assert_eq!(n, expected, "attempt lines out of order:\n{output}");
        expected += 1;
        total += 1;
    }
    total
}
