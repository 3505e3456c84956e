//! `descent devices`: the backends compiled in, what each can run on, and what `auto` picks.

use clap::Args;
use descent::device::{Backend, adapters, auto_choice};
use serde_json::json;

use crate::Failure;

/// List the backends compiled into this build, the adapters each finds (name and kind:
/// discrete, integrated, virtual or CPU), and the device `--device auto` would pick.
#[derive(Args, Debug)]
pub struct DevicesArgs {
    /// Print the list as one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &DevicesArgs) -> Result<(), Failure> {
    let compiled = Backend::compiled();
    let missing: Vec<&str> = Backend::ALL.iter().filter(|b| !b.is_compiled()).map(|b| b.name()).collect();
    let listed: Vec<_> = compiled.iter().map(|&backend| (backend, adapters(backend))).collect();
    let auto = auto_choice();
    let auto_text = match &auto {
        Some((backend, Some(adapter))) => {
            format!("{backend}:{}:{} ({})", adapter.kind, adapter.index, adapter.name)
        }
        Some((backend, None)) if compiled.iter().any(|b| b.is_gpu()) => {
            format!(
                "{backend} (no hardware GPU adapter found; software GPUs such as llvmpipe are slower than the CPU backends)"
            )
        }
        Some((backend, None)) => format!("{backend} (no GPU backend compiled in)"),
        None => "nothing: no backend is compiled in".into(),
    };

    if args.json {
        let backends: Vec<_> = listed
            .iter()
            .map(|(backend, found)| {
                let adapters: Vec<_> = found
                    .iter()
                    .map(|a| json!({"name": a.name, "kind": a.kind.name(), "index": a.index, "api": a.api}))
                    .collect();
                json!({"name": backend.name(), "gpu": backend.is_gpu(), "adapters": adapters})
            })
            .collect();
        let summary = json!({
            "compiled": backends,
            "not_compiled": missing,
            "remote": Backend::Remote.is_compiled(),
            "mpi": {
                "compiled": descent::world::COMPILED,
                "library": descent::world::library(),
                "size": descent::world::World::current().size(),
                "rank": descent::world::World::current().rank(),
            },
            "auto": auto.as_ref().map(|(backend, _)| backend.name()),
            "auto_adapter": auto.as_ref().and_then(|(_, adapter)| adapter.as_ref().map(|a| a.name.clone())),
        });
        out!("{summary}");
        return Ok(());
    }

    out!("backends compiled in: {}", compiled.iter().map(|b| b.name()).collect::<Vec<_>>().join(", "));
    for (backend, found) in &listed {
        if found.is_empty() {
            out!("  {:<8} no adapter found", backend.name());
        }
        for adapter in found {
            let device = if backend.is_gpu() {
                format!("{backend}:{}:{}", adapter.kind, adapter.index)
            } else {
                backend.name().to_string()
            };
            out!("  {device:<22} {:<11} {}  [{}]", adapter.kind.name(), adapter.name, adapter.api);
        }
    }
    if !missing.is_empty() {
        out!("not compiled in: {} (rebuild with `--features NAME`)", missing.join(", "));
    }
    if Backend::Remote.is_compiled() {
        out!(
            "remote devices: --device remote:ws://HOST:PORT reaches a `descent serve` (token: --token-file FILE or {})",
            descent::device::REMOTE_TOKEN_VARIABLE
        );
    } else {
        out!(
            "remote devices: not compiled in (rebuild with `--features remote` for `descent serve` and --device remote:...)"
        );
    }
    out!("MPI: {}", descent::world::describe(&descent::world::World::current()));
    out!("--device auto picks: {auto_text}");
    out!(
        "several at once: --devices A,B (e.g. flex,ndarray) splits each batch across them and sums the gradients on A"
    );
    Ok(())
}
