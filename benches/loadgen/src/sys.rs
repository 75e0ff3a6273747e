//! What `/proc` says about a process: CPU time and resident memory.

use std::fs;
use std::process::Command;

/// Clock ticks per second, the unit of `utime`/`stime` in `/proc/PID/stat`.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&t| t > 0.0)
        .unwrap_or(100.0)
}

/// A process: `"self"` or a PID.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: String,
    ticks: f64,
}

impl Proc {
    pub fn new(pid: impl Into<String>, ticks: f64) -> Proc {
        Proc {
            pid: pid.into(),
            ticks,
        }
    }

    /// User + system CPU time of all the process's threads, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.cpu_split().map(|(user, system)| user + system)
    }

    /// User and system CPU time of all the process's threads, in seconds.
    pub fn cpu_split(&self) -> Option<(f64, f64)> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name (field 2) may hold spaces; it ends at the last ')'.
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After ')': field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some((utime as f64 / self.ticks, stime as f64 / self.ticks))
    }

    fn status_field(&self, name: &str) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.status_field("VmRSS:").map(|kb| kb * 1024)
    }

    pub fn threads(&self) -> Option<u64> {
        self.status_field("Threads:")
    }

    /// Is the process still there (and not a zombie waiting to be reaped)?
    pub fn alive(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|stat| {
                let rest = &stat[stat.rfind(')')? + 1..];
                rest.split_whitespace()
                    .next()
                    .map(|state| state != "Z" && state != "X")
            })
            .unwrap_or(false)
    }

    /// Context switches (voluntary + involuntary) summed over the threads
    /// alive now: a thread's count is gone once it exits, so compare two
    /// readings only across a phase in which threads neither start nor end.
    pub fn context_switches(&self) -> Option<u64> {
        let mut total = 0;
        for task in fs::read_dir(format!("/proc/{}/task", self.pid)).ok()? {
            let Ok(task) = task else { continue };
            let Ok(status) = fs::read_to_string(task.path().join("status")) else {
                continue;
            };
            for line in status.lines() {
                if let Some(v) = line
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    total += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
        Some(total)
    }
}
