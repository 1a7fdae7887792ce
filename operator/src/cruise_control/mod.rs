//! Cruise Control access (DESIGN §9): a REST client for the calls Koperator makes (state, load,
//! partition load, add/remove broker, rebalance, remove disks, stop, user tasks) and the JSON
//! they answer.

pub mod client;
pub mod types;

pub use client::{
    Answer, Call, CallKind, Client, ClientOptions, Concurrency, Error, OperationOptions, Rebalance, Refusal, Timeouts,
    base_url,
};
pub use types::*;

#[cfg(test)]
mod tests;
