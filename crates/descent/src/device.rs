//! Backend names to Burn devices. This module owns every `#[cfg(feature = ...)]` about backends:
//! nothing else in the project knows which backends exist.
//!
//! In Burn 0.22 a cargo feature compiles a backend in and a runtime [`Device`] value picks among
//! the compiled ones. We never use `Device::default()`: the `BURN_DEVICE` environment variable
//! changes it silently, and our `--device` must decide. GPU devices are opened with Burn's
//! fallible initialisation (`Device::wgpu_options().init()`), never the lazy constructor that
//! panics on first use when there is no adapter.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use burn::prelude::*;

/// A backend this project knows, whether or not this build compiled it in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// NVIDIA GPUs through CUDA (cargo feature `cuda`).
    Cuda,
    /// AMD GPUs through ROCm/HIP (cargo feature `rocm`).
    Rocm,
    /// wgpu pinned to Metal (cargo feature `metal`).
    Metal,
    /// wgpu pinned to Vulkan (cargo feature `vulkan`).
    Vulkan,
    /// wgpu on whichever graphics API the machine offers: Vulkan, Metal, DX12 or WebGPU
    /// (cargo feature `wgpu`).
    Wgpu,
    /// Burn 0.22's pure-Rust CPU backend (cargo feature `flex`).
    Flex,
    /// Burn's classic CPU backend (cargo feature `ndarray`).
    NdArray,
    /// A device of another machine, served by `descent serve` and reached over WebSocket
    /// (cargo feature `remote`): `--device remote:ws://HOST:PORT`. Not in [`Backend::ALL`]:
    /// `auto` never picks it and it has no adapters to list, since it needs an address.
    Remote,
}

impl Backend {
    /// Every backend, in the order `auto` tries them: GPUs first, then the faster CPU backend.
    pub const ALL: [Backend; 7] = [
        Backend::Cuda,
        Backend::Rocm,
        Backend::Metal,
        Backend::Vulkan,
        Backend::Wgpu,
        Backend::Flex,
        Backend::NdArray,
    ];

