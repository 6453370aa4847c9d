//! The `trellis` command's own work beyond serving: `trellis dev` (build,
//! serve, rebuild and reload on every saved change) and `trellis new` (a
//! plugin project). Above the runtime library (`trellis`), which knows
//! nothing of them.

#![deny(missing_docs)]

pub mod dev;
pub mod scaffold;
