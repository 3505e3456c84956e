//! `descent serve`: host this machine's device for training commands on other machines
//! (`--device remote:ws://HOST:PORT`), through Burn's remote server. Built with `--features remote`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::Failure;

/// Serve a device to remote clients.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on. Anything but a loopback address (127.0.0.1, ::1) exposes
    /// the device to the network, unencrypted: prefer an SSH tunnel to a loopback server.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,

    /// A file whose first line is the token clients must present [default: a new random token,
    /// printed once at start].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,

    /// The device to serve, as for training commands' --device (a local one).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[cfg(feature = "remote")]
pub fn run(args: &ServeArgs) -> Result<(), Failure> {
    use std::io::Write;

    use descent::remote::{BoundServer, generate_token};

    if args.device.trim().to_ascii_lowercase().starts_with("remote") {
        return Err(Failure::input(
            "--device: serve a local device (flex, ndarray, wgpu, cuda, ...), not a remote one",
        ));
    }
    let device =
        descent::device::select(&args.device).map_err(|e| Failure::input(format!("--device: {e}")))?;
    let (token, generated) = match &args.token_file {
        Some(path) => (
            descent::device::read_token_file(path)
                .map_err(|e| Failure::input(format!("--token-file {e}")))?,
            false,
        ),
        None => (generate_token().map_err(Failure::input)?, true),
    };
    let server = BoundServer::bind(args.listen).map_err(|e| Failure::input(format!("--listen: {e}")))?;
    let address = server.address();
    if !address.ip().is_loopback() {
        err!(
            "warning: listening on {address}, not a loopback address: any machine that reaches it can try the token, and WebSocket traffic (the token included) is not encrypted; prefer an SSH tunnel or a private network"
        );
    }
    out!("descent serve: {} on ws://{address}", device.describe());
    if generated {
        out!("token: {token}");
    }
    out!(
        "train from another machine: descent train --device remote:ws://{address} --token-file FILE (or {}=TOKEN); Ctrl-C stops the server",
        descent::device::REMOTE_TOKEN_VARIABLE
    );
    // A server whose address and token nobody can read serves no one: stop before serving when
    // standard output cannot be written (`> /dev/full`).
    crate::output::check().map_err(|failure| {
        let shown = if generated { "the address and the generated token" } else { "the address" };
        Failure::input(format!(
            "{}: {shown} could not be shown, so the server was not started",
            failure.message
        ))
    })?;
    server
        .serve(std::slice::from_ref(&device), &token, |event| {
            out!("{event}");
            let _ = std::io::stdout().flush();
        })
        .map_err(Failure::internal)?;
    out!("descent serve: stopped");
    Ok(())
}

#[cfg(not(feature = "remote"))]
pub fn run(_args: &ServeArgs) -> Result<(), Failure> {
    Err(Failure::input("descent serve is not compiled into this build: rebuild with `--features remote`"))
}
