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

/// A process — `"self"` or a PID — or several PIDs taken together (a
/// cluster: its nodes and Redis), whose readings are the sums of theirs.
#[derive(Clone, Debug)]
pub struct Proc {
    pids: Vec<String>,
    ticks: f64,
}

impl Proc {
    pub fn new(pid: impl Into<String>, ticks: f64) -> Proc {
        Proc::group(vec![pid.into()], ticks)
    }

    /// Several processes read as one: CPU, RSS, threads and context
    /// switches are summed; a reading is missing when any one's is.
    pub fn group(pids: Vec<String>, ticks: f64) -> Proc {
        Proc { pids, ticks }
    }

    /// Each process of the group on its own.
    pub fn members(&self) -> Vec<Proc> {
        self.pids
            .iter()
            .map(|p| Proc::new(p.clone(), self.ticks))
            .collect()
    }

    fn sum<T: std::iter::Sum<T>>(&self, one: impl Fn(&str) -> Option<T>) -> Option<T> {
        self.pids.iter().map(|p| one(p)).sum()
    }

    /// User + system CPU time of all the process's threads, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.cpu_split().map(|(user, system)| user + system)
    }

    /// User and system CPU time of all the process's threads, in seconds.
    pub fn cpu_split(&self) -> Option<(f64, f64)> {
        let mut total = (0.0, 0.0);
        for pid in &self.pids {
            let (u, s) = cpu_split(pid, self.ticks)?;
            total.0 += u;
            total.1 += s;
        }
        Some(total)
    }

    /// Resident set size in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.sum(|p| status_field(p, "VmRSS:").map(|kb| kb * 1024))
    }

    pub fn threads(&self) -> Option<u64> {
        self.sum(|p| status_field(p, "Threads:"))
    }

    /// Is every process still there (and not a zombie waiting to be reaped)?
    pub fn alive(&self) -> bool {
        self.pids.iter().all(|p| alive(p))
    }

    /// Context switches (voluntary + involuntary) summed over the threads
    /// alive now: a thread's count is gone once it exits, so compare two
    /// readings only across a phase in which threads neither start nor end.
    pub fn context_switches(&self) -> Option<u64> {
        self.sum(context_switches)
    }
}

fn cpu_split(pid: &str, ticks: f64) -> Option<(f64, f64)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; it ends at the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 (state) is index 0, so utime (14) is 11, stime (15) is 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime as f64 / ticks, stime as f64 / ticks))
}

fn status_field(pid: &str, name: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn alive(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = &stat[stat.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|state| state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

fn context_switches(pid: &str) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_sums_its_members() {
        let ticks = clock_ticks();
        let me = Proc::new("self", ticks);
        let twice = Proc::group(vec!["self".into(), "self".into()], ticks);
        let threads = me.threads().unwrap();
        assert_eq!(twice.threads(), Some(2 * threads));
        assert_eq!(twice.members().len(), 2);
        assert!(twice.alive());
        let gone = Proc::group(vec!["self".into(), "999999999".into()], ticks);
        assert_eq!(gone.threads(), None);
        assert!(!gone.alive());
    }
}
