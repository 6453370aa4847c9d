//! The Trellis plugin SDK: write HTTP handlers in Rust, compile them to a
//! WebAssembly component, and let the Trellis runtime serve them.
//!
//! A plugin is a `cdylib` crate built for `wasm32-wasip2`. It builds an
//! [`App`] (its routes and the capabilities it uses) and hands it to the
//! [`plugin!`] macro:
//!
//! ```
//! use trellis_sdk::prelude::*;
//!
//! fn app() -> App {
//!     App::new("hello", env!("CARGO_PKG_VERSION"))
//!         .get("/hello/{name}", hello)
//! }
//!
//! fn hello(req: Request) -> Result<Response> {
//!     let name: String = req.param("name")?;
//!     Response::json(&serde_json::json!({ "greeting": format!("Hello, {name}!") }))
//! }
//!
//! trellis_sdk::plugin!(app);
//! ```
//!
//! Handlers return [`Result<Response>`]; an [`Error`] becomes an
//! `application/problem+json` response with its status and the request id.

#![deny(missing_docs)]

mod app;
mod error;
mod request;
mod response;

pub mod cache;
pub mod config;
pub mod http;
pub mod jobs;
pub mod lock;
pub mod log;
pub mod page;
pub mod sql;
pub mod testing;
pub mod trace;

pub use app::{App, BatchHandler, Handler, Migration, RouteCache, Schema};
pub use error::{Error, Result};
pub use request::Request;
pub use response::Response;

/// The raw bindings generated from the WIT world. Plugin code rarely needs
/// them; they are public so the [`plugin!`] macro can reach them.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "trellis_sdk::bindings",
    });
}

/// Everything a handler module usually needs.
pub mod prelude {
    pub use crate::{App, Error, Request, Response, Result};
}

#[doc(hidden)]
pub mod __rt {
    //! Glue called by the code that [`plugin!`](crate::plugin) expands to.
    pub use crate::app::{
        describe, handle, handle_batch, job_kinds, migrations, run_job, schedules,
    };
    pub use crate::bindings::exports::trellis::plugin::batch_handler::Guest as BatchGuest;
    pub use crate::bindings::exports::trellis::plugin::http_handler::Guest as HttpGuest;
    pub use crate::bindings::exports::trellis::plugin::job_handler::{
        Guest as JobGuest, Job as RawJob, JobError as RawJobError, JobKind as RawJobKind,
        Schedule as RawSchedule,
    };
    pub use crate::bindings::exports::trellis::plugin::manifest::{
        Guest as ManifestGuest, PluginManifest,
    };
    pub use crate::bindings::exports::trellis::plugin::migrations::{
        Guest as MigrationsGuest, Migration as RawMigration,
    };
    pub use crate::bindings::trellis::plugin::types::{
        Request as RawRequest, Response as RawResponse,
    };
}

/// Exports a plugin from this crate. Takes the path of a `fn() -> App`.
///
/// Invoke it once, at the crate root of a `cdylib` crate.
#[macro_export]
macro_rules! plugin {
    ($app:path) => {
        #[doc(hidden)]
        struct __TrellisPlugin;

        impl $crate::__rt::ManifestGuest for __TrellisPlugin {
            fn describe() -> $crate::__rt::PluginManifest {
                $crate::__rt::describe(&$app())
            }
        }

        impl $crate::__rt::HttpGuest for __TrellisPlugin {
            fn handle(req: $crate::__rt::RawRequest) -> $crate::__rt::RawResponse {
                $crate::__rt::handle(&$app(), req)
            }
        }

        impl $crate::__rt::MigrationsGuest for __TrellisPlugin {
            fn all() -> Vec<$crate::__rt::RawMigration> {
                $crate::__rt::migrations(&$app())
            }
        }

        impl $crate::__rt::JobGuest for __TrellisPlugin {
            fn kinds() -> Vec<$crate::__rt::RawJobKind> {
                $crate::__rt::job_kinds(&$app())
            }

            fn schedules() -> Vec<$crate::__rt::RawSchedule> {
                $crate::__rt::schedules(&$app())
            }

            fn run(
                job: $crate::__rt::RawJob,
            ) -> ::core::result::Result<Vec<u8>, $crate::__rt::RawJobError> {
                $crate::__rt::run_job(&$app(), job)
            }
        }

        impl $crate::__rt::BatchGuest for __TrellisPlugin {
            fn handle_batch(
                requests: Vec<$crate::__rt::RawRequest>,
            ) -> Vec<$crate::__rt::RawResponse> {
                $crate::__rt::handle_batch(&$app(), requests)
            }
        }

        $crate::bindings::__export_world!(__TrellisPlugin with_types_in $crate::bindings);
    };
}