    /// The name users type after `--device`; it is also the cargo feature that compiles it in.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cuda => "cuda",
            Backend::Rocm => "rocm",
            Backend::Metal => "metal",
            Backend::Vulkan => "vulkan",
            Backend::Wgpu => "wgpu",
            Backend::Flex => "flex",
            Backend::NdArray => "ndarray",
            Backend::Remote => "remote",
        }
    }

    /// Whether this build has the backend.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Cuda => cfg!(feature = "cuda"),
            Backend::Rocm => cfg!(feature = "rocm"),
            Backend::Metal => cfg!(feature = "metal"),
            Backend::Vulkan => cfg!(feature = "vulkan"),
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Flex => cfg!(feature = "flex"),
            Backend::NdArray => cfg!(feature = "ndarray"),
            Backend::Remote => cfg!(feature = "remote"),
        }
    }

    /// Whether the backend runs on a GPU (or a software GPU such as Mesa's llvmpipe).
    pub fn is_gpu(self) -> bool {
        !matches!(self, Backend::Flex | Backend::NdArray | Backend::Remote)
    }

    /// The backends compiled into this build, in `auto`'s order.
    pub fn compiled() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_compiled()).collect()
    }

    fn from_name(name: &str) -> Option<Backend> {
        Self::ALL.into_iter().find(|b| b.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of processor an adapter is, as the graphics driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdapterKind {
    /// A GPU card of its own.
    Discrete,
    /// A GPU sharing the CPU's package and memory.
    Integrated,
    /// A GPU seen through a virtual machine.
    Virtual,
    /// The CPU itself: a CPU backend, or a software GPU such as Mesa's llvmpipe.
    Cpu,
    /// Anything else.
    Other,
}

impl AdapterKind {
    /// The word used after `--device NAME:` and in `descent devices`.
    pub fn name(self) -> &'static str {
        match self {
            AdapterKind::Discrete => "discrete",
            AdapterKind::Integrated => "integrated",
            AdapterKind::Virtual => "virtual",
            AdapterKind::Cpu => "cpu",
            AdapterKind::Other => "other",
        }
    }

    /// Real GPU hardware (what `auto` looks for), as opposed to a CPU or a software rasteriser.
    pub fn is_hardware_gpu(self) -> bool {
        matches!(self, AdapterKind::Discrete | AdapterKind::Integrated | AdapterKind::Virtual)
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One processor a backend can run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Adapter {
    /// The backend that reaches it.
    pub backend: Backend,
    /// Its index among the adapters of the same backend and kind (what `NAME:KIND:INDEX` takes).
    pub index: usize,
    /// The name the driver gives it.
    pub name: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub kind: AdapterKind,
    /// The graphics API or runtime (Vulkan, Metal, CUDA, ...), with the driver when known.
    pub api: String,
}

/// A device chosen by name, with the backend it belongs to.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The backend.
    pub backend: Backend,
    /// The Burn device (without autodiff; call `.autodiff()` for training).
    pub device: Device,
    /// The adapter, when the backend reports one (GPU backends).
    pub adapter: Option<String>,
}

impl SelectedDevice {
    /// How the device is named in summaries: our backend name, the adapter when known, and
    /// Burn's own description of the device.
    pub fn describe(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{} [{adapter}] ({:?})", self.backend, self.device),
            None => format!("{} ({:?})", self.backend, self.device),
        }
    }
}

/// How a summary names where a run trained: its device, or every device of a data-parallel run
/// (main first).
pub fn describe_all(devices: &[SelectedDevice]) -> String {
    match devices {
        [device] => device.describe(),
        devices => format!(
            "{} (data-parallel, {} devices)",
            devices.iter().map(SelectedDevice::describe).collect::<Vec<_>>().join(" + "),
            devices.len()
        ),
    }
}

/// Why a device name could not be used.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
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
    /// The part after `NAME:` is not understood.
    #[error("device `{spec}`: {message}")]
    BadSpec {
        /// What was asked for.
        spec: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The backend is compiled in but found nothing to run on.
    #[error("device `{spec}`: no usable adapter: {reason}")]
    Unavailable {
        /// What was asked for.
        spec: String,
        /// What the backend said.
        reason: String,
    },
    /// A remote device's server refused the session or could not be reached.
    #[error("device `{spec}`: {reason}")]
    Remote {
        /// What was asked for.
        spec: String,
        /// What happened and what to do.
        reason: String,
    },
    /// No backend at all was compiled in.
    #[error("this build has no backend compiled in: rebuild with `--features flex` or `--features ndarray`")]
    NoBackend,
}

/// Every name `--device` accepts in any build.
pub fn valid_names() -> Vec<&'static str> {
    std::iter::once("auto")
        .chain(Backend::ALL.iter().map(|b| b.name()))
        .chain(["remote:ws://HOST:PORT"])
        .collect()
}

/// A value could not be read back from a device: the device failed, or a remote one went away.
/// The text is the backend's own account of it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReadBackError(pub String);

impl ReadBackError {
    /// The error of a failed read, from the backend's error. Burn reports a remote device whose
    /// connection ended with channel errors in debug text (`Execution(… RecvError(()))`): that is
    /// said in words; any other error keeps the backend's text, cut to a readable length.
    pub fn from_debug(error: &dyn std::fmt::Debug) -> Self {
        let text = format!("{error:?}");
        let lost =
            ["RecvError", "SendError", "ConnectionReset", "ConnectionClosed", "AlreadyClosed", "BrokenPipe"];
        if lost.iter().any(|marker| text.contains(marker)) {
            return Self("its connection closed".into());
        }
        Self(crate::limits::printable(&text, 200))
    }
}

/// A float tensor's values on the host, as `f32`, row-major (whatever its element type on the
/// device).
pub fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ReadBackError> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|error| ReadBackError::from_debug(&error))
}

