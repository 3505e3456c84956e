//! The integration tests, gathered into one test binary so that a test build links Burn once:
//! each module was its own binary before, each linking all of Burn (about 700 MB apiece).
//!
//! Run one module with a filter: `cargo test --release --test integration fuzz::`.

mod common;

mod backends;
mod cli;
mod cnn;
mod concurrent;
mod controls;
mod docs;
mod fit;
mod fuzz;
mod hostile;
mod interop;
mod layout;
mod lesson2;
mod notebook;
mod optimizers;
mod outputs;
mod own_model;
mod parallel;
mod pictures;
mod remote;
mod sweep;
