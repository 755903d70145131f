//! The benchmark harness: scenarios as files, open- and closed-loop load, recorders,
//! and the results it publishes under `results/<scenario>/`.

pub mod baseline;
pub mod environment;
pub mod histograms;
pub mod load;
pub mod model;
pub mod output;
pub mod plots;
pub mod recorder;
pub mod report;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod summary;