/// The one lock descent holds across runs: a model's initial weights are drawn under it.
///
/// Burn's CPU backends keep one random generator per backend for the whole process
/// (`Device::seed` reseeds it for every device of the backend), and a layer's initial weights are
/// drawn from it, lazily, at the first use of each parameter. [`init_seeded`] seeds the model's
/// devices for the run and draws every weight before it lets go, so runs that start in one
/// process at the same time each get the weights they would get alone. Nothing else in descent
/// draws from a device's generator: dropout masks ([`crate::nn::Dropout`]), shuffles and
/// augmentation come from seeds the run owns.
static INIT: Mutex<()> = Mutex::new(());

/// `make` a model with its devices' generators seeded from `seed`, every lazy parameter
/// initialised before the model is returned (see [`INIT`]). `devices` are the devices `make`
/// creates the model on; a model already made is initialised the same way with `make` returning
/// it.
pub fn init_seeded<M: burn::module::Module>(devices: &[Device], seed: u64, make: impl FnOnce() -> M) -> M {
    let _turn = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for device in devices {
        device.seed(seed);
    }
    let model = make();
    materialize(&model);
    model
}

/// Initialise every parameter of `model` that Burn has left lazy, here and now.
fn materialize<M: burn::module::Module>(model: &M) {
    use burn::module::{ModuleVisitor, Param};
    struct Initialize;
    impl ModuleVisitor for Initialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
        fn visit_int<const D: usize>(&mut self, param: &Param<Tensor<D, Int>>) {
            let _ = param.val();
        }
        fn visit_bool<const D: usize>(&mut self, param: &Param<Tensor<D, Bool>>) {
            let _ = param.val();
        }
    }
    model.visit(&mut Initialize);
}

/// The environment variable holding the token for remote devices.
pub const REMOTE_TOKEN_VARIABLE: &str = "DESCENT_REMOTE_TOKEN";

/// How a run reaches devices on other machines: the token their servers ask for, given per run
/// (`--token-file`), never kept by the process. Without one, [`REMOTE_TOKEN_VARIABLE`] is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// The token `--device remote:...` presents.
    pub token: Option<String>,
}

impl Access {
    /// The token to present: the one given, else the environment variable's, else none.
    pub fn token(&self) -> Option<String> {
        self.token
            .clone()
            .or_else(|| std::env::var(REMOTE_TOKEN_VARIABLE).ok())
            .map(|token| token.trim().to_string())
            .filter(|token| !token.is_empty())
    }
}

/// Read a token file: its first line without surrounding spaces. An unreadable file or an empty
/// first line is an error that says which.
pub fn read_token_file(path: &std::path::Path) -> Result<String, TokenFileError> {
    let text = crate::limits::read_text(path, crate::limits::MAX_CONFIG_BYTES)
        .map_err(|source| TokenFileError::Read { path: path.into(), source })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: path.into() });
    }
    Ok(token)
}

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It cannot be read.
    #[error("{}: cannot read it: {source}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: crate::limits::ReadError,
    },
    /// Its first line is empty.
    #[error("{}: the file holds no token (its first line is empty)", path.display())]
    Empty {
        /// The file.
        path: std::path::PathBuf,
    },
}

/// The device for a name: `auto`, a backend name (`flex`, `ndarray`, `wgpu`, `vulkan`, `metal`,
/// `cuda`, `rocm`), or a GPU backend with an adapter: `wgpu:discrete`, `wgpu:cpu:0`,
/// `cuda:1`.
///
/// `auto` picks the first GPU backend compiled in that finds a hardware GPU adapter (a software
/// rasteriser such as llvmpipe does not count: Flex is faster), else Flex, else NdArray.
///
/// A device is opened once per process; later calls with the same name return the same device.
pub fn select(spec: &str) -> Result<SelectedDevice, DeviceError> {
    select_with(spec, &Access::default())
}

