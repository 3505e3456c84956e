//! `descent serve`: this machine's devices for clients on other machines, through Burn's own
//! remote server (burn-remote, WebSocket transport). Nothing here speaks the network itself: the
//! server, the sessions and the protocol are Burn's; this module chooses the address, checks the
//! token and says who connected.
//!
//! Security model: the server binds to the loopback address unless told otherwise; every session
//! must present the token (compared by Burn's `TokenAuthorizer`, in constant time); the WebSocket
//! transport is not encrypted, so across machines use an SSH tunnel or a private network.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use burn::server::{AuthorizationRequest, PeerAuthorizer, RemoteServer, TokenAuthorizer, WebSocketTransport};
use std::io::Read;

use crate::device::SelectedDevice;

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The token file cannot be used.
    #[error("{}: {message}", path.display())]
    Token {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Burn's server failed.
    #[error("the server stopped: {0}")]
    Server(String),
}

/// A new random token: 32 hexadecimal digits (128 bits) from the operating system's generator
/// (`/dev/urandom`). Where there is none, pass a token file instead.
pub fn generate_token() -> Result<String, ServeError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom").and_then(|mut random| random.read_exact(&mut bytes)).map_err(
        |error| ServeError::Token {
            path: "/dev/urandom".into(),
            message: format!("cannot draw a token ({error}): pass --token-file FILE"),
        },
    )?;
    Ok(crate::report::hex(&bytes))
}

/// A server bound to its address, not yet serving.
pub struct BoundServer {
    listener: TcpListener,
    address: SocketAddr,
}

impl BoundServer {
    /// Bind `address` (port 0 picks a free port; [`Self::address`] says which).
    pub fn bind(address: SocketAddr) -> Result<Self, ServeError> {
        let listener = TcpListener::bind(address).map_err(|source| ServeError::Bind { address, source })?;
        let address = listener.local_addr().map_err(|source| ServeError::Bind { address, source })?;
        Ok(Self { listener, address })
    }

    /// The address clients dial: `ws://` followed by it.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serve `devices` to the clients that present `token`, until Ctrl-C or SIGTERM; `log` hears
    /// of every session a client asks for, admitted or refused.
    pub fn serve(
        self,
        devices: &[SelectedDevice],
        token: &str,
        log: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<(), ServeError> {
        let tokens =
            TokenAuthorizer::new(token).map_err(|_| ServeError::Server("the token is empty".into()))?;
        let authorizer = move |request: AuthorizationRequest<'_>| {
            let (client, device) = (request.client, request.device_index);
            let decision = tokens.authorize(request);
            match &decision {
                Ok(()) => log(&format!("{client}: session on device {device} opened")),
                Err(_) => log(&format!("{client}: refused (wrong or missing token)")),
            }
            decision
        };
        RemoteServer::new(devices.iter().map(|selected| selected.device.clone()))
            .with_authorizer(authorizer)
            .serve(WebSocketTransport::from_listener(self.listener))
            .map_err(|error| ServeError::Server(error.to_string()))
    }
}
