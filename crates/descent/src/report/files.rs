//! The names of the files in a run folder, in one place. Users' scripts read them: they never
//! change.

/// The effective configuration (`descent train --config` repeats the run).
pub const CONFIG_FILE: &str = "config.toml";
/// One row per printed step or epoch.
pub const METRICS_FILE: &str = "metrics.csv";
/// The `--json` object.
pub const SUMMARY_FILE: &str = "summary.json";
/// The trained parameters (Burn's burnpack format).
pub const MODEL_FILE: &str = "model.bpk";
/// `model.bpk`'s SHA-256, as `sha256sum` writes it.
pub const CHECKSUM_FILE: &str = "model.sha256";
/// The state a resumed run continues from (the engine's checkpoints name it).
pub use crate::train::CHECKPOINT_FILE;
/// `lesson2 --animate`'s animation.
pub const ANIMATION_FILE: &str = "animation.gif";
/// `descent export`'s default output.
pub const EXPORT_FILE: &str = "model.safetensors";
/// `descent export --format onnx`'s default output.
pub const ONNX_FILE: &str = "model.onnx";
/// The figures, by stem: each is written as `STEM.png`, and also `STEM.svg` with `--svg`.
pub const FIGURES: [&str; 7] = ["fit", "loss", "lr", "accuracy", "results", "predictions", "lr_find"];

/// Whether `name` is a file a run writes into its folder (`descent export`'s output aside).
pub fn is_run_file(name: &str) -> bool {
    [CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, MODEL_FILE, CHECKSUM_FILE, CHECKPOINT_FILE, ANIMATION_FILE]
        .contains(&name)
        || name.starts_with(super::tensorboard::EVENTS_PREFIX)
        || name
            .rsplit_once('.')
            .is_some_and(|(stem, extension)| matches!(extension, "png" | "svg") && FIGURES.contains(&stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_files_are_known_by_name() {
        for name in [
            "config.toml",
            "model.bpk",
            "checkpoint.bin",
            "loss.png",
            "lr_find.svg",
            "animation.gif",
            "events.out.tfevents.1796063870.vm",
        ] {
            assert!(is_run_file(name), "{name}");
        }
        for name in ["model.safetensors", "model.onnx", "notes.txt", "loss.jpg", "mine.png"] {
            assert!(!is_run_file(name), "{name}");
        }
    }
}