/// [`select`], reaching remote devices with `access` (their token). A remote device is opened
/// once per process for each token it is reached with.
pub fn select_with(spec: &str, access: &Access) -> Result<SelectedDevice, DeviceError> {
    type Opened = HashMap<(String, Option<String>), Result<SelectedDevice, DeviceError>>;
    static OPENED: OnceLock<Mutex<Opened>> = OnceLock::new();
    let spec = spec.trim().to_ascii_lowercase();
    let token = spec.starts_with("remote:").then(|| access.token()).flatten();
    let key = (spec, token);
    let opened = OPENED.get_or_init(Default::default);
    let mut opened = opened.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(result) = opened.get(&key) {
        return result.clone();
    }
    let result = open(&key.0, key.1.as_deref());
    opened.insert(key, result.clone());
    result
}

fn open(spec: &str, token: Option<&str>) -> Result<SelectedDevice, DeviceError> {
    if spec == "auto" {
        return open_auto();
    }
    if let Some(url) = spec.strip_prefix("remote:") {
        return open_remote(spec, url, token);
    }
    if spec == "remote" {
        return Err(DeviceError::BadSpec {
            spec: spec.into(),
            message: "a remote device needs its server's address: --device remote:ws://HOST:PORT".into(),
        });
    }
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default();
    let backend = Backend::from_name(name).ok_or_else(|| DeviceError::Unknown { name: spec.into() })?;
    if !backend.is_compiled() {
        return Err(DeviceError::NotCompiled { name: backend.name().into() });
    }
    let rest: Vec<&str> = parts.collect();
    let request = AdapterRequest::parse(backend, spec, &rest)?;
    open_backend(backend, spec, &request)
}

fn open_auto() -> Result<SelectedDevice, DeviceError> {
    for backend in Backend::compiled() {
        if !backend.is_gpu() {
            return open_backend(backend, backend.name(), &AdapterRequest::Default);
        }
        if let Some(adapter) = hardware_adapter(backend)
            && let Ok(selected) = open_backend(backend, backend.name(), &AdapterRequest::from(&adapter))
        {
            return Ok(selected);
        }
    }
    Err(DeviceError::NoBackend)
}

/// The first hardware GPU adapter a backend finds.
fn hardware_adapter(backend: Backend) -> Option<Adapter> {
    adapters(backend).into_iter().find(|a| a.kind.is_hardware_gpu())
}

/// Which adapter of a backend to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AdapterRequest {
    /// The backend's own choice (wgpu prefers a high-performance GPU).
    Default,
    /// The `index`-th adapter of a kind (wgpu family).
    Kind(AdapterKind, usize),
    /// The `index`-th device (CUDA, ROCm).
    Index(usize),
}

impl From<&Adapter> for AdapterRequest {
    fn from(adapter: &Adapter) -> Self {
        match adapter.backend {
            Backend::Cuda | Backend::Rocm => AdapterRequest::Index(adapter.index),
            _ => AdapterRequest::Kind(adapter.kind, adapter.index),
        }
    }
}

impl AdapterRequest {
    fn parse(backend: Backend, spec: &str, rest: &[&str]) -> Result<Self, DeviceError> {
        let bad = |message: String| DeviceError::BadSpec { spec: spec.into(), message };
        let index = |text: &str| {
            text.parse::<usize>().map_err(|_| bad(format!("`{text}` is not an adapter index (0, 1, ...)")))
        };
        match backend {
            _ if rest.is_empty() => Ok(AdapterRequest::Default),
            Backend::Flex | Backend::NdArray => {
                Err(bad(format!("the CPU backend `{backend}` takes no adapter; use `--device {backend}`")))
            }
            Backend::Remote => Err(bad("expected remote:ws://HOST:PORT".into())),
            Backend::Cuda | Backend::Rocm => match rest {
                [i] => Ok(AdapterRequest::Index(index(i)?)),
                _ => Err(bad(format!("expected `{backend}` or `{backend}:INDEX`"))),
            },
            Backend::Wgpu | Backend::Vulkan | Backend::Metal => {
                let kind = match rest[0] {
                    "discrete" => AdapterKind::Discrete,
                    "integrated" => AdapterKind::Integrated,
                    "virtual" => AdapterKind::Virtual,
                    "cpu" => AdapterKind::Cpu,
                    other => {
                        return Err(bad(format!(
                            "unknown adapter kind `{other}`: expected discrete, integrated, virtual or cpu, \
                             optionally followed by `:INDEX`"
                        )));
                    }
                };
                match rest {
                    [_] => Ok(AdapterRequest::Kind(kind, 0)),
                    [_, i] => Ok(AdapterRequest::Kind(kind, index(i)?)),
                    _ => {
                        Err(bad(format!("expected `{backend}`, `{backend}:KIND` or `{backend}:KIND:INDEX`")))
                    }
                }
            }
        }
    }
}

