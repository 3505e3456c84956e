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
