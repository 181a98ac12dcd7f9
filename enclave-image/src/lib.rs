#![doc = include_str!("../README.md")]

pub mod api;
pub mod boot;
pub mod http;
pub mod init;
pub mod log;
pub mod nsm;
pub mod parent;
pub mod peers;
pub mod prover;
pub mod registry;
pub mod seal;
