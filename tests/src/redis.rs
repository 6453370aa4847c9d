//! Redis for tests: the shared one on 6379 with a namespace per test, and
//! private `redis-server` processes on other loopback ports for tests that
//! stop Redis.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The shared Redis (`TRELLIS_TEST_REDIS_URL` overrides).
pub fn url() -> String {
    std::env::var("TRELLIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A namespace no other test or test process uses.
pub fn namespace() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("tt-{}-{n}-{}", std::process::id(), uuid_like())
}

fn uuid_like() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// The `[redis]` table for `url` and `namespace`.
pub fn toml(url: &str, namespace: &str) -> String {
    toml_with_timeout(url, namespace, "2s")
}

/// As [`toml`], with `redis.command_timeout` = `timeout` (`"300ms"`).
pub fn toml_with_timeout(url: &str, namespace: &str, timeout: &str) -> String {
    format!("[redis]\nurl = {url:?}\nnamespace = {namespace:?}\ncommand_timeout = {timeout:?}\n")
}

/// A `redis-server` of the test's own on a free loopback port; stopped
/// (and restartable) at will, killed when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    /// Its port.
    pub port: u16,
    child: Option<Child>,
    /// `--tls-*` arguments when it serves TLS only.
    tls: Vec<String>,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it answers.
    pub fn start() -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        PrivateRedis::start_on(port)
    }

    /// Starts one on `port` and waits until it answers. Pick a port below
    /// the kernel's ephemeral range (32768 and up) that no other test uses,
    /// so nothing else can take it while it is stopped.
    pub fn start_on(port: u16) -> PrivateRedis {
        assert_ne!(port, 6379, "the machine's Redis is not a test's to stop");
        // A run that died (SIGKILL) may have left its redis-server here:
        // ask it to shut down (bounded, in case it was left frozen).
        let held = || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok();
        if held() {
            let _ = Command::new("timeout")
                .args([
                    "2",
                    "redis-cli",
                    "-p",
                    &port.to_string(),
                    "shutdown",
                    "nosave",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            for _ in 0..40 {
                if !held() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            assert!(
                !held(),
                "port {port} is held by a process this test did not start"
            );
        }
        let mut redis = PrivateRedis {
            port,
            child: None,
            tls: Vec::new(),
        };
        redis.restart();
        redis
    }

    /// One on a free port serving TLS only, with `cert` and `key`; clients
    /// need no certificate of their own.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> PrivateRedis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let path = |p: &std::path::Path| p.display().to_string();
        let mut redis = PrivateRedis {
            port,
            child: None,
            tls: vec![
                "--tls-cert-file".into(),
                path(cert),
                "--tls-key-file".into(),
                path(key),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        };
        redis.restart();
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (as a crash would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it with SIGSTOP: connections stay open, nothing answers.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Lets a frozen one run again (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        // TLS only: the plain port off, the TLS one on ours.
        let mut tls = self.tls.clone();
        let port = if tls.is_empty() {
            self.port
        } else {
            tls.extend(["--tls-port".to_string(), self.port.to_string()]);
            0
        };
        let child = Command::new("redis-server")
            .args(&tls)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (install the Debian package redis-server)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server on port {} did not start", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
