//! Where a request waits and runs: the served model versions (loaded, contract-checked,
//! warmed up), the scheduler that batches their requests onto worker threads, the output
//! guards, the registry of what is served, and the repository they come from and are reloaded
//! from.

pub mod admission;
pub mod backends;
mod binding;
pub mod contract;
mod guards;
pub mod load_error;
pub mod model;
pub mod registry;
pub mod reload;
pub mod repository;
pub mod scheduler;
pub(crate) mod watch;
