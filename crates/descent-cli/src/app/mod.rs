//! `descent app`: a trained image classifier behind a web page (the cargo feature `app`, on by
//! default).
//!
//! The page (`page.html`, compiled in: no CDN, works offline) lets a person drop or pick a
//! picture and shows the top classes with their probabilities; `POST /predict` answers the same
//! as JSON for programs, `GET /info` describes the model and `GET /health` says the server is
//! up. The model is checked against its `model.sha256` before it is served. Uploads over the
//! size limit (413), bytes that are not a picture (415), pictures that claim huge dimensions
//! (422) and empty or malformed bodies (400) each get a sentence in JSON, and the server keeps
//! serving. Pictures are decoded on a blocking thread each; the forward passes take turns.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

#[cfg(not(feature = "app"))]
use crate::Failure;

/// The page, served at `/`.
#[cfg(feature = "app")]
const PAGE: &str = include_str!("page.html");

/// Serve a trained image classifier behind a web page and a JSON API.
#[derive(Args, Debug)]
pub struct AppArgs {
    /// The run folder of a finished image classifier run (config.toml, model.bpk and its
    /// model.sha256, against which it is checked before it is served).
    #[arg(long, value_name = "RUN")]
    pub model: PathBuf,

    /// Address and port to listen on. Anything but a loopback address (127.0.0.1, ::1) serves
    /// the page to the network, unencrypted.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// The largest picture accepted, in bytes; larger uploads get 413.
    #[arg(long, value_name = "BYTES", default_value_t = 10 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_upload_bytes: u64,

    /// Device: auto or a backend, as for training.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[cfg(not(feature = "app"))]
pub fn run(_: &AppArgs) -> Result<(), Failure> {
    Err(Failure::input(
        "this descent was built without the web app (the cargo feature `app`, on by default): build it with `--features app`",
    ))
}

#[cfg(feature = "app")]
mod server;

#[cfg(feature = "app")]
pub use server::run;
