#![doc = include_str!("../README.md")]

pub mod deployment;
pub mod harness;
pub mod shim;
