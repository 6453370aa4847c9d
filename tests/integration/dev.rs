//! `trellis dev`: a project made by `trellis new` builds and serves; every
//! saved change is rebuilt and reloaded; a build error or a refused version
//! is reported and leaves the previous version serving; a changed config
//! starts the server again with it.

use std::path::Path;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use trellis_cli::dev::{DevEvent, DevOptions};
use trellis_tests::{TestServer, fresh_dir};

use crate::template::guest_target;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_changes_are_rebuilt_and_reloaded() {
    let root = fresh_dir();
    let dir = root.join("devdemo");
    trellis_cli::scaffold::new_plugin("devdemo", &dir, Path::new(trellis_cli::scaffold::SDK))
        .expect("project written");
    // The test's own config, outside the project: the component where the
    // build command below puts it, a free port.
    let wasm = guest_target().join("wasm32-wasip2/release/devdemo.wasm");
    let config = root.join("dev.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[plugins.devdemo]\npath = {:?}\n",
            root.join("data").display().to_string(),
            wasm.display().to_string()
        ),
    )
    .expect("config written");
    // Into the guests' target directory (the SDK's dependencies are built
    // there), without the host build's flags; the compiler's output (the
    // broken build's errors below) goes to build.log.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = format!(
        "env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS -u RUSTC_WRAPPER -u RUSTC_WORKSPACE_WRAPPER \
         CARGO_TARGET_DIR={:?} {cargo:?} build --release --quiet >>{:?} 2>&1",
        guest_target().display().to_string(),
        root.join("build.log").display().to_string()
    );
    let (events, mut seen) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    let dev = tokio::spawn(trellis_cli::dev::run(
        DevOptions {
            dir: dir.clone(),
            config: Some(config.clone()),
            build: Some(build),
            listen: None,
        },
        events,
        async {
            let _ = stopped.await;
        },
    ));

    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let DevEvent::Serving(addr) = next(&mut seen).await else {
        panic!("not serving");
    };
    let server = TestServer::at(addr);
    assert_eq!(greeting(&server).await, "Hello, you!");

    // A build error: reported, the running version keeps serving.
    let source = dir.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).expect("source");
    std::fs::write(&source, format!("{code}\nfn broken( {{\n")).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let failed = next(&mut seen).await;
    assert!(matches!(failed, DevEvent::BuildFailed(_)), "{failed:?}");
    assert_eq!(greeting(&server).await, "Hello, you!");

    // The fix, with a new greeting: rebuilt and reloaded.
    let howdy = code.replace("Hello, ", "Howdy, ");
    std::fs::write(&source, &howdy).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let reloaded = next(&mut seen).await;
    assert!(
        matches!(&reloaded, DevEvent::Reloaded { name, routes: 3, .. } if name == "devdemo"),
        "{reloaded:?}"
    );
    assert_eq!(greeting(&server).await, "Howdy, you!");

    // A version that asks for a capability trellis.toml does not grant
    // builds but is refused, with the line that would grant it.
    let asks = howdy.replace("Howdy, ", "Hey, ").replace(
        ".get(\"/devdemo\", index)",
        ".capability(\"sql\")\n        .get(\"/devdemo\", index)",
    );
    assert!(
        asks.contains("capability"),
        "the template's first route moved"
    );
    std::fs::write(&source, &asks).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    match next(&mut seen).await {
        DevEvent::Refused { name, reason } => {
            assert_eq!(name, "devdemo");
            assert!(
                reason.contains("[plugins.devdemo]") && reason.contains("grants"),
                "{reason}"
            );
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(greeting(&server).await, "Howdy, you!");

    // The grant, added to the config while the code does not build: the
    // failed build keeps the old server; the fix starts it again with the
    // new config, serving the version that asks for it.
    std::fs::write(&source, format!("{asks}\nfn broken( {{\n")).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let failed = next(&mut seen).await;
    assert!(matches!(failed, DevEvent::BuildFailed(_)), "{failed:?}");
    let granted = std::fs::read_to_string(&config).expect("config").replace(
        "[plugins.devdemo]\n",
        "[plugins.devdemo]\ngrants = [\"sql\"]\n",
    );
    std::fs::write(&config, granted).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let failed = next(&mut seen).await;
    assert!(matches!(failed, DevEvent::BuildFailed(_)), "{failed:?}");
    assert_eq!(greeting(&server).await, "Howdy, you!");
    std::fs::write(&source, &asks).expect("saved");
    assert_eq!(next(&mut seen).await, DevEvent::Building);
    let DevEvent::Serving(addr) = next(&mut seen).await else {
        panic!("not serving again");
    };
    let server = TestServer::at(addr);
    assert_eq!(greeting(&server).await, "Hey, you!");

    let _ = stop.send(());
    dev.await.expect("dev task").expect("dev ran");
}

/// The next event; builds are given minutes (a cold CI machine).
async fn next(seen: &mut mpsc::UnboundedReceiver<DevEvent>) -> DevEvent {
    tokio::time::timeout(Duration::from_secs(300), seen.recv())
        .await
        .expect("an event within 5 minutes")
        .expect("dev still running")
}

async fn greeting(server: &TestServer) -> String {
    let reply = server.get("/devdemo/hello/you").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["greeting"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}
