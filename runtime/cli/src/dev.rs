//! `trellis dev`: the plugin author's loop. Builds a plugin project, serves
//! it with its `trellis.toml` (the embedded defaults: SQLite, in-process
//! cache and queue), and on every saved change rebuilds it and reloads the
//! plugins it serves (a changed config starts the server again). A failed
//! build or a refused version is reported and the previous version keeps
//! serving.
//!
//! Changes are seen with the deployer's file watcher
//! ([`trellis::deploy::watch`]: accesses and metadata changes left out, a
//! batch once quiet, as an editor's save is several events). Reloads go
//! through the [`Deployer`], so a version is checked exactly as a hot
//! reload on a production node checks it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::RecursiveMode;
use tokio::sync::mpsc;

use trellis::deploy::Deployer;
use trellis::deploy::watch::Watcher;
use trellis::server::{Server, ServerHandle};
use trellis::{Config, telemetry};

/// Directories whose changes never trigger a build: build outputs, the
/// runtime's data, dependencies and version control.
const IGNORED: &[&str] = &[
    "target",
    ".trellis",
    "node_modules",
    ".git",
    "__pycache__",
    ".venv",
];

/// Quiet time after the last saved change before a build starts.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// What `trellis dev` was asked to do.
#[derive(Debug, Clone)]
pub struct DevOptions {
    /// The project directory.
    pub dir: PathBuf,
    /// The config (default: `<dir>/trellis.toml`).
    pub config: Option<PathBuf>,
    /// The build command, run by `sh -c` in `dir` (default: `./build.sh`
    /// when the project has one, else `cargo build --release` for a Cargo
    /// project).
    pub build: Option<String>,
    /// Overrides `server.listen`.
    pub listen: Option<SocketAddr>,
}

/// What happened, in order; `trellis dev` prints each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevEvent {
    /// A build started (after a change, or the first one).
    Building,
    /// The build failed; the previous version (if any) keeps serving.
    BuildFailed(String),
    /// Serving on this address.
    Serving(SocketAddr),
    /// The server did not start (a plugin did not load, a bad config).
    StartFailed(String),
    /// A plugin's new version serves.
    Reloaded {
        /// The plugin.
        name: String,
        /// Its manifest's version.
        version: String,
        /// Its routes.
        routes: usize,
        /// How long loading it took.
        load_ms: u64,
    },
    /// A plugin's new version was refused; the previous one serves.
    Refused {
        /// The plugin.
        name: String,
        /// Why, as the deployer says it.
        reason: String,
    },
}

impl std::fmt::Display for DevEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DevEvent::Building => write!(f, "building..."),
            DevEvent::BuildFailed(why) => write!(
                f,
                "build failed ({why}); fix it and save to rebuild (the previous version keeps serving)"
            ),
            DevEvent::Serving(addr) => write!(f, "serving on http://{addr}; watching for changes"),
            DevEvent::StartFailed(why) => {
                write!(f, "cannot serve: {why}\nfix it and save to try again")
            }
            DevEvent::Reloaded {
                name,
                version,
                routes,
                load_ms,
            } => write!(
                f,
                "reloaded {name} {version}: {routes} routes, loaded in {load_ms} ms"
            ),
            DevEvent::Refused { name, reason } => write!(
                f,
                "{name} refused, the previous version keeps serving: {reason}"
            ),
        }
    }
}

/// Why `trellis dev` cannot run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// No config to serve.
    #[error(
        "no config at {0} (`trellis new` writes one, naming the component the build makes); pass --config"
    )]
    NoConfig(PathBuf),
    /// Nothing says how to build the project.
    #[error("{0} has no build.sh and no Cargo.toml; pass --build '<command>'")]
    NoBuild(PathBuf),
    /// The project directory cannot be watched.
    #[error("cannot watch {path}: {message}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// The build command for `dir` when none is given.
pub fn default_build(dir: &Path) -> Result<String, DevError> {
    if dir.join("build.sh").is_file() {
        Ok("./build.sh".into())
    } else if dir.join("Cargo.toml").is_file() {
        Ok("cargo build --release".into())
    } else {
        Err(DevError::NoBuild(dir.to_path_buf()))
    }
}