#[cfg_attr(not(any(feature = "wgpu", feature = "cuda", feature = "rocm")), allow(unused_variables))]
fn open_backend(
    backend: Backend,
    spec: &str,
    request: &AdapterRequest,
) -> Result<SelectedDevice, DeviceError> {
    let plain = |device: Device| Ok(SelectedDevice { backend, device, adapter: None });
    match backend {
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        // Burn deprecates NdArray in favour of Flex; we keep both to compare.
        Backend::NdArray => plain(Device::ndarray()),
        #[cfg(feature = "flex")]
        Backend::Flex => plain(Device::flex()),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu | Backend::Vulkan | Backend::Metal => gpu::open_wgpu(backend, spec, request),
        #[cfg(any(feature = "cuda", feature = "rocm"))]
        Backend::Cuda | Backend::Rocm => gpu::open_indexed(backend, spec, request),
        #[allow(unreachable_patterns)]
        other => Err(DeviceError::NotCompiled { name: other.name().into() }),
    }
}

/// The environment variable that sets how long connecting to a remote device may take, in
/// seconds (30 when unset).
pub const CONNECT_TIMEOUT_VARIABLE: &str = "DESCENT_CONNECT_TIMEOUT";

/// How long connecting to a remote device and its handshake may take: [`CONNECT_TIMEOUT_VARIABLE`]
/// seconds when it holds a positive number, else 30 s.
#[cfg(feature = "remote")]
fn connect_timeout() -> std::time::Duration {
    seconds_from(CONNECT_TIMEOUT_VARIABLE, 30)
}

/// The duration the environment variable `variable` gives in seconds, when it holds a positive
/// number, else `default` seconds.
fn seconds_from(variable: &str, default: u64) -> std::time::Duration {
    std::env::var(variable)
        .ok()
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds < 1e9)
        .map_or(std::time::Duration::from_secs(default), std::time::Duration::from_secs_f64)
}

/// The environment variable that sets how long a remote device may take to answer a read
/// during a run, in seconds (120 when unset).
pub const REPLY_TIMEOUT_VARIABLE: &str = "DESCENT_REPLY_TIMEOUT";

/// Whether this process has opened a remote device: reads then wait at most
/// [`reply_timeout`] (see [`wait_for_reply`]).
static REMOTE_OPENED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// How long a read may wait for a remote device: [`REPLY_TIMEOUT_VARIABLE`] seconds when it holds
/// a positive number, else 120 s.
fn reply_timeout() -> std::time::Duration {
    seconds_from(REPLY_TIMEOUT_VARIABLE, 120)
}

/// Run `read`, a read back that waits for the device's work, and give up after
/// [`reply_timeout`] once a remote device is open in this process. Burn's remote client waits
/// for a reply without a limit: a server that is stopped or cut off while the connection stays
/// open (a suspended process, a lost route) would otherwise hang the run for good. The read runs
/// on a thread of its own, and a thread still waiting when the time is up is left to end with the
/// process. Local devices read in place, with no thread and no limit.
pub fn wait_for_reply<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, ReadBackError> + Send + 'static,
) -> Result<T, ReadBackError> {
    if !REMOTE_OPENED.load(std::sync::atomic::Ordering::Relaxed) {
        return read();
    }
    let timeout = reply_timeout();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(read());
    });
    receiver.recv_timeout(timeout).unwrap_or_else(|_| {
        Err(ReadBackError(format!(
            "no reply within {} s; {REPLY_TIMEOUT_VARIABLE} sets the limit in seconds",
            timeout.as_secs_f64()
        )))
    })
}

