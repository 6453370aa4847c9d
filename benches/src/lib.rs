//! Benchmark support: the load generator behind `trellis-load`.

pub mod load;
