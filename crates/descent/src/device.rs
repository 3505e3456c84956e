//! Backend names to Burn devices. This module owns every `#[cfg(feature = ...)]` about backends:
//! nothing else in the project knows which backends exist.
//!
//! In Burn 0.22 a cargo feature compiles a backend in and a runtime [`Device`] value picks among
//! the compiled ones. We never use `Device::default()`: the `BURN_DEVICE` environment variable
//! changes it silently, and our `--device` must decide.

use std::fmt;

use burn::prelude::*;

/// A backend this project knows, whether or not this build compiled it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Burn's classic CPU backend (cargo feature `ndarray`).
    NdArray,
    /// Burn 0.22's pure-Rust CPU backend (cargo feature `flex`).
    Flex,
}

impl Backend {
    /// Every backend, in the order `auto` prefers them.
    pub const ALL: [Backend; 2] = [Backend::Flex, Backend::NdArray];

    /// The name users type after `--device`, and the cargo feature that compiles it in.
    pub fn name(self) -> &'static str {
        match self {
            Backend::NdArray => "ndarray",
            Backend::Flex => "flex",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::NdArray => cfg!(feature = "ndarray"),
            Backend::Flex => cfg!(feature = "flex"),
        }
    }

    /// The backends compiled into this build.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    fn device(self) -> Result<Device, DeviceError> {
        match self {
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)]
            // Burn deprecates NdArray in favour of Flex; we keep both to compare.
            Backend::NdArray => Ok(Device::ndarray()),
            #[cfg(feature = "flex")]
            Backend::Flex => Ok(Device::flex()),
            #[allow(unreachable_patterns)]
            other => Err(DeviceError::NotCompiled {
                name: other.name().into(),
            }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A device chosen by name, with the backend it belongs to.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The backend.
    pub backend: Backend,
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    pub device: Device,
}

impl SelectedDevice {
    /// How the device is named in summaries: our backend name and Burn's own description.
    pub fn describe(&self) -> String {
        format!("{} ({:?})", self.backend, self.device)
    }
}

/// Why a device name could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DeviceError {
    /// The name is not a backend this project knows.
    #[error("unknown device `{name}`: expected one of {}", valid_names().join(", "))]
    Unknown {
        /// What was asked for.
        name: String,
    },
    /// The backend exists but this build does not include it.
    #[error("device `{name}` is not compiled into this build: rebuild with `--features {name}`")]
    NotCompiled {
        /// What was asked for.
        name: String,
    },
    /// No backend at all was compiled in.
    #[error(
        "this build has no backend compiled in: rebuild with `--features flex` or `--features ndarray`"
    )]
    NoBackend,
}

/// Every name `--device` accepts in any build.
pub fn valid_names() -> Vec<&'static str> {
    std::iter::once("auto")
        .chain(Backend::ALL.iter().map(|b| b.name()))
        .collect()
}

/// The device for a name: `auto` or a backend name.
///
/// `auto` picks Flex when it is compiled in, else NdArray: Flex measured several times faster
/// on this project's workloads (see README, "Choosing a device").
pub fn select(name: &str) -> Result<SelectedDevice, DeviceError> {
    let backend = if name.eq_ignore_ascii_case("auto") {
        *Backend::compiled().first().ok_or(DeviceError::NoBackend)?
    } else {
        Backend::ALL
            .into_iter()
            .find(|b| b.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| DeviceError::Unknown { name: name.into() })?
    };
    Ok(SelectedDevice {
        backend,
        device: backend.device()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let message = select("tpu").unwrap_err().to_string();
        assert!(
            message.contains("unknown device `tpu`") && message.contains("auto, flex, ndarray"),
            "{message}"
        );
    }

    #[test]
    fn every_compiled_backend_is_selectable() {
        for backend in Backend::compiled() {
            assert_eq!(select(backend.name()).unwrap().backend, backend);
        }
        if !Backend::compiled().is_empty() {
            assert!(select("auto").is_ok());
        }
    }
}
