//! examples/deploy/ agrees with the binary. A schema check
//! (examples/deploy/check.sh) says the manifests are valid Kubernetes; this
//! says they would work: the ConfigMap's trellis.toml is a valid config and
//! a node started from it answers every probe path with 200 and no token,
//! the ports named by the probes are the port it listens on, the roles are
//! ones `trellis serve --role` accepts, and the grace periods outlast the
//! drain the config asks for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::StatusCode;
use trellis::Config;
use trellis::jobs::Roles;
use trellis_tests::TestServer;
use yaml_rust2::{Yaml, YamlLoader};

/// The process exits within about a second of `shutdown_grace`
/// (docs/operations.md#drain); the platform's kill timeout must leave
/// more than that.
const EXIT_SLACK: Duration = Duration::from_secs(1);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/deploy")
}

/// Every document of every manifest, with the file it came from.
fn manifests() -> Vec<(String, Yaml)> {
    let dir = deploy_dir().join("kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/deploy/kubernetes/")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read manifest");
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        for doc in
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{name} is not YAML: {e}"))
        {
            docs.push((name.clone(), doc));
        }
    }
    docs
}

fn str_of<'a>(yaml: &'a Yaml, what: &str) -> &'a str {
    yaml.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {yaml:?}"))
}

fn one<'a>(docs: &'a [(String, Yaml)], kind: &str, name: &str) -> &'a Yaml {
    let found: Vec<&Yaml> = docs
        .iter()
        .map(|(_, doc)| doc)
        .filter(|doc| doc["kind"].as_str() == Some(kind))
        .filter(|doc| doc["metadata"]["name"].as_str() == Some(name))
        .collect();
    assert_eq!(found.len(), 1, "one {kind} named {name}");
    found[0]
}

fn deployments(docs: &[(String, Yaml)]) -> Vec<&Yaml> {
    let found: Vec<&Yaml> = docs
        .iter()
        .map(|(_, doc)| doc)
        .filter(|doc| doc["kind"].as_str() == Some("Deployment"))
        .collect();
    assert!(found.len() >= 2, "an API and a worker Deployment");
    found
}

/// The ConfigMap's trellis.toml, as the pods see it.
fn trellis_toml(docs: &[(String, Yaml)]) -> String {
    let map = one(docs, "ConfigMap", "trellis");
    str_of(&map["data"]["trellis.toml"], "data.trellis.toml").to_string()
}

/// The `trellis` container of a Deployment.
fn container(deployment: &Yaml) -> &Yaml {
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .expect("containers");
    containers
        .iter()
        .find(|c| c["name"].as_str() == Some("trellis"))
        .expect("a container named trellis")
}

