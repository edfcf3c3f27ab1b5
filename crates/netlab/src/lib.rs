//! # netlab
//!
//! A local Azure-like lab built from real Linux networking: network namespaces as VMs, a
//! fabric namespace that enforces NSGs (nftables) and routes (policy routing), sshd in each
//! VM, real iperf2/qperf servers and fault injection. See `docs/netlab.md`.
//!
//! It depends on no other workspace crate: it is the ground truth the inspectors are
//! checked against.

#![forbid(unsafe_code)]

pub mod addr;
pub mod az;
pub mod blobd;
pub mod cli;
pub mod emulator;
pub mod faults;
pub mod impair;
pub mod inject;
pub mod lab;
pub mod nsg;
pub mod routes;
pub mod scenario;
pub mod serve;
pub mod storage_state;
pub mod sys;
pub mod traffic;
