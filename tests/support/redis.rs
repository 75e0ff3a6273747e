//! [`Redis`]: a real `redis-server` on a free loopback port, in a scratch
//! directory of its own, stopped by PID when dropped — and stopped and
//! started again on the same port by the tests that take Redis away.
//!
//! `scripts/test` installs `redis-server` (Debian's package); without it
//! these tests fail and say so, rather than pass without testing anything.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
    /// More flags for `redis-server`, e.g. `--requirepass`.
    extra: Vec<String>,
}

impl Redis {
    /// A Redis with an append-only file synced on every write, so that a
    /// `kill -9` and a restart keep everything acknowledged.
    pub fn start(name: &str) -> Redis {
        Redis::start_with(name, &[])
    }

    /// [`Redis::start`] with more flags for `redis-server`.
    pub fn start_with(name: &str, extra: &[&str]) -> Redis {
        let dir = super::process::scratch(&format!("redis-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis scratch dir");
        for _ in 0..5 {
            let port = free_port();
            let mut redis = Redis {
                child: None,
                port,
                dir: dir.clone(),
                extra: extra.iter().map(|s| s.to_string()).collect(),
            };
            if redis.spawn() {
                return redis;
            }
        }
        panic!("redis-server did not start on a free port (5 tries)");
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`, and wait for it to be gone.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port: with the data it had (`keep`), or
    /// empty, as after a restart without persistence.
    pub fn restart(&mut self, keep: bool) {
        self.kill9();
        if !keep {
            let _ = std::fs::remove_dir_all(&self.dir);
            std::fs::create_dir_all(&self.dir).expect("redis scratch dir");
        }
        assert!(
            self.spawn(),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// One command by `redis-cli`, its output trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli (scripts/test installs redis-server, which has it)");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run redis-server ({e}): scripts/test installs it (apt-get install redis-server)"
            ),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