fn args(container: &Yaml) -> Vec<&str> {
    container["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| str_of(a, "an arg"))
        .collect()
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args.get(at + 1)
        .unwrap_or_else(|| panic!("a value after {flag}"))
}

/// The container port a probe or Service names: by number, or by the name
/// of one of the container's ports.
fn port_of(container: &Yaml, port: &Yaml) -> i64 {
    if let Some(number) = port.as_i64() {
        return number;
    }
    let name = str_of(port, "a port");
    container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no container port named {name}"))["containerPort"]
        .as_i64()
        .expect("containerPort")
}

/// The config the pods would run: the ConfigMap's file, no overrides.
fn pod_config(toml: &str) -> Config {
    Config::parse(
        toml,
        Path::new("trellis.toml"),
        Vec::<(String, String)>::new(),
    )
    .unwrap_or_else(|e| panic!("the ConfigMap's trellis.toml is invalid: {e}"))
}

#[test]
fn deployments_match_the_config_and_the_cli() {
    let docs = manifests();
    let config = pod_config(&trellis_toml(&docs));
    let port = i64::from(config.server.listen.port());
    assert!(
        config.server.listen.ip().is_unspecified(),
        "pods must listen on all interfaces for the kubelet and the Service: {}",
        config.server.listen
    );
    // The kubelet probes without a token.
    assert!(
        config.admin.public_health,
        "admin.public_health must stay true"
    );
    let drain = config.server.drain_delay + config.server.shutdown_grace + EXIT_SLACK;

    let secret = one(&docs, "Secret", "trellis");
    let mut roles_seen = Roles {
        api: false,
        worker: false,
        scheduler: false,
    };
    for deployment in deployments(&docs) {
        let name = str_of(&deployment["metadata"]["name"], "name");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = container(deployment);

        let http = container["ports"]
            .as_vec()
            .expect("ports")
            .iter()
            .find(|p| p["name"].as_str() == Some("http"))
            .unwrap_or_else(|| panic!("{name}: a port named http"));
        assert_eq!(
            http["containerPort"].as_i64(),
            Some(port),
            "{name}: containerPort"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some(path), "{name}: {probe} path");
            assert_eq!(
                port_of(container, &get["port"]),
                port,
                "{name}: {probe} port"
            );
        }

        let grace = pod["terminationGracePeriodSeconds"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: terminationGracePeriodSeconds"));
        assert!(
            Duration::from_secs(grace as u64) > drain,
            "{name}: terminationGracePeriodSeconds {grace} must exceed drain_delay + \
             shutdown_grace + {EXIT_SLACK:?} = {drain:?}"
        );
        // The Service `trellis` would otherwise put TRELLIS_PORT etc. in
        // the environment, beside the config overrides.
        assert_eq!(
            pod["enableServiceLinks"].as_bool(),
            Some(false),
            "{name}: enableServiceLinks"
        );
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}: runAsNonRoot"
        );

        // --config names the ConfigMap's file where it is mounted.
        let args = args(container);
        let config_path = flag(&args, "--config");
        let mounts = container["volumeMounts"].as_vec().expect("volumeMounts");
        let volumes = pod["volumes"].as_vec().expect("volumes");
        let config_volume = volumes
            .iter()
            .find(|v| v["configMap"]["name"].as_str() == Some("trellis"))
            .unwrap_or_else(|| panic!("{name}: a volume from the ConfigMap"));
        let config_mount = mounts
            .iter()
            .find(|m| m["name"] == config_volume["name"])
            .unwrap_or_else(|| panic!("{name}: the ConfigMap mounted"));
        assert_eq!(
            Path::new(str_of(&config_mount["mountPath"], "mountPath")).join("trellis.toml"),
            Path::new(config_path),
            "{name}: --config"
        );
        // data_dir is a volume, writable under the read-only root.
        assert!(
            mounts.iter().any(|m| m["mountPath"].as_str()
                == Some(&*config.data_dir.to_string_lossy())
                && m["readOnly"].as_bool() != Some(true)),
            "{name}: a writable volume at data_dir {}",
            config.data_dir.display()
        );

        // --role takes what `trellis serve --role` parses.
        let roles: Roles = flag(&args, "--role")
            .parse()
            .unwrap_or_else(|e| panic!("{name}: --role: {e}"));
        roles_seen.api |= roles.api;
        roles_seen.worker |= roles.worker;
        roles_seen.scheduler |= roles.scheduler;

        // Every variable is a config override or a role, from keys the
        // Secret has.
        for var in container["env"].as_vec().expect("env") {
            let var_name = str_of(&var["name"], "env name");
            assert!(var_name.starts_with("TRELLIS_"), "{name}: {var_name}");
            let from = &var["valueFrom"]["secretKeyRef"];
            if let Some(key) = from["key"].as_str() {
                assert_eq!(from["name"].as_str(), Some("trellis"), "{name}: {var_name}");
                assert!(
                    !secret["stringData"][key].is_badvalue(),
                    "{name}: {var_name} names Secret key {key}, which the Secret lacks"
                );
            }
        }
    }
    assert!(
        roles_seen.api && roles_seen.worker && roles_seen.scheduler,
        "some Deployment must take each role (the scheduler included, or \
         schedules never fire): {roles_seen:?}"
    );
}

