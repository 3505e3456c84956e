//! Runs in one process do not share hidden state: each run draws its initial weights, dropout
//! masks, shuffles and augmentation from its own seed, so two runs trained at the same time in
//! two threads each end with the parameters it has when it trains alone, bit for bit.

use std::ops::ControlFlow;

use descent::config::{ModelConfig, RunConfig};
use descent::data::augment::AugmentConfig;
use descent::experiment::ImageExperiment;
use descent::inference::export::{NamedTensor, named_tensors};
use descent::model::MlpConfig;

use crate::common::same_bits;

/// A CNN run on the digits with dropout, augmentation and a shuffle: everything that draws.
fn cnn_config(seed: u64) -> RunConfig {
    let mut config = RunConfig::cnn();
    config.device = "flex".into();
    config.seed = seed;
    config.set("training.epochs=2").unwrap();
    config.set("model.dropout=0.5").unwrap();
    config.training.augment = Some(AugmentConfig::default());
    config
}

/// An MLP run (another kind of model, drawing its weights from another layer type).
fn mlp_config(seed: u64) -> RunConfig {
    let mut config = cnn_config(seed);
    config.model = ModelConfig::Mlp(MlpConfig { hidden: 32 });
    config
}

/// Train `config` through the library, from the network it makes to the last update.
fn train(config: RunConfig) -> Vec<NamedTensor> {
    let experiment = ImageExperiment::prepare(config).unwrap();
    match experiment.config.model.clone() {
        ModelConfig::Mlp(settings) => {
            let network = experiment.network(&settings);
            let trained = experiment.train(network, &mut |_| ControlFlow::Continue(())).unwrap();
            named_tensors(&trained.trained.model).unwrap()
        }
        _ => {
            let trained =
                experiment.train(experiment.model().unwrap(), &mut |_| ControlFlow::Continue(())).unwrap();
            named_tensors(&trained.trained.model).unwrap()
        }
    }
}

#[test]
fn two_runs_trained_at_once_in_two_threads_each_give_their_single_run_result_bit_for_bit() {
    let configs = [cnn_config(1), cnn_config(2), mlp_config(3)];
    let alone: Vec<Vec<NamedTensor>> = configs.iter().cloned().map(train).collect();
    // The runs differ from one another, so a run that drew another's numbers would show.
    assert!(!same_bits(&alone[0], &alone[1]), "seeds 1 and 2 gave the same CNN");
    for _ in 0..2 {
        let together: Vec<Vec<NamedTensor>> = std::thread::scope(|scope| {
            let handles: Vec<_> =
                configs.iter().map(|config| scope.spawn(|| train(config.clone()))).collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        for (i, (alone, together)) in alone.iter().zip(&together).enumerate() {
            assert!(
                same_bits(alone, together),
                "run {i} trained beside the others differs from run {i} alone"
            );
        }
    }
}

#[test]
fn a_run_gives_the_same_parameters_twice_in_one_process() {
    let first = train(cnn_config(7));
    let second = train(cnn_config(7));
    assert!(same_bits(&first, &second), "the same configuration trained twice differs");
}

/// A whole run through `Run::execute` into `out`: the parameters of its saved model (read back
/// from model.bpk, whose bytes also hold Burn's random parameter ids), and its metrics.csv.
fn execute_into(config: RunConfig, out: &std::path::Path) -> (Vec<NamedTensor>, Vec<u8>) {
    use descent::run::Run;
    use descent::task::classify::ImageClassification;
    use descent::train::Interrupter;
    let experiment = ImageExperiment::prepare(config).unwrap();
    let mut task = ImageClassification::of(&experiment).unwrap();
    let mut run = Run::create(Some(out), "test", &experiment.config).unwrap();
    run.execute(&mut task, Vec::new(), &Interrupter::new()).map_err(|failure| failure.message).unwrap();
    (crate::common::saved_tensors(out), std::fs::read(out.join("metrics.csv")).unwrap())
}

#[test]
fn two_runs_executed_at_once_leave_the_model_and_metrics_each_leaves_alone() {
    let dir = tempfile::tempdir().unwrap();
    let configs = [cnn_config(11), mlp_config(12)];
    let alone: Vec<_> = configs
        .iter()
        .enumerate()
        .map(|(i, config)| execute_into(config.clone(), &dir.path().join(format!("alone-{i}"))))
        .collect();
    let together: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = configs
            .iter()
            .enumerate()
            .map(|(i, config)| {
                let out = dir.path().join(format!("together-{i}"));
                scope.spawn(move || execute_into(config.clone(), &out))
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    for (i, (alone, together)) in alone.iter().zip(&together).enumerate() {
        assert!(
            same_bits(&alone.0, &together.0),
            "run {i}'s saved model differs when another run trains beside it"
        );
        // metrics.csv holds no times: every byte must match.
        assert!(alone.1 == together.1, "run {i}'s metrics.csv differs when another run trains beside it");
    }
}