/// Connect to the device a `descent serve` at `url` hosts, presenting `token`.
#[cfg(feature = "remote")]
fn open_remote(spec: &str, url: &str, token: Option<&str>) -> Result<SelectedDevice, DeviceError> {
    use burn::tensor::remote::{ConnectError, RemoteHost};

    if !url.starts_with("ws://") || url.len() <= "ws://".len() {
        return Err(DeviceError::BadSpec {
            spec: spec.into(),
            message: "expected remote:ws://HOST:PORT (the address `descent serve` prints)".into(),
        });
    }
    let mut host = RemoteHost::websocket(url);
    if let Some(token) = token {
        host = host.with_credential(token.to_string());
    }
    let unavailable = |reason: String| DeviceError::Remote { spec: spec.into(), reason };
    // Burn's client waits for the server without a limit: a listener that accepts the connection
    // and never answers would hang the run. The connection and the handshake run on a thread of
    // their own, given `connect_timeout()` to answer (a thread left waiting ends with the process).
    let timeout = connect_timeout();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(Device::remote_options(&host).init());
    });
    let connected = match receiver.recv_timeout(timeout) {
        Ok(connected) => connected,
        Err(_) => {
            return Err(unavailable(format!(
                "{url} did not complete the connection within {} s (it accepted it, or nothing answered): is `descent serve` running there? ({CONNECT_TIMEOUT_VARIABLE} sets the limit in seconds)",
                timeout.as_secs_f64()
            )));
        }
    };
    match connected {
        Ok(device) => {
            REMOTE_OPENED.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(SelectedDevice { backend: Backend::Remote, device, adapter: Some(url.into()) })
        }
        Err(ConnectError::Unauthorized) => Err(unavailable(format!(
            "the server refused the token: pass the server's token with --token-file FILE or in {REMOTE_TOKEN_VARIABLE}"
        ))),
        Err(ConnectError::Unreachable { reason }) => Err(unavailable(format!(
            "no server answered at {url} ({reason}): is `descent serve` running there?"
        ))),
        Err(other) => Err(unavailable(format!("{other}"))),
    }
}

#[cfg(not(feature = "remote"))]
fn open_remote(_spec: &str, _url: &str, _token: Option<&str>) -> Result<SelectedDevice, DeviceError> {
    Err(DeviceError::NotCompiled { name: "remote".into() })
}

/// The adapters a compiled backend can reach: for a CPU backend the CPU itself; for the wgpu
/// family what the graphics drivers report; for CUDA and ROCm the devices the runtime lists.
/// Empty for a backend that is not compiled in or finds nothing.
pub fn adapters(backend: Backend) -> Vec<Adapter> {
    if !backend.is_compiled() {
        return Vec::new();
    }
    match backend {
        Backend::Flex | Backend::NdArray => vec![Adapter {
            backend,
            index: 0,
            name: cpu_name(),
            kind: AdapterKind::Cpu,
            api: format!("{} threads", std::thread::available_parallelism().map_or(1, |n| n.get())),
        }],
        #[cfg(feature = "wgpu")]
        Backend::Wgpu | Backend::Vulkan | Backend::Metal => gpu::wgpu_adapters(backend),
        #[cfg(any(feature = "cuda", feature = "rocm"))]
        Backend::Cuda | Backend::Rocm => gpu::indexed_adapters(backend),
        #[allow(unreachable_patterns)]
        _ => Vec::new(),
    }
}

