//! The head trained apart from the body: fastai's `freeze` (the head alone for the first
//! epochs of a fine-tuning, `fine_tune(freeze_epochs=...)`) and a smaller rate for the body
//! (discriminative learning rates, fastai's `slice(lr/f, lr)` in its simplest form).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

/// How the head and the body of a network train.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadTraining {
    /// The head: the network's last layer, by its field name (`ImageModel::HEAD`).
    pub head: String,
    /// The first epochs in which only the head trains (the body's parameters do not change).
    pub freeze_epochs: usize,
    /// The body's learning rate as a fraction of the head's (1: the same rate).
    pub body_lr_factor: f64,
}

impl HeadTraining {
    /// Whether the body is frozen in epoch `epoch` (1-based).
    pub fn frozen(&self, epoch: usize) -> bool {
        epoch <= self.freeze_epochs
    }
}

/// `gradients` split into the head's and the body's, by the parameters of `model` under the
/// field `head`.
pub(super) fn split<M: Module>(
    model: &M,
    gradients: GradientsParams,
    head: &str,
) -> (GradientsParams, GradientsParams) {
    struct Splitter<'a> {
        head: &'a str,
        path: Vec<String>,
        body: GradientsParams,
        heads: GradientsParams,
    }
    impl ModuleVisitor for Splitter<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.path.first().is_some_and(|first| first == self.head)
                && let Some(gradient) = self.body.remove::<D>(param.id)
            {
                self.heads.register(param.id, gradient);
            }
        }
    }
    let mut splitter = Splitter { head, path: Vec::new(), body: gradients, heads: GradientsParams::new() };
    model.visit(&mut splitter);
    (splitter.heads, splitter.body)
}
