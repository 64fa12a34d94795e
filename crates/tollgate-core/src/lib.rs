//! The shared vocabulary of tollgate: usage buckets, prices and cost, the per-request
//! [`Record`], and the error type every crate maps into OpenAI's error shape.

pub mod config;
mod config_error;
mod config_seconds;
pub mod database;
mod env;
pub mod error;
pub mod price;
pub mod record;
pub mod redact;
pub mod routing;
mod secret;
pub mod source_map;
pub mod usage;

pub use error::{ErrorKind, Fault, GatewayError};
pub use price::{Cost, Price, PriceTable};
pub use record::{CacheState, Record, RecordStatus};
pub use usage::Usage;
