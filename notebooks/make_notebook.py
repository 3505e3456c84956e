"""Writes the cells (without outputs) of notebooks/lesson2.ipynb and notebooks/cnn.ipynb from the
lists below.

The cells are kept here, in one readable file, and the notebook is generated from them:

    python3 notebooks/make_notebook.py [lesson2] [cnn]  # the cells, outputs cleared
    notebooks/execute.sh                                # run them on the evcxr kernel, outputs saved

Each code cell follows the markdown cell that gives the notebook's Python line (fast.ai
course-v3, lesson 2, `lesson2-sgd.ipynb`) and what differs in Rust with Burn 0.22.
"""

import json
import pathlib
import sys

CELLS = [
    ("md", """# Lesson 2: SGD from scratch, in Rust

The fast.ai course-v3 notebook `lesson2-sgd.ipynb`, cell by cell, with [Burn](https://burn.dev) 0.22
and the `descent` library, on the [evcxr](https://github.com/evcxr/evcxr) Jupyter kernel. Each
code cell comes after the notebook's own Python line and what is different in Rust.

The notebook draws its data without a seed; here the draws are seeded (ChaCha8, seed 42), so
every run prints the numbers `descent lesson2` prints.

The first cell compiles `descent` and Burn for the kernel: it takes several minutes the first
time. `:cache 4096` keeps up to 4 GiB of compiled crates in evcxr's cache (`~/.cache/evcxr`),
so that the next session reuses them."""),
    ("code", """:cache 4096
:dep descent = { path = "../crates/descent" }"""),
    ("md", """The notebook imports `fastai.basics`. Here: Burn's prelude (tensors and devices, through
`descent::burn`, so that the versions match), the seeded generator, and the device:
`auto` is the fastest CPU backend compiled in."""),
    ("code", """use descent::burn;
use descent::burn::prelude::*;
use descent::data::random::SeededRng;
use descent::notebook;

let device = descent::device::select("auto").expect("a CPU backend").device;
let mut rng = SeededRng::new(42);"""),
    ("md", """```python
n=100
```
A cell is compiled on its own, so Rust cannot infer `n`'s type from its later use as a size:
it is written out."""),
    ("code", """let n: usize = 100;"""),
    ("md", """```python
x = torch.ones(n,2)
x[:,0].uniform_(-1.,1)
x[:5]
```
Burn builds `x` from its two columns. A cell shows a tensor with `println!("{}", ...)`: its
`Display` prints the values (its `Debug`, a cell's default, shows only the backend's handle)."""),
    ("code", """let column0 = Tensor::<2>::from_data(TensorData::new(rng.uniform(n, -1.0, 1.0), [n, 1]), &device);
let x = Tensor::cat(vec![column0, Tensor::ones([n, 1], &device)], 1);
println!("{}", x.clone().slice(0..5));"""),
    ("md", """```python
a = tensor(3.,2); a
```
Burn's `matmul` multiplies matrices, so `a` is a 2x1 column and `x@a` is `[n, 1]`."""),
    ("code", """let a = Tensor::<2>::from_floats([[3.0], [2.0]], &device);
println!("{}", a);"""),
    ("md", """```python
y = x@a + 0.25*torch.randn(n)
```"""),
    ("code", """let noise = Tensor::<2>::from_data(TensorData::new(rng.normal(n), [n, 1]), &device);
let y = x.clone().matmul(a.clone()) + noise.mul_scalar(0.25);"""),
    ("md", """```python
plt.scatter(x[:,0], y);
```
`notebook::scatter` draws the figure in memory; a cell whose last expression is a picture shows
it."""),
    ("code", """notebook::scatter(&x, &y).expect("the figure")"""),
    ("md", """```python
def mse(y_hat, y): return ((y_hat-y)**2).mean()
```"""),
    ("code", """fn mse(y_hat: Tensor<2>, y: Tensor<2>) -> Tensor<1> {
    (y_hat - y).powi_scalar(2).mean()
}"""),
    ("md", """```python
a = tensor(-1.,1)
y_hat = x@a
mse(y_hat, y)
```"""),
    ("code", """let a = Tensor::<2>::from_floats([[-1.0], [1.0]], &device);
let y_hat = x.clone().matmul(a.clone());
println!("mse of the guess a = (-1, 1): {}", mse(y_hat, y.clone()).into_scalar::<f32>());"""),
    ("md", """```python
plt.scatter(x[:,0],y)
plt.scatter(x[:,0],y_hat);
```"""),
    ("code", """notebook::guess(&x, &y, &a).expect("the figure")"""),
    ("md", """```python
a = nn.Parameter(a); a
```
In Burn a tensor records its operations when it lives on an *autodiff device*: `x` and `y` stay
on the plain device (constants), and `a` goes onto the autodiff twin of the same device as a leaf
whose gradient is wanted."""),
    ("code", """let autodiff = device.clone().autodiff();
let mut a = Tensor::<2>::from_floats([[-1.0], [1.0]], &autodiff).require_grad();"""),
    ("md", """```python
def update():
    y_hat = x@a
    loss = mse(y, y_hat)
    if t % 10 == 0: print(loss)
    loss.backward()
    with torch.no_grad():
        a.sub_(lr * a.grad)
        a.grad.zero_()
```
PyTorch needs `torch.no_grad()` so that the update itself is not recorded, and `.detach()` before
plotting ("Can't call numpy() on Variable that requires grad"). Burn's counterpart is `inner()`:
it takes a tensor off the autodiff device, where nothing is recorded; `autodiff().require_grad()`
brings the new `a` back as a fresh leaf. There is no `grad.zero_()`: `backward()` returns fresh
gradients each time instead of adding them onto the tensor. The step is a function of `a`
(`step`), and `update` prints as the notebook does."""),
    ("code", """fn step(a: Tensor<2>, x: &Tensor<2>, y: &Tensor<2>, lr: f64) -> (Tensor<2>, f32) {
    let y_hat = x.clone().matmul(a.clone());
    let loss = mse(y_hat, y.clone());
    let value = loss.clone().inner().into_scalar::<f32>();
    let grads = loss.backward();
    let grad = a.grad(&grads).expect("a is a leaf that requires a gradient");
    ((a.inner() - grad.mul_scalar(lr)).autodiff().require_grad(), value)
}

fn update(t: usize, a: Tensor<2>, x: &Tensor<2>, y: &Tensor<2>, lr: f64) -> (Tensor<2>, f32) {
    let (a, loss) = step(a, x, y, lr);
    if t % 10 == 0 {
        println!("step {t:>3}  loss {loss}");
    }
    (a, loss)
}"""),
    ("md", """```python
lr = 1e-1
for t in range(100): update()
```
The loss printed at step t is the one computed before that step's update."""),
    ("code", """let lr = 1e-1;
let mut losses: Vec<(usize, f64)> = Vec::new();
for t in 0..100 {
    let (next, loss) = update(t, a.clone(), &x, &y, lr);
    a = next;
    losses.push((t, f64::from(loss)));
}
let fitted = notebook::parameters(&a.clone().inner()).expect("a");
println!("fitted a: ({:.6}, {:.6})", fitted[0], fitted[1]);"""),
    ("md", """```python
plt.scatter(x[:,0],y)
plt.scatter(x[:,0],x@a.detach());
```
`a.clone().inner()` is `a.detach()`: the values, off the autodiff device. The figure is
`descent lesson2`'s `fit.png`."""),
    ("code", """notebook::fit(&x, &y, [-1.0, 1.0], &a.clone().inner()).expect("the figure")"""),
    ("md", """The loss of each step (not in the notebook: `descent lesson2` writes it as `loss.png`)."""),
    ("code", """notebook::loss_curve(&losses).expect("the figure")"""),
    ("md", """## Animate it!

```python
a = nn.Parameter(tensor(-1.,1))
fig = plt.figure()
plt.scatter(x[:,0], y, c='orange')
line, = plt.plot(x[:,0], x@a.detach())
plt.close()

def animate(i):
    update()
    line.set_ydata(x@a.detach())
    return line,

animation.FuncAnimation(fig, animate, np.arange(0, 100), interval=20)
```
The same 100 steps from the same guess, one frame each, 20 ms a frame, as an animated GIF."""),
    ("code", """let mut a = Tensor::<2>::from_floats([[-1.0], [1.0]], &autodiff).require_grad();
let mut frames: Vec<([f64; 2], f64)> = Vec::new();
for _ in 0..100 {
    let (next, loss) = step(a.clone(), &x, &y, lr);
    a = next;
    frames.push((notebook::parameters(&a.clone().inner()).expect("a"), f64::from(loss)));
}
notebook::animation(&x, &y, &frames).expect("the animation")"""),
    ("md", """## Mini-batches

"In practice, we don't calculate on the whole file at once, but we use mini-batches." The
notebook stops there; `descent lesson2 --batch-size 10` goes on. Below, the same rows go through
descent's data loader (`MiniBatches`: reshuffled every epoch from the seed, batches of 10), and
the model is a Burn module (`LinearModel`, parameter `a`) updated by Burn's SGD optimizer: one
update per mini-batch, which is what SGD means. The cell's working variables stay inside a
block: the kernel keeps only the table for the next cell. The mean losses are those `descent lesson2 --batch-size 10 --epochs 10`
prints."""),
    ("code", """use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use descent::data::Table;
use descent::data::batches::MiniBatches;
use descent::model::LinearModel;
use descent::train::BatchSource;

let table = Table::new(
    x.clone().into_data().to_vec::<f32>().expect("x"),
    y.clone().into_data().to_vec::<f32>().expect("y"),
    2,
);
{
    let loader = MiniBatches::new(std::sync::Arc::new(table.clone()), 10, 42, &device);
    let mut model = LinearModel::new(&[-1.0, 1.0], &autodiff);
    let mut optimizer = SgdConfig::new().init();
    for epoch in 1..=10 {
        let (mut total, mut rows) = (0.0, 0);
        for batch in loader.epoch() {
            let batch = batch.expect("a batch");
            let size = batch.len();
            let loss = mse(model.forward(batch.x), batch.y);
            total += f64::from(loss.clone().inner().into_scalar::<f32>()) * size as f64;
            rows += size;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(lr, model, grads);
        }
        println!("epoch {epoch:>2}  mean loss {:.6}", total / rows as f64);
    }
    let a = model.valid().parameters().expect("a");
    println!("mini-batch a: ({:.6}, {:.6})", a[0], a[1]);
};"""),
    ("md", """## The yardstick

Gradient descent approaches the least-squares solution, the best any method can do on this data
(not (3, 2): noise was added). `descent::ols` solves the normal equations in f64."""),
    ("code", """let ols = descent::ols::least_squares(&table).expect("the normal equations");
let gap = (fitted[0] - ols.a[0]).abs().max((fitted[1] - ols.a[1]).abs());
println!("fitted a:             ({:.6}, {:.6})", fitted[0], fitted[1]);
println!("least squares a_ols:  ({:.6}, {:.6})   mse {:.6}", ols.a[0], ols.a[1], ols.mse);
println!("gap: max |a - a_ols| = {gap:.6}");"""),
    ("md", """## Vocabulary

- *learning rate*: what the gradient is multiplied by before it is subtracted from the parameters
- *epoch*: one complete pass through all the data points
- *mini-batch*: a random bunch of points used for one update of the weights
- *SGD*: gradient descent using mini-batches
- *model* / *architecture*: the mathematical function whose parameters are fitted
- *parameters* (weights, coefficients): the numbers being updated
- *loss function*: how far the predictions are from the right answers"""),
]


