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
#[cfg(feature = "app")]
pub mod musig2;
pub mod parent;
#[cfg(feature = "app")]
pub mod peers;
pub mod ports;
#[cfg(feature = "app")]
pub mod prove;
#[cfg(feature = "app")]
pub mod user_data;
#[cfg(feature = "app")]
pub mod vault;
#[cfg(feature = "app")]
pub mod wire;
