//! The `trellis` binary and its environment, as a pod gets it: Kubernetes
//! service links beside the settings, a mistyped setting, a bad
//! `TRELLIS_LOG`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `trellis serve` on an ephemeral loopback port, with a fresh data
/// directory and the test suite's compile cache, plus `env`.
fn serve(env: &[(&str, &str)]) -> Command {
    let data = std::env::temp_dir().join(format!(
        "trellis-cli-env-{}-{}",
        std::process::id(),
        env.len()
    ));
    let cache: PathBuf = std::env::temp_dir().join("trellis-test-compile-cache");
    let mut command = Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("TRELLIS_SERVER__LISTEN", "\"127.0.0.1:0\"")
        .env(
            "TRELLIS_DATA_DIR",
            format!("{:?}", data.display().to_string()),
        )
        .env(
            "TRELLIS_ENGINE__CACHE_DIR",
            format!("{:?}", cache.display().to_string()),
        )
        .envs(env.iter().copied());
    command
}

/// Runs `command` to its end (it must end within a minute).
fn run(mut command: Command) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the trellis binary runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waits").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("trellis did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("its output")
}

/// The address a serving child logged as ready, reading its stderr.
fn ready_addr(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("a log line");
        if line.contains(r#""message":"ready""#)
            && let Some(rest) = line.split(r#""addr":""#).nth(1)
        {
            let addr = rest.split('"').next().unwrap_or_default().to_string();
            // Keep draining stderr so the child never blocks on it.
            std::thread::spawn(move || lines.for_each(drop));
            return addr;
        }
        seen.push(line);
    }
    panic!("trellis ended before serving:\n{}", seen.join("\n"));
}

#[test]
fn a_pod_beside_a_service_named_trellis_starts_and_serves() {
    let mut child = serve(&[
        ("TRELLIS_PORT", "tcp://10.0.0.1:8080"),
        ("TRELLIS_PORT_8080_TCP", "tcp://10.0.0.1:8080"),
        ("TRELLIS_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ("TRELLIS_SERVICE_HOST", "10.0.0.1"),
        ("TRELLIS_SERVICE_PORT", "8080"),
        ("TRELLIS_LOG__FORMAT", "\"json\""),
    ])
    .stderr(Stdio::piped())
    .stdout(Stdio::null())
    .spawn()
    .expect("the trellis binary runs");
    let addr = ready_addr(&mut child);
    let mut stream = TcpStream::connect(&addr).expect("connected");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .expect("sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("Hello, world!"), "{answer}");
}

#[test]
fn a_setting_spelled_with_single_underscores_stops_the_start() {
    let output = run(serve(&[("TRELLIS_SERVER_MAX_CONNECTIONS", "10")]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("TRELLIS_SERVER__MAX_CONNECTIONS"),
        "{stderr}"
    );
}

#[test]
fn a_bad_trellis_log_stops_the_start_and_is_named() {
    let output = run(serve(&[("TRELLIS_LOG", "info,trellis=loud")]));
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TRELLIS_LOG"), "{stderr}");
    assert!(stderr.contains("trellis=loud"), "{stderr}");
}
