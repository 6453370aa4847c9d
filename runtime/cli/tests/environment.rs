//! The `trellis` binary and its environment, as a pod gets it: Kubernetes
//! service links beside the settings, a mistyped setting, a bad
//! `TRELLIS_LOG`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
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
    ready_addr_keeping(child).0
}

/// As [`ready_addr`], with the log lines that follow, as they come.
fn ready_addr_keeping(child: &mut Child) -> (String, Arc<Mutex<Vec<String>>>) {
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
            let kept = Arc::new(Mutex::new(Vec::new()));
            let keep = kept.clone();
            std::thread::spawn(move || {
                for line in lines.map_while(Result::ok) {
                    if let Ok(mut kept) = keep.lock() {
                        kept.push(line);
                    }
                }
            });
            return (addr, kept);
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

/// `GET path` on `addr` over a connection of its own; the whole answer.
fn get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connected");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    .expect("sent");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// A mounted component sees the variables of its `env` table (and no
/// others); what it prints is logged under its name, and a flood is cut to
/// the rate with the lines it lost counted.
#[test]
fn a_component_gets_its_env_and_its_output_is_logged_at_a_bounded_rate() {
    let config =
        std::env::temp_dir().join(format!("trellis-cli-guest-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[plugins.wasi_hello]\nbuiltin = \"wasi_hello\"\n\
         env = { GREETING = \"from the config\" }\n",
    )
    .expect("config written");
    let mut child = serve(&[("TRELLIS_LOG__FORMAT", "\"json\"")])
        .arg("--config")
        .arg(&config)
        .env("HOST_ONLY_SECRET", "not for guests")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the trellis binary runs");
    let (addr, logs) = ready_addr_keeping(&mut child);
    let greeting = get(&addr, "/wasi_hello/env?name=GREETING");
    let secret = get(&addr, "/wasi_hello/env?name=HOST_ONLY_SECRET");
    let printed = get(&addr, "/wasi_hello/print?lines=1&text=hello-from-the-guest");
    let flood = get(&addr, "/wasi_hello/print?lines=2000&text=flood");
    // A fifth of a second refills the budget by ten lines.
    std::thread::sleep(Duration::from_millis(200));
    let after = get(&addr, "/wasi_hello/print?lines=1&text=after-the-flood");
    let purge = {
        let mut stream = TcpStream::connect(&addr).expect("connected");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a timeout");
        stream
            .write_all(
                b"PROPFIND /wasi_hello/method HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
            )
            .expect("sent");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(&config);
    assert!(greeting.ends_with("from the config"), "{greeting}");
    assert!(secret.starts_with("HTTP/1.1 404"), "{secret}");
    assert!(printed.starts_with("HTTP/1.1 200"), "{printed}");
    assert!(flood.starts_with("HTTP/1.1 200"), "{flood}");
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
    assert!(purge.ends_with("PROPFIND"), "{purge}");
    let logs = logs.lock().expect("not poisoned").clone();
    let guest: Vec<&String> = logs
        .iter()
        .filter(|l| l.contains(r#""target":"trellis::guest""#))
        .collect();
    let has = |text: &str, stream: &str| {
        guest.iter().any(|l| {
            l.contains(text)
                && l.contains(&format!(r#""stream":"{stream}""#))
                && l.contains(r#""plugin":"wasi_hello""#)
        })
    };
    assert!(has("hello-from-the-guest 0", "stdout"), "{guest:#?}");
    assert!(
        has("hello-from-the-guest on stderr", "stderr"),
        "{guest:#?}"
    );
    let flooded = guest.iter().filter(|l| l.contains("flood ")).count();
    assert!(
        (150..=400).contains(&flooded),
        "{flooded} of 2000 flood lines logged"
    );
    // Once the budget refills, the next line says how many were lost.
    let after = guest
        .iter()
        .find(|l| l.contains("after-the-flood 0"))
        .unwrap_or_else(|| panic!("the line after the flood: {guest:#?}"));
    assert!(after.contains(r#""dropped":"#), "{after}");
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let mut child = serve(&[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the trellis binary runs");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut seen = Vec::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        let ready = line.contains("ready");
        seen.push(line);
        if ready {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.contains("ready")), "{seen:#?}");
    assert!(!seen.iter().any(|l| l.contains('\u{1b}')), "{seen:#?}");
}
