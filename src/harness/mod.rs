//! The benchmark harness: scenarios as files, open- and closed-loop load, recorders,
//! and the results it publishes under `results/<scenario>/`.

pub mod histograms;
pub mod summary;
