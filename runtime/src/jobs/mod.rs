//! Running durable background jobs: the workers of this node ([`worker`])
//! and the leader's maintenance ([`maintenance`]: rescuer, pruner,
//! scheduler, SQLite outbox). The queue itself (enqueueing, kinds,
//! backoff) is the `jobs` capability's (`capability::jobs::queue`);
//! storage is `backend::jobs`; job logic runs in plugins' `job-handler`
//! export.
//!
//! Layer: below `http` and `server`, above `deploy` (workers find the live
//! plugins in its registry) and `plugin` (a worker runs jobs in plugin
//! instances).

pub mod maintenance;
pub mod worker;

pub use worker::{Canceller, Workers};

/// What a node does: serve the API, run jobs, lead maintenance. Any
/// combination (`trellis serve --role api,worker,scheduler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Serve plugin routes.
    pub api: bool,
    /// Run jobs.
    pub worker: bool,
    /// Take part in the leader election for rescue, pruning and schedules.
    pub scheduler: bool,
}

impl Default for Roles {
    fn default() -> Self {
        Roles {
            api: true,
            worker: true,
            scheduler: true,
        }
    }
}

impl std::str::FromStr for Roles {
    type Err = String;

    fn from_str(list: &str) -> Result<Roles, String> {
        let mut roles = Roles {
            api: false,
            worker: false,
            scheduler: false,
        };
        for role in list.split(',').map(str::trim) {
            match role {
                "api" => roles.api = true,
                "worker" => roles.worker = true,
                "scheduler" => roles.scheduler = true,
                other => {
                    return Err(format!(
                        "unknown role `{other}`; roles are api, worker and scheduler"
                    ));
                }
            }
        }
        Ok(roles)
    }
}

#[cfg(test)]
mod tests {
    use super::Roles;

    #[test]
    fn roles_parse_from_a_list_and_name_the_valid_ones() {
        let roles: Roles = "worker, scheduler".parse().expect("valid roles");
        assert!(!roles.api && roles.worker && roles.scheduler);
        let roles: Roles = "api".parse().expect("a valid role");
        assert!(roles.api && !roles.worker && !roles.scheduler);
        let err = "api,cron".parse::<Roles>().expect_err("an unknown role");
        assert!(
            err.contains("`cron`") && err.contains("api, worker and scheduler"),
            "{err}"
        );
    }
}
