//! Process figures from /proc: resident memory and open file descriptors.

use std::path::PathBuf;

fn proc_dir(pid: Option<u32>) -> PathBuf {
    match pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}")),
        None => PathBuf::from("/proc/self"),
    }
}

/// Resident set size in KiB (`VmRSS`) of `pid`, or of this process.
pub fn rss_kib(pid: Option<u32>) -> u64 {
    let status = std::fs::read_to_string(proc_dir(pid).join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Open file descriptors of `pid`, or of this process.
pub fn open_fds(pid: Option<u32>) -> usize {
    std::fs::read_dir(proc_dir(pid).join("fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Threads of `pid`, or of this process.
pub fn threads(pid: Option<u32>) -> u64 {
    let status = std::fs::read_to_string(proc_dir(pid).join("status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
