//! # flowstate-model
//!
//! The words every part of flowstate shares, declared once: the store (which adds SQLite), the dashboard (whose
//! pages also run in the browser, compiled to wasm32) and the CLI all use these. No database code: this crate
//! builds for `wasm32-unknown-unknown`.
//!
//! - [`status`]: the five status names, and how legacy values and NULL are named and shown;
//! - [`RunSummary`]: a run as lists show it, and [`rfc3339`], the one spelling of an instant in flowstate's JSON;
//! - [`percentiles`]: which percentiles are reported and how a rank is chosen;
//! - [`limits`]: sizes and ranges the store enforces and the CLI and pages check first;
//! - [`span`]: the one parser of spans of time (`30m`, `24h`, `7d`, `2w`);
//! - [`url`]: percent-encoding for the links and redirects flowstate writes;
//! - [`steps`]: a run's step history read as a list of steps (the run page and `flowstate show`).
#![warn(missing_docs)]

pub mod bounds;
pub mod limits;
pub mod percentiles;
pub mod span;
pub mod status;
pub mod steps;
mod summary;
pub mod url;

pub use percentiles::Percentiles;
pub use span::{Span, SpanError};
pub use status::{Status, UnknownStatus};
pub use summary::{optional_instant, rfc3339, RunSummary};
