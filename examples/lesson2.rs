//! fast.ai course-v3, lesson 2, "SGD from scratch" (`lesson2-sgd.ipynb`), cell by cell, in Rust
//! with Burn 0.22. Each `// In [k]:` comment is the notebook's cell; the names are the notebook's.
//!
//!     cargo run --release --example lesson2
//!
//! The random draws are the ones `descent lesson2` makes with the same seed (ChaCha8, seed 42),
//! so the two print the same losses to within float rounding.

// `t % 10 == 0` is the notebook's own line; keep it recognisable.
#![allow(clippy::manual_is_multiple_of)]

use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use descent::data::random::SeededRng;
use descent::model::LinearModel;

// In [6]: def mse(y_hat, y): return ((y_hat-y)**2).mean()
fn mse(y_hat: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (y_hat - y).powi_scalar(2).mean()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Burn 0.22 picks the backend at run time. `auto` is the fastest CPU backend compiled in.
    let device = descent::device::select("auto")?.device;
    let mut rng = SeededRng::new(42);

    // In [1]: n=100
    let n = 100;

    // In [2]: x = torch.ones(n,2); x[:,0].uniform_(-1.,1); x[:5]
    let column0 = Tensor::<2>::from_data(TensorData::new(rng.uniform(n, -1.0, 1.0), [n, 1]), &device);
    let x = Tensor::cat(vec![column0, Tensor::ones([n, 1], &device)], 1);
    println!("x[:5] =\n{}", x.clone().slice(0..5));

    // In [3]: a = tensor(3.,2)
    // Burn's matmul multiplies matrices, so `a` is a 2x1 column and `x@a` is [n, 1].
    let a = Tensor::<2>::from_floats([[3.0], [2.0]], &device);

    // In [4]: y = x@a + 0.25*torch.randn(n)
    let noise = Tensor::<2>::from_data(TensorData::new(rng.normal(n), [n, 1]), &device);
    let y = x.clone().matmul(a) + noise.mul_scalar(0.25);

    // In [7]: a = tensor(-1.,1); y_hat = x@a; mse(y_hat, y)
    let a = Tensor::<2>::from_floats([[-1.0], [1.0]], &device);
    let y_hat = x.clone().matmul(a);
    println!("mse of the guess a = (-1, 1): {}", mse(y_hat, y.clone()).into_scalar::<f32>());

    // In [9]: a = nn.Parameter(a)
    // Burn has no `requires_grad=True` on a plain tensor of a plain device: autodiff is a property
    // of the device. `x` and `y` stay on the plain device (constants); `a` lives on the autodiff
    // twin of the same device and is marked as a leaf whose gradient we want.
    let autodiff = device.clone().autodiff();
    let mut a = Tensor::<2>::from_floats([[-1.0], [1.0]], &autodiff).require_grad();

    // In [10]: def update(): ...
    //     y_hat = x@a; loss = mse(y, y_hat)
    //     if t % 10 == 0: print(loss)
    //     loss.backward()
    //     with torch.no_grad(): a.sub_(lr * a.grad); a.grad.zero_()
    //
    // PyTorch needs `torch.no_grad()` so that the update itself is not recorded, and `.detach()`
    // before plotting ("Can't call numpy() on Variable that requires grad"). In Burn the same
    // idea is `inner()`: it takes a tensor off the autodiff device, so nothing done to it is
    // recorded. `a.grad(&grads)` already returns a plain tensor. The new `a` goes back onto the
    // autodiff device as a fresh leaf; there is no `grad.zero_()` because Burn's gradients are
    // returned by `backward()` each time rather than accumulated on the tensor.
    let update = |t: usize, a: Tensor<2>, lr: f64| -> Tensor<2> {
        let y_hat = x.clone().matmul(a.clone());
        let loss = mse(y_hat, y.clone());
        if t % 10 == 0 {
            println!("step {t:>3}  loss {:.6}", loss.clone().inner().into_scalar::<f32>());
        }
        let grads = loss.backward();
        let grad = a.grad(&grads).expect("`a` is a leaf that requires a gradient");
        (a.inner() - grad.mul_scalar(lr)).autodiff().require_grad()
    };

    // In [11]: lr = 1e-1; for t in range(100): update()
    let lr = 1e-1;
    println!("\nby hand: a <- a - lr * grad");
    for t in 0..100 {
        a = update(t, a, lr);
    }
    let by_hand = a.inner().into_data();
    println!("a = {by_hand}");

    // The same 100 steps with the model as a Burn module and Burn's SGD optimizer: this is what
    // the `descent` trainer runs. `GradientsParams::from_grads` collects each parameter's
    // gradient; `optimizer.step` returns the updated module.
    println!("\nwith Burn's SGD optimizer");
    let mut model = LinearModel::new(&[-1.0, 1.0], &autodiff);
    let mut optimizer = SgdConfig::new().init();
    for t in 0..100 {
        let loss = mse(model.forward(x.clone()), y.clone());
        if t % 10 == 0 {
            println!("step {t:>3}  loss {:.6}", loss.clone().inner().into_scalar::<f32>());
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optimizer.step(lr, model, grads);
    }
    // In [12]: plt.scatter(x[:,0], y); plt.scatter(x[:,0], x@a.detach())
    // `valid()` is Burn's `.detach()` for a whole module: the copy is off the autodiff device.
    let fitted = model.valid().a.val().into_data();
    println!("a = {fitted}");
    println!("identical to the update by hand: {}", fitted == by_hand);
    Ok(())
}
