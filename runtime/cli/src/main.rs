//! The `trellis` binary: `serve`, `check` and `new`. The only place that uses
//! `anyhow`; everything below returns typed errors.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use trellis::{Config, Server, telemetry};

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Serve HTTP APIs from WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the configured plugins (the embedded examples without a config).
    Serve {
        /// The config file.
        #[arg(long, short, env = "TRELLIS_CONFIG")]
        config: Option<PathBuf>,
        /// What this node does, any of `api` (plugin routes), `worker`
        /// (run jobs) and `scheduler` (rescue, prune, cron schedules; one
        /// node leads), comma-separated.
        #[arg(long, env = "TRELLIS_ROLE", default_value = "api,worker,scheduler")]
        role: trellis::jobs::Roles,
    },
    /// Validate a config and load every plugin it names, without serving.
    Check {
        /// The config file.
        #[arg(long, short, env = "TRELLIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Build a plugin project, serve it, and rebuild and reload it on every
    /// saved change (build and load errors are shown; the previous version
    /// keeps serving).
    Dev {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The config (default: `<dir>/trellis.toml`).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The build command, run with `sh -c` in the project directory
        /// (default: `./build.sh` if there is one, else `cargo build --release`).
        #[arg(long)]
        build: Option<String>,
        /// Listen here instead of the config's `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Make a new plugin project, ready to build and serve (`trellis dev`).
    New {
        /// The plugin's name: lower-case letters, digits and `-`.
        name: String,
        /// Where to write it (default: `./<name>`); must be new or empty.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Trellis SDK (default: the one this binary was built with);
        /// Rust projects only.
        #[arg(long)]
        sdk: Option<PathBuf>,
        /// The language: rust, python or javascript.
        #[arg(long, default_value = "rust")]
        lang: trellis_cli::scaffold::Language,
    },
}

/// mimalloc rather than glibc's malloc: a request allocates on one worker
/// thread and frees on another, and instantiation allocates per request;
/// `docs/performance.md` has the measurement.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match trellis::server::runtime(None) {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config, role } => {
            let config = Config::load(config.as_deref())?;
            telemetry::init(&config.log)?;
            let server = Server::start_as(&config, role).await?;
            server.run(trellis::server::shutdown_signal()).await;
            Ok(())
        }
        Command::Dev {
            dir,
            config,
            build,
            listen,
        } => {
            let (events, mut shown) = tokio::sync::mpsc::unbounded_channel();
            let printer = tokio::spawn(async move {
                while let Some(event) = shown.recv().await {
                    println!("[trellis dev] {event}");
                }
            });
            let options = trellis_cli::dev::DevOptions {
                dir,
                config,
                build,
                listen,
            };
            trellis_cli::dev::run(options, events, trellis::server::shutdown_signal()).await?;
            let _ = printer.await;
            Ok(())
        }
        Command::New {
            name,
            dir,
            sdk,
            lang,
        } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            let sdk = sdk.unwrap_or_else(|| PathBuf::from(trellis_cli::scaffold::SDK));
            let written = trellis_cli::scaffold::new_project(lang, &name, &dir, &sdk)?;
            println!("created plugin `{name}` in {}:", dir.display());
            for file in written {
                println!("  {}", file.display());
            }
            println!("next: cd {} && trellis dev", dir.display());
            Ok(())
        }
        Command::Check { config } => {
            let shown = config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "the default config".into());
            let config = Config::load(config.as_deref())?;
            let routes = trellis::server::check(&config)
                .await
                .with_context(|| format!("{shown} is not servable"))?;
            println!("{shown} is valid: {routes} routes");
            Ok(())
        }
    }
}
