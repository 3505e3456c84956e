//! The engine's side of a job of several processes (MPI, [`crate::world`]): each process
//! computes the loss and gradients of its share of the global batch, the gradients are summed
//! across the processes in one flat buffer, and every process makes the same update, so the
//! replicas stay equal, which a checksum of the parameters confirms at every epoch's end.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::objective::TrainError;
use crate::world::World;

/// The gradients of `model`'s parameters, summed across the processes of `world`: flattened in
/// the module's order into one buffer, summed with one all-reduce, and put back.
pub(super) fn sum_gradients<M: Module>(
    world: &World,
    model: &M,
    gradients: GradientsParams,
) -> GradientsParams {
    if !world.is_parallel() {
        return gradients;
    }
    let mut flat = Flatten { gradients, values: Vec::new(), shapes: Vec::new(), device: None };
    model.visit(&mut flat);
    let Flatten { mut values, shapes, device, .. } = flat;
    world.sum_f32(&mut values);
    let Some(device) = device else {
        return GradientsParams::new();
    };
    let mut restore = Restore {
        shapes: shapes.into_iter(),
        values: &values,
        at: 0,
        device,
        gradients: GradientsParams::new(),
    };
    model.visit(&mut restore);
    restore.gradients
}

/// The values a step's gradient all-reduce sums: one per value of every parameter that trains
/// (batch norm's running statistics take no gradient), on a model made on an autodiff device.
pub fn gradient_values<M: Module>(model: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if value.is_require_grad() {
                self.0 += value.shape().num_elements();
            }
        }
    }
    let mut count = Count(0);
    model.visit(&mut count);
    count.0
}

/// Each gradient's values appended in the module's order; the shape of each parameter that has
/// a gradient (`None` for one that has none, on every process alike).
struct Flatten {
    gradients: GradientsParams,
    values: Vec<f32>,
    shapes: Vec<Option<Vec<usize>>>,
    device: Option<Device>,
}

impl ModuleVisitor for Flatten {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(gradient) = self.gradients.remove::<D>(param.id) else {
            self.shapes.push(None);
            return;
        };
        self.device.get_or_insert_with(|| gradient.device());
        self.shapes.push(Some(gradient.dims().to_vec()));
        let data = gradient.into_data().convert::<f32>();
        self.values.extend_from_slice(data.as_slice::<f32>().unwrap_or(&[]));
    }
}

/// The summed values back into gradients, parameter by parameter in the same order.
struct Restore<'a> {
    shapes: std::vec::IntoIter<Option<Vec<usize>>>,
    values: &'a [f32],
    at: usize,
    device: Device,
    gradients: GradientsParams,
}

impl ModuleVisitor for Restore<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(Some(shape)) = self.shapes.next() else { return };
        let count: usize = shape.iter().product();
        let values = self.values[self.at..self.at + count].to_vec();
        self.at += count;
        let tensor = Tensor::<D>::from_data(TensorData::new(values, shape), &self.device);
        self.gradients.register(param.id, tensor);
    }
}

/// `model` with its buffers (batch norm's running statistics: the tensors that take no
/// gradient) averaged across the processes of `world`. Without synchronised batch norm each
/// process's running statistics follow its own shares; averaged at every epoch's end (and where
/// a run is interrupted) they become one model's again, estimated from every share.
pub(super) fn average_buffers<M: Module>(world: &World, model: M) -> M {
    if !world.is_parallel() {
        return model;
    }
    struct Average<'a>(&'a World);
    impl ModuleMapper for Average<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if param.val().is_require_grad() {
                return param;
            }
            let world = self.0;
            param.map(|old| {
                let (device, shape) = (old.device(), old.dims().to_vec());
                let data = old.into_data().convert::<f32>();
                let mut values = data.as_slice::<f32>().unwrap_or(&[]).to_vec();
                world.sum_f32(&mut values);
                let processes = world.size() as f32;
                values.iter_mut().for_each(|value| *value /= processes);
                Tensor::from_data(TensorData::new(values, shape), &device)
            })
        }
    }
    model.map(&mut Average(world))
}

/// A 64-bit hash ([`crate::world::fingerprint`]) of every parameter's bits, in the module's order.
pub fn parameter_checksum<M: Module>(model: &M) -> u64 {
    struct Bytes(Vec<u8>);
    impl ModuleVisitor for Bytes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            self.0.extend(data.as_slice::<f32>().unwrap_or(&[]).iter().flat_map(|value| value.to_le_bytes()));
        }
    }
    let mut bytes = Bytes(Vec::new());
    model.visit(&mut bytes);
    crate::world::fingerprint(&bytes.0)
}

/// Refuse replicas that have drifted apart: every process's parameter checksum after `epoch`
/// must be rank 0's.
pub(super) fn check_replicas<M: Module>(world: &World, model: &M, epoch: usize) -> Result<(), TrainError> {
    if !world.is_parallel() {
        return Ok(());
    }
    let sums = world.gather(parameter_checksum(model));
    match crate::world::first_difference(&sums) {
        None => Ok(()),
        Some((rank, root, other)) => Err(TrainError::Replicas(format!(
            "after epoch {epoch} the parameters of rank {rank} (checksum {other:016x}) differ from rank 0's ({root:016x}): the processes no longer train one model"
        ))),
    }
}
