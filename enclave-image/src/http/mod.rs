//! HTTP/1.1 served by hyper on blocking threads: one thread per connection, a bounded number
//! of connections, every size and time limited. Handlers are plain synchronous functions
//! from a buffered [`Request`] to a [`Response`]. Cross-origin requests from browsers are
//! answered as [`cors`] says.

pub mod cors;
mod exec;
pub mod head;
mod server;
mod source;

pub use server::{Handler, Limits, Request, Response, Server, Source, Stopper};