#[test]
fn the_role_flag_is_the_one_main_rs_declares() {
    // The Deployments pass `--role`; clap derives it from the field `role`
    // of `serve` with `#[arg(long ...)]`.
    let main = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/cli/src/main.rs"),
    )
    .expect("runtime/cli/src/main.rs");
    let field = main
        .find("role: trellis::jobs::Roles")
        .expect("serve's role field");
    let attribute = main[..field].rfind("#[arg(").expect("its #[arg]");
    assert!(
        main[attribute..field].starts_with("#[arg(long"),
        "role is a --long flag: {}",
        &main[attribute..field]
    );
    let config = main
        .find("config: Option<PathBuf>")
        .expect("serve's config field");
    let attribute = main[..config].rfind("#[arg(").expect("its #[arg]");
    assert!(main[attribute..config].starts_with("#[arg(long"));
}

#[test]
fn service_hpa_and_budgets_select_the_deployments() {
    let docs = manifests();
    let api = one(&docs, "Deployment", "trellis-api");
    let api_labels = &api["spec"]["template"]["metadata"]["labels"];
    let selects = |selector: &Yaml, labels: &Yaml| {
        selector
            .as_hash()
            .expect("a selector")
            .iter()
            .all(|(k, v)| labels[str_of(k, "label")] == *v)
    };

    let service = one(&docs, "Service", "trellis");
    assert!(selects(&service["spec"]["selector"], api_labels));
    for port in service["spec"]["ports"].as_vec().expect("ports") {
        let port = port_of(container(api), &port["targetPort"]);
        assert_eq!(
            port,
            i64::from(pod_config(&trellis_toml(&docs)).server.listen.port())
        );
    }

    let hpa = one(&docs, "HorizontalPodAutoscaler", "trellis-api");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["kind"].as_str(),
        Some("Deployment")
    );
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"].as_str(),
        Some("trellis-api")
    );
    assert!(
        !container(api)["resources"]["requests"]["cpu"].is_badvalue(),
        "a CPU HPA needs a CPU request"
    );

    let mut budgeted = BTreeSet::new();
    for (_, pdb) in docs
        .iter()
        .filter(|(_, d)| d["kind"].as_str() == Some("PodDisruptionBudget"))
    {
        for deployment in deployments(&docs) {
            let labels = &deployment["spec"]["template"]["metadata"]["labels"];
            if selects(&pdb["spec"]["selector"]["matchLabels"], labels) {
                budgeted.insert(str_of(&deployment["metadata"]["name"], "name").to_string());
            }
        }
    }
    assert_eq!(
        budgeted.len(),
        deployments(&docs).len(),
        "a PDB per Deployment"
    );
}

#[test]
fn image_and_unit_agree_with_the_config() {
    let docs = manifests();
    let config = pod_config(&trellis_toml(&docs));
    let port = config.server.listen.port();
    let dockerfile =
        std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("the Dockerfile");
    assert!(dockerfile.contains(&format!("\nEXPOSE {port}\n")));
    assert!(dockerfile.contains(&format!("TRELLIS_SERVER__LISTEN=0.0.0.0:{port}")));
    assert!(dockerfile.contains(&format!("TRELLIS_DATA_DIR={}", config.data_dir.display())));
    assert!(dockerfile.contains("\nSTOPSIGNAL SIGTERM\n"));

    // The unit runs a config of its own; its stop timeout must outlast the
    // drain with the defaults.
    let unit =
        std::fs::read_to_string(deploy_dir().join("systemd/trellis.service")).expect("the unit");
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .expect("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    let defaults = Config::default();
    assert!(
        Duration::from_secs(stop)
            > defaults.server.drain_delay + defaults.server.shutdown_grace + EXIT_SLACK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_from_the_configmap_answers_the_probes_without_a_token() {
    let docs = manifests();
    // The ConfigMap's file as it is, on a loopback port and a fresh
    // data_dir; SQLite, as no database URL is set.
    let server = TestServer::start_config(&trellis_tests::config(&trellis_toml(&docs))).await;
    let mut paths = BTreeSet::new();
    for deployment in deployments(&docs) {
        let container = container(deployment);
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
            paths.insert(str_of(&container[probe]["httpGet"]["path"], "probe path").to_string());
        }
    }
    assert!(paths.len() >= 2, "{paths:?}");
    for path in &paths {
        let reply = server.get(path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    }
    // And it serves the plugins it configures.
    assert_eq!(server.get("/hello").await.status, StatusCode::OK);
    server.shutdown().await;
}