/// Runs the loop until `shutdown` completes, reporting on `events`.
pub async fn run(
    options: DevOptions,
    events: mpsc::UnboundedSender<DevEvent>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DevError> {
    let dir = std::path::absolute(&options.dir).unwrap_or(options.dir.clone());
    let config_path = options
        .config
        .clone()
        .unwrap_or_else(|| dir.join("trellis.toml"));
    let config_path = std::path::absolute(&config_path).unwrap_or(config_path);
    if !config_path.is_file() {
        return Err(DevError::NoConfig(config_path));
    }
    let build = match &options.build {
        Some(command) => command.clone(),
        None => default_build(&dir)?,
    };
    let (_watcher, mut changes) = watch(&dir, &config_path)?;
    let report = |event: DevEvent| {
        let _ = events.send(event);
    };
    let mut serving: Option<(ServerHandle, Arc<Deployer>, Vec<String>)> = None;
    let mut log_ready = false;

    let cycle = async {
        // A changed config (a grant added, a setting) is not a reload: the
        // server starts again with it, after the next build that succeeds.
        let mut config_changed = false;
        loop {
            report(DevEvent::Building);
            match run_build(&build, &dir).await {
                Err(why) => report(DevEvent::BuildFailed(why)),
                Ok(()) => match &serving {
                    Some((_, deployer, names)) if !config_changed => {
                        for name in names {
                            report(reload(deployer, name).await);
                        }
                    }
                    _ => {
                        if let Some((handle, _, _)) = serving.take() {
                            handle.shutdown().await;
                        }
                        match start(&config_path, &dir, options.listen, &mut log_ready).await {
                            Ok(started) => {
                                report(DevEvent::Serving(started.0.addr()));
                                serving = Some(started);
                                config_changed = false;
                            }
                            Err(why) => report(DevEvent::StartFailed(why)),
                        }
                    }
                },
            }
            // Wait for the next batch of changes that matters (or take
            // those made during the build, all of them at once).
            loop {
                let Some(paths) = changes.recv().await else {
                    return;
                };
                let config = paths.contains(&config_path);
                config_changed |= config;
                if config || paths.iter().any(|p| is_source(&dir, p)) {
                    break;
                }
            }
            while let Ok(paths) = changes.try_recv() {
                config_changed |= paths.contains(&config_path);
            }
        }
    };
    tokio::select! {
        () = cycle => {}
        () = shutdown => {}
    }
    if let Some((handle, _, _)) = serving {
        handle.shutdown().await;
    }
    Ok(())
}

/// Loads the config (with the data directory under the project unless it
/// is absolute), starts the server and returns it with its plugin names.
async fn start(
    config_path: &Path,
    dir: &Path,
    listen: Option<SocketAddr>,
    log_ready: &mut bool,
) -> Result<(ServerHandle, Arc<Deployer>, Vec<String>), String> {
    let mut config = Config::load(Some(config_path)).map_err(|e| e.to_string())?;
    if !*log_ready {
        telemetry::init(&config.log).map_err(|e| e.to_string())?;
        *log_ready = true;
    }
    if config.data_dir.is_relative() {
        config.data_dir = dir.join(&config.data_dir);
    }
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    // dev reloads after each build itself, so it can say how it went.
    config.deploy.watch = false;
    let names = config.plugins().into_keys().collect();
    let server = Server::start(&config)
        .await
        .map_err(|e| format!("{:#}", anyhow::Error::from(e)))?;
    let deployer = server.app().deploy().clone();
    let handle = server.spawn().map_err(|e| e.to_string())?;
    Ok((handle, deployer, names))
}

async fn reload(deployer: &Deployer, name: &str) -> DevEvent {
    match deployer.reload(name).await {
        Ok(view) => DevEvent::Reloaded {
            name: name.to_string(),
            version: view.version.unwrap_or_default(),
            routes: view.routes.len(),
            load_ms: view.load_ms.unwrap_or_default(),
        },
        Err(err) => DevEvent::Refused {
            name: name.to_string(),
            reason: err.to_string(),
        },
    }
}

/// Runs `command` with `sh -c` in `dir`, its output on the terminal.
async fn run_build(command: &str, dir: &Path) -> Result<(), String> {
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|err| format!("`{command}` did not run: {err}"))?;
    if status.success() {
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "built");
        Ok(())
    } else {
        Err(format!("`{command}` exited with {status}"))
    }
}

/// Watches `dir` recursively, and the config's directory when it is
/// elsewhere.
fn watch(
    dir: &Path,
    config: &Path,
) -> Result<(Watcher, mpsc::UnboundedReceiver<Vec<PathBuf>>), DevError> {
    let mut dirs = vec![(dir.to_path_buf(), RecursiveMode::Recursive)];
    if let Some(parent) = config.parent().filter(|p| !p.starts_with(dir)) {
        dirs.push((parent.to_path_buf(), RecursiveMode::NonRecursive));
    }
    Watcher::start(&dirs, DEBOUNCE).map_err(|message| DevError::Watch {
        path: dir.to_path_buf(),
        message,
    })
}

/// Whether a change to `path` (under `root`) calls for a build: not in an
/// ignored directory, not a component, not a lock file the build itself
/// writes, not an editor's swap or backup file.
fn is_source(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let ignored_dir = relative
        .components()
        .any(|c| IGNORED.iter().any(|i| c.as_os_str() == *i));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let not_source = name == "Cargo.lock"
        || name.ends_with(".wasm")
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.starts_with(".#");
    !ignored_dir && !not_source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_from_outputs() {
        let root = Path::new("/p");
        assert!(is_source(root, Path::new("/p/src/lib.rs")));
        assert!(is_source(root, Path::new("/p/Cargo.toml")));
        assert!(!is_source(root, Path::new("/p/target/release/x.d")));
        assert!(!is_source(root, Path::new("/p/.trellis/runtime.db")));
        assert!(!is_source(root, Path::new("/p/app.wasm")));
        assert!(!is_source(root, Path::new("/p/Cargo.lock")));
        assert!(!is_source(root, Path::new("/p/src/.lib.rs.swp")));
        assert!(!is_source(root, Path::new("/p/node_modules/a/b.js")));
        assert!(!is_source(root, Path::new("/elsewhere/lib.rs")));
    }

    #[test]
    fn the_build_follows_the_project() {
        let dir = std::env::temp_dir().join(format!("trellis-dev-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        assert!(matches!(default_build(&dir), Err(DevError::NoBuild(_))));
        std::fs::write(dir.join("Cargo.toml"), "").expect("write");
        assert_eq!(
            default_build(&dir).ok().as_deref(),
            Some("cargo build --release")
        );
        std::fs::write(dir.join("build.sh"), "").expect("write");
        assert_eq!(default_build(&dir).ok().as_deref(), Some("./build.sh"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