/// The device `auto` picks in this build on this machine, without opening it: the backend and,
/// for a GPU, its adapter.
pub fn auto_choice() -> Option<(Backend, Option<Adapter>)> {
    Backend::compiled().into_iter().find_map(|backend| {
        if backend.is_gpu() {
            hardware_adapter(backend).map(|adapter| (backend, Some(adapter)))
        } else {
            Some((backend, None))
        }
    })
}

/// The CPU's model name from `/proc/cpuinfo` where there is one.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

#[cfg(any(feature = "wgpu", feature = "cuda", feature = "rocm"))]
mod gpu {
    //! Opening and listing GPU devices. Only compiled with a GPU backend.

    use super::*;

    /// Open a wgpu-family device with Burn's fallible initialisation.
    #[cfg(feature = "wgpu")]
    pub(super) fn open_wgpu(
        backend: Backend,
        spec: &str,
        request: &AdapterRequest,
    ) -> Result<SelectedDevice, DeviceError> {
        use burn::tensor::DeviceKind;
        use burn::tensor::wgpu::WgpuBackend;

        let kind = match *request {
            AdapterRequest::Kind(AdapterKind::Discrete, i) => DeviceKind::DiscreteGpu(i),
            AdapterRequest::Kind(AdapterKind::Integrated, i) => DeviceKind::IntegratedGpu(i),
            AdapterRequest::Kind(AdapterKind::Virtual, i) => DeviceKind::VirtualGpu(i),
            AdapterRequest::Kind(AdapterKind::Cpu, _) => DeviceKind::Cpu,
            _ => DeviceKind::DefaultDevice,
        };
        let api = match backend {
            Backend::Vulkan => WgpuBackend::Vulkan,
            Backend::Metal => WgpuBackend::Metal,
            _ => WgpuBackend::Auto,
        };
        // wgpu (not Burn) can panic inside adapter discovery on broken drivers: report it as
        // an unavailable device rather than crash.
        let opened =
            std::panic::catch_unwind(|| Device::wgpu_options().device_kind(kind).graphics_api(api).init());
        let device = match opened {
            Ok(Ok(device)) => device,
            Ok(Err(error)) => {
                return Err(DeviceError::Unavailable { spec: spec.into(), reason: error.to_string() });
            }
            Err(_) => {
                return Err(DeviceError::Unavailable {
                    spec: spec.into(),
                    reason: "the graphics driver panicked".into(),
                });
            }
        };
        let adapter = device.identity().map(|identity| identity.name);
        Ok(SelectedDevice { backend, device, adapter })
    }

