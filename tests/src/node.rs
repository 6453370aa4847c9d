//! A Trellis node in a process of its own: the test binary re-runs itself
//! with one ignored test, [`serve_child`], which starts a server from the
//! config in `TRELLIS_TEST_NODE_TOML` and prints its address. Tests use it
//! where "another process" matters: two nodes sharing Redis, a holder
//! frozen with SIGSTOP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use crate::TestServer;

/// The environment variable carrying the child's config.
pub const TOML_VAR: &str = "TRELLIS_TEST_NODE_TOML";
/// What the child prints before its address.
pub const ADDR_LINE: &str = "TRELLIS_TEST_NODE_ADDR=";

/// A node in a child process; killed when dropped.
#[derive(Debug)]
pub struct ChildNode {
    child: Child,
    /// Clients for it.
    pub server: TestServer,
}

impl ChildNode {
    /// Starts a node for `toml` (completed as [`crate::config`] does) in a
    /// child process running `test` (the full path of a test that calls
    /// [`serve_child`]), and waits until it serves.
    pub fn start(test: &str, toml: &str) -> ChildNode {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(TOML_VAR, toml)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test binary runs");
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let (addr, admin_token): (SocketAddr, Option<String>) = loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("the child node exited before serving"))
                .expect("child output");
            // The harness prints `test <name> ... ` on the same line; the
            // node's own admin token (if it made one) follows the address.
            if let Some((_, rest)) = line.split_once(ADDR_LINE) {
                let mut words = rest.split_whitespace();
                let addr = words
                    .next()
                    .and_then(|a| a.parse().ok())
                    .expect("an address");
                break (addr, words.next().map(str::to_string));
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        let mut server = TestServer::at(addr);
        server.admin_token = admin_token;
        ChildNode { child, server }
    }

    /// The child's process id (for signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (up to `within`) for the child to exit; its status.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) to the child.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }
}

impl Drop for ChildNode {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The body of the child's test: serve the config from the environment
/// until killed, or until SIGTERM/SIGINT (then drain as `trellis serve`
/// does, and return).
pub async fn serve_child() {
    let Ok(toml) = std::env::var(TOML_VAR) else {
        // Run directly (not as a child): nothing to do.
        return;
    };
    let config = crate::config(&toml);
    let server = trellis::Server::start(&config)
        .await
        .unwrap_or_else(|e| panic!("server did not start: {e}"));
    let token = std::fs::read_to_string(trellis::http::auth::node_token_path(&config.data_dir))
        .unwrap_or_default();
    println!(
        "{ADDR_LINE}{} {}",
        server.local_addr().expect("bound"),
        token.trim()
    );
    server.run(trellis::server::shutdown_signal()).await;
}