# notebooks/cnn.ipynb: the lesson series' next step, a CNN on Fashion-MNIST through the library's
# run, as `descent cnn --data fashion-mnist` trains it (a shorter run, so that CI executes it).
CNN_CELLS = [
    ("md", """# A CNN on Fashion-MNIST, in Rust

The lessons' next step (fastai's `learn = cnn_learner(data, ...); learn.fit_one_cycle(...)`,
then `ClassificationInterpretation`), with the `descent` library on the
[evcxr](https://github.com/evcxr/evcxr) Jupyter kernel: the data, the model layer by layer,
training through the same run `descent cnn --data fashion-mnist` makes (its run folder, its
figures), the confusion matrix, the top losses, and a prediction on a picture.

Fashion-MNIST comes from Debian: `apt-get install dataset-fashion-mnist` puts its four IDX files
(MIT licence, Zalando) in `/usr/share/datasets/fashion-mnist`. The first cell compiles `descent`
and Burn for the kernel, or reuses what the lesson's notebook compiled (`:cache`)."""),
    ("code", """:cache 4096
:dep descent = { path = "../crates/descent" }"""),
    ("md", """## The data

`RunConfig::fashion_mnist()` is the configuration `descent cnn --data fashion-mnist` starts
from: the CNN, batches of 64, Adam on fastai's one-cycle schedule, seed 42. This notebook trains
2 epochs on the first 10,000 training images (`data.train_limit`), so that it runs in CI in
seconds; drop the two lines to train the command's full 10 epochs on all 60,000.
`ImageExperiment::prepare` checks the configuration, opens the device and reads the images
(fastai's `ImageDataBunch`)."""),
    ("code", """use descent::config::{DataConfig, RunConfig};
use descent::experiment::ImageExperiment;
use descent::notebook;

let mut config = RunConfig::fashion_mnist();
config.training.epochs = Some(2);
if let DataConfig::FashionMnist { train_limit, .. } = &mut config.data {
    *train_limit = Some(10_000);
}
let experiment = ImageExperiment::prepare(config).expect("Fashion-MNIST: apt-get install dataset-fashion-mnist");
let names = experiment.class_names();
println!(
    "{} training and {} validation images of {}x{}; classes: {}",
    experiment.train.len(),
    experiment.valid.len(),
    experiment.train_set.side(),
    experiment.train_set.side(),
    names.join(", ")
);"""),
    ("md", """One training image, eight times its size (fastai's `data.show_batch()`), and its class."""),
    ("code", """let first = experiment.train[0];
println!("class: {}", names[usize::from(experiment.train_set.label(first))]);
notebook::image(&experiment.train_set, first, 8).expect("the image")"""),
    ("md", """## The model

`learn.summary()`: each layer with its output shape for one image, its parameters and its
multiply-adds (`descent summary` prints the same)."""),
    ("code", """print!("{}", experiment.summary().expect("the summary").table());"""),
    ("md", """## Training

`learn.fit_one_cycle(...)`. The library's run: a run folder (`../target/notebook/cnn-run`: the
configuration, checkpoints, `metrics.csv`, the model, the figures, `summary.json`), the model the
configuration names, and the training engine, as the command line runs it. The borrowed pieces
stay inside the block; the kernel keeps what training gave."""),
    ("code", """use descent::run::Run;
use descent::task::classify::ImageClassification;
use descent::train::Interrupter;

let folder = std::path::PathBuf::from("../target/notebook/cnn-run");
let _ = std::fs::remove_dir_all(&folder);
let results = {
    let mut run = Run::create(Some(&folder), "notebook", &experiment.config).expect("the run folder");
    let mut task = ImageClassification::of(&experiment).expect("the model");
    run.execute(&mut task, vec![], &Interrupter::new()).expect("training").outcome
};
for row in &results.metrics {
    println!(
        "epoch {}  train_loss {:.4}  valid_loss {:.4}  accuracy {:.4}",
        row.epoch,
        row.train_loss,
        row.valid_loss.unwrap_or(f64::NAN),
        row.accuracy.unwrap_or(f64::NAN)
    );
}
println!("accuracy {:.6}  error_rate {:.6}", results.evaluation.accuracy, results.evaluation.error_rate);"""),
    ("md", """The run's loss curve (`learn.recorder.plot_losses()`): every batch's training loss and each
epoch's validation loss, the `loss.png` of its folder."""),
    ("code", """notebook::Picture::png(std::fs::read(folder.join("loss.png")).expect("loss.png"))"""),
    ("md", """## Interpretation

`interp.plot_confusion_matrix()`: rows are the true classes, columns the predicted ones."""),
    ("code", """notebook::confusion(&experiment, &results.evaluation).expect("the confusion matrix")"""),
    ("md", """`interp.plot_top_losses(9)`: the validation images the model got most wrong, each with
its prediction, its true class, its loss and the probability it gave the true class."""),
    ("code", """notebook::top_losses(&experiment, &results.evaluation, 9).expect("the top losses")"""),
    ("md", """## Predict on a picture

`learn.predict(img)`. The first validation image written as a PNG file, then predicted from the
file by the saved model, as `descent predict --model ../target/notebook/cnn-run --input FILE`
does: the class, its name and the model's confidence."""),
    ("code", """use descent::inference::{SavedModel, load_saved};

let index = experiment.valid[0];
let file = folder.join("picture.png");
std::fs::write(&file, notebook::image(&experiment.valid_set, index, 1).expect("the image").bytes()).expect("picture.png");
let device = experiment.device.device.clone();
let (saved_config, saved) = load_saved(&folder, &device).expect("the saved model");
let predictions = saved.predict(&saved_config, &file, &device).expect("a prediction");
print!("{}", predictions.csv.replace(&file.display().to_string(), "picture.png"));
println!("true class: {}", names[usize::from(experiment.valid_set.label(index))]);
notebook::image(&experiment.valid_set, index, 8).expect("the image")"""),
]


def cell(kind, text):
    lines = text.split("\n")
    source = [line + "\n" for line in lines[:-1]] + [lines[-1]]
    if kind == "md":
        return {"cell_type": "markdown", "metadata": {}, "source": source}
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": source}


def notebook(cells):
    return {
    "cells": [cell(kind, text) for kind, text in cells],
    "metadata": {
        "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
        "language_info": {
            "codemirror_mode": "rust",
            "file_extension": ".rs",
            "mimetype": "text/rust",
            "name": "Rust",
            "pygment_lexer": "rust",
            "version": "",
        },
    },
    "nbformat": 4,
    "nbformat_minor": 4,
    }


NOTEBOOKS = {"lesson2": CELLS, "cnn": CNN_CELLS}
for name in sys.argv[1:] or NOTEBOOKS:
    cells = NOTEBOOKS[name]
    path = pathlib.Path(__file__).with_name(f"{name}.ipynb")
    path.write_text(json.dumps(notebook(cells), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
