#![doc = include_str!("../README.md")]

pub mod blobs;
pub mod config;
pub mod creds;
pub mod crs;
pub mod egress;
pub mod log;
pub mod logsink;
pub mod relay;
pub mod s3;
pub mod store;
pub mod wire;
