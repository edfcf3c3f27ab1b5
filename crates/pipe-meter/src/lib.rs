//! # pipe-meter
//!
//! Deterministic VM-to-VM latency (qperf `tcp_lat`) and throughput (iperf2) measurement:
//! validate → preflight → measure → compute → compare → report, every command through the
//! safety-shell gate and every stage written as an artifact. No LLM anywhere.
//!
//! - [`config`]: flags and `config.env` keys, validated ([`config::PipeConfig`]);
//! - [`parse`]: qperf and iperf2 output parsers (never panic);
//! - [`stats`]: nearest-rank percentiles and the anomaly rules;
//! - [`pipeline`]: the stages, entry point [`pipeline::run_pipe_meter`];
//! - [`report`]: the console summary;
//! - [`history`]: past results of a (source, dest) pair as a table and an SVG chart;
//! - [`store`]: stored results and baselines, local and in the blob container.
//!
//! ```
//! use pipe_meter::stats::{compute, Anomaly};
//! let s = compute(&[100.0, 120.0, 150.0]).unwrap();
//! assert_eq!(s.p90, 150.0);          // nearest rank: sorted[floor(0.9*3)]
//! assert_eq!(s.anomaly, None);       // (150-100)/100 = 0.50 is stable
//! assert_eq!(compute(&[0.0, 5.0]).unwrap().anomaly, Some(Anomaly::ConnectivityDrop));
//! ```

#![forbid(unsafe_code)]

pub mod config;
pub mod history;
pub mod nsg;
pub mod parse;
pub mod pipeline;
pub mod remote;
pub mod report;
pub mod stats;
pub mod store;

pub use config::{CompareMode, PipeConfig, PipeConfigError, TestType};
pub use pipeline::{run_pipe_meter, PipelineError, PipelineResult, Progress, RunOptions, Status};
