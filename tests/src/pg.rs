//! PostgreSQL for tests: each test gets its own namespace (runtime schema,
//! plugin roles and schemas) in the shared test database, dropped at the
//! end; namespaces left by earlier test processes that are gone are swept
//! first (those of test processes still running are theirs).

use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The admin URL tests use (`TRELLIS_TEST_PG_URL` overrides).
pub fn admin_url() -> String {
    std::env::var("TRELLIS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A namespace of one test.
#[derive(Debug)]
pub struct Namespace {
    /// `tt_<pid>_<n>`.
    pub name: String,
}

static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

impl Namespace {
    /// A new namespace; the first call per process sweeps stale ones.
    pub async fn new() -> Namespace {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        SWEPT
            .get_or_init(|| drop_matching("tt\\_%", left_by_a_finished_process))
            .await;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Namespace {
            name: format!("tt_{}_{n}", std::process::id()),
        }
    }

    /// The `[sql.postgres]` table for this namespace.
    pub fn toml(&self) -> String {
        format!(
            "[sql.postgres]\nurl = {:?}\nnamespace = {:?}\n",
            admin_url(),
            self.name
        )
    }

    /// Drops everything the runtime made in this namespace.
    pub async fn drop_all(self) {
        drop_matching(&format!("{}%", self.name.replace('_', "\\_")), |_| true).await;
    }
}

/// Whether namespace object `name` (`tt_<pid>_...`) was made by a test
/// process that is no longer running.
fn left_by_a_finished_process(name: &str) -> bool {
    let pid = name
        .strip_prefix("tt_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Drops schemas and roles whose names match `pattern` (LIKE) and `drop`.
async fn drop_matching(pattern: &str, drop: impl Fn(&str) -> bool) {
    let Ok(mut conn) = PgConnection::connect(&admin_url()).await else {
        return;
    };
    let schemas: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for (schema,) in schemas.into_iter().filter(|(name,)| drop(name)) {
        let _ = sqlx::query(AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
        )))
        .execute(&mut conn)
        .await;
    }
    let roles: Vec<(String,)> =
        sqlx::query_as("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
            .bind(pattern)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for (role,) in roles.into_iter().filter(|(name,)| drop(name)) {
        let _ = sqlx::query(AssertSqlSafe(format!("DROP OWNED BY \"{role}\" CASCADE")))
            .execute(&mut conn)
            .await;
        let _ = sqlx::query(AssertSqlSafe(format!("DROP ROLE IF EXISTS \"{role}\"")))
            .execute(&mut conn)
            .await;
    }
}

/// A private PostgreSQL primary and streaming standby made by
/// `tests/scripts/pg-pair.sh` on two loopback ports of their own, so a test
/// may pause replay or stop and restart the primary without touching the
/// machine's PostgreSQL. Torn down when dropped.
#[derive(Debug)]
pub struct Pair {
    dir: std::path::PathBuf,
    /// The primary's port.
    pub primary_port: u16,
    /// The standby's port (the primary's + 1).
    pub replica_port: u16,
    /// The certificate and key both serve, when they serve TLS only.
    ssl: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

impl Pair {
    /// Starts a pair on `primary_port` and the next port. Pick ports below
    /// the kernel's ephemeral range (32768 and up): a port there may be held
    /// by another test's server or connection.
    pub fn start(primary_port: u16) -> Pair {
        Pair::start_with(primary_port, None)
    }

    /// As [`Pair::start`], both serving TLS only with `cert` and `key`
    /// (cleartext connections are refused).
    pub fn start_tls(primary_port: u16, cert: &std::path::Path, key: &std::path::Path) -> Pair {
        Pair::start_with(primary_port, Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(
        primary_port: u16,
        ssl: Option<(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Pair {
        // One directory per port pair: a run that died leaves its clusters
        // there, and the script's `start` stops them before starting anew.
        let pair = Pair {
            dir: std::env::temp_dir().join(format!("trellis-pg-pair-{primary_port}")),
            primary_port,
            replica_port: primary_port + 1,
            ssl,
        };
        pair.run("start");
        pair
    }

    /// Runs a `pg-pair.sh` command (`stop-primary`, `start-primary`,
    /// `pause-replay`, ...); panics when it fails.
    pub fn run(&self, command: &str) {
        let script_path =
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-pair.sh");
        let mut script = std::process::Command::new("bash");
        if let Some((cert, key)) = &self.ssl {
            script
                .env("PG_PAIR_SSL_CERT", cert)
                .env("PG_PAIR_SSL_KEY", key);
        }
        let status = script
            .arg(&script_path)
            .arg(command)
            .env("PG_PAIR_DIR", &self.dir)
            .env("PG_PAIR_PRIMARY_PORT", self.primary_port.to_string())
            .env("PG_PAIR_REPLICA_PORT", self.replica_port.to_string())
            .status()
            .expect("run pg-pair.sh");
        assert!(status.success(), "pg-pair.sh {command} failed");
    }

    /// The admin URL of the server on `port`.
    pub fn url(&self, port: u16) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/postgres")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.run("stop");
    }
}
