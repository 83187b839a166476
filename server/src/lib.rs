//! The `tideline` program: HTTP API (actix-web), command-line interface,
//! configuration and export formats. This is the only crate that knows HTTP
//! status codes, JSON DTOs or terminal output; records, storage and sync live in
//! `tideline-sync`, forms and validation in `tideline-schemas`.

#![forbid(unsafe_code)]

pub mod access;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod error;
pub mod export;
pub mod links;
pub mod local_tls;
pub mod metrics;
pub mod openrosa;
pub mod routes;
pub mod startup;
pub mod state;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod uploads;
pub mod upstream;
pub mod web;
pub mod xlsform;

pub use config::Settings;
pub use data_dir::{open_records, SharedRecords};
pub use startup::Application;
pub use state::AppState;
