#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

#[cfg(feature = "app")]
pub mod api;
#[cfg(feature = "app")]
pub mod encap;
#[cfg(feature = "app")]
pub mod endpoint;
#[cfg(feature = "app")]
pub mod error;
#[cfg(feature = "app")]
pub mod manifest;
pub mod parent;
pub mod ports;
#[cfg(feature = "app")]
pub mod prove;
#[cfg(feature = "app")]
pub mod signing;
#[cfg(feature = "app")]
pub mod user_data;
#[cfg(feature = "app")]
pub mod vault;