    /// The adapters wgpu finds for a backend, grouped by kind in the order wgpu lists them.
    #[cfg(feature = "wgpu")]
    pub(super) fn wgpu_adapters(backend: Backend) -> Vec<Adapter> {
        use burn::tensor::wgpu::wgpu;

        let backends = match backend {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            _ => wgpu::Backends::all(),
        };
        let listed = std::panic::catch_unwind(|| {
            let instance = wgpu::Instance::default();
            pollster::block_on(instance.enumerate_adapters(backends))
                .into_iter()
                .map(|adapter| adapter.get_info())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
        let mut counts: HashMap<AdapterKind, usize> = HashMap::new();
        listed
            .into_iter()
            .map(|info| {
                let kind = match info.device_type {
                    wgpu::DeviceType::DiscreteGpu => AdapterKind::Discrete,
                    wgpu::DeviceType::IntegratedGpu => AdapterKind::Integrated,
                    wgpu::DeviceType::VirtualGpu => AdapterKind::Virtual,
                    wgpu::DeviceType::Cpu => AdapterKind::Cpu,
                    wgpu::DeviceType::Other => AdapterKind::Other,
                };
                let counter = counts.entry(kind).or_default();
                let index = *counter;
                *counter += 1;
                let driver = [info.driver.as_str(), info.driver_info.as_str()]
                    .into_iter()
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                let api = if driver.is_empty() {
                    format!("{:?}", info.backend)
                } else {
                    format!("{:?}, {driver}", info.backend)
                };
                Adapter { backend, index, name: info.name, kind, api }
            })
            .collect()
    }

    #[cfg(any(feature = "cuda", feature = "rocm"))]
    fn indexed_device(backend: Backend, index: usize) -> Option<Device> {
        match backend {
            #[cfg(feature = "cuda")]
            Backend::Cuda => Some(Device::cuda(index)),
            #[cfg(feature = "rocm")]
            Backend::Rocm => Some(Device::rocm(index)),
            _ => None,
        }
    }

    /// Open a CUDA or ROCm device, checking first that the runtime lists it.
    #[cfg(any(feature = "cuda", feature = "rocm"))]
    pub(super) fn open_indexed(
        backend: Backend,
        spec: &str,
        request: &AdapterRequest,
    ) -> Result<SelectedDevice, DeviceError> {
        let index = match *request {
            AdapterRequest::Index(i) => i,
            _ => 0,
        };
        let found = indexed_adapters(backend);
        let Some(adapter) = found.into_iter().find(|a| a.index == index) else {
            return Err(DeviceError::Unavailable {
                spec: spec.into(),
                reason: format!("the {backend} runtime lists no device {index} (is the driver installed?)"),
            });
        };
        // Only CUDA and ROCm devices are indexed: another backend is one this build lacks.
        let device = indexed_device(backend, index)
            .ok_or_else(|| DeviceError::NotCompiled { name: backend.name().into() })?;
        Ok(SelectedDevice { backend, device, adapter: Some(adapter.name) })
    }

    /// The devices the CUDA or ROCm runtime lists.
    #[cfg(any(feature = "cuda", feature = "rocm"))]
    pub(super) fn indexed_adapters(backend: Backend) -> Vec<Adapter> {
        use burn::tensor::DeviceType;
        let device_type = match backend {
            #[cfg(feature = "cuda")]
            Backend::Cuda => DeviceType::Cuda,
            #[cfg(feature = "rocm")]
            Backend::Rocm => DeviceType::Rocm,
            _ => return Vec::new(),
        };
        // A missing driver library makes the runtime panic while listing: no devices, then.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Device::enumerate(device_type).into_vec()))
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(index, device)| Adapter {
                backend,
                index,
                name: device.identity().map_or_else(|| format!("{backend} device {index}"), |id| id.name),
                kind: AdapterKind::Discrete,
                api: backend.name().to_uppercase(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_list_the_valid_ones() {
        let message = select("tpu").unwrap_err().to_string();
        assert!(
            message.contains("unknown device `tpu`") && message.contains("auto, cuda, rocm"),
            "{message}"
        );
    }

    #[test]
    fn every_compiled_backend_is_selectable_by_name() {
        for backend in Backend::compiled().into_iter().filter(|b| !b.is_gpu()) {
            assert_eq!(select(backend.name()).unwrap().backend, backend);
        }
        if Backend::compiled().iter().any(|b| !b.is_gpu()) {
            assert!(select("auto").is_ok());
        }
    }

    #[test]
    fn backends_not_compiled_in_name_the_feature() {
        for backend in Backend::ALL.into_iter().filter(|b| !b.is_compiled()) {
            let message = select(backend.name()).unwrap_err().to_string();
            assert!(message.contains(&format!("--features {}", backend.name())), "{message}");
        }
    }

    #[test]
    fn adapter_suffixes_are_checked() {
        for backend in Backend::compiled() {
            let spec = format!("{}:quantum", backend.name());
            assert!(matches!(select(&spec), Err(DeviceError::BadSpec { .. })), "{spec}");
        }
    }

    #[test]
    fn cpu_backends_list_the_cpu() {
        for backend in Backend::compiled().into_iter().filter(|b| !b.is_gpu()) {
            let found = adapters(backend);
            assert_eq!(found.len(), 1);
            assert_eq!(found[0].kind, AdapterKind::Cpu);
        }
    }
}
