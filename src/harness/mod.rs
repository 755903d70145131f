//! The benchmark harness: scenarios as files, open- and closed-loop load, recorders,
//! and the results it publishes under `results/<scenario>/`.
//!
//! How a run flows: [`run`] runs a whole scenario (the baselines, then every point,
//! then the files); [`point`] runs one point: a [`target`] (the cluster under test) with a
//! [`node_recorder`] inside its nodes, a [`load`] that sends to its leader, a
//! [`reply_recorder`] for the answers, and [`summarize`], which turns both recorders'
//! histograms into the point's [`summary`].

pub mod baseline;
pub mod cpu;
pub mod environment;
pub mod faults;
pub mod follow;
pub mod histograms;
pub mod load;
pub mod load_process;
pub mod memory;
pub mod model;
pub mod node_recorder;
pub mod output;
pub mod plots;
pub mod point;
pub mod processes;
pub mod remote_port;
pub mod reply_recorder;
pub mod report;
pub mod run;
pub mod saturation;
pub mod scenario;
pub mod summarize;
pub mod summary;
pub mod target;
pub mod window;
