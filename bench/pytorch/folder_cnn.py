#!/usr/bin/env python3
"""descent's default CNN for a folder of pictures, layer for layer -- PyTorch CPU reference (throughput).

Model (side x side RGB in, --classes out; 94,212 parameters at 4 classes):
    [Conv2d(c_in, c, 3, padding=1) -> BatchNorm2d(c) -> ReLU -> MaxPool2d(2)] for c in (32, 64, 128)
    AdaptiveAvgPool2d(1) -> Flatten -> Dropout(0.25) -> Linear(128, classes)
Training: batch 64, Adam(lr=1e-3), F.cross_entropy, model in training mode (batch norm and dropout active).
Data: synthetic N(0,1) images [N, 3, side, side] with random labels over --classes, a pool of 16 batches
reused in turn; --synth-warmup untimed steps, then --synth-steps timed steps.
Timing: train_img_per_s = synth_steps * bs / time of the timed steps.

Usage: python folder_cnn.py [--threads T] [--side 64] [--classes 4] [--synth-steps 20]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import result_line, setup_threads  # noqa: E402


def make_cnn(torch, classes):
    nn = torch.nn
    layers, c_in = [], 3
    for c in (32, 64, 128):
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.25), nn.Linear(c_in, classes)]
    return nn.Sequential(*layers)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--side", type=int, default=64, help="image width and height")
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--bs", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's learning rate")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--synth-steps", type=int, default=20)
    p.add_argument("--synth-warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads(T); 0 = default")
    args = p.parse_args()

    import torch
    F = torch.nn.functional
    threads = setup_threads(args.threads)
    torch.manual_seed(args.seed)
    bs, pool = args.bs, 16
    X = torch.randn(pool * bs, 3, args.side, args.side)
    Y = torch.randint(0, args.classes, (pool * bs,))
    model = make_cnn(torch, args.classes)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def step(k):
        j = (k % pool) * bs
        loss = F.cross_entropy(model(X[j:j + bs]), Y[j:j + bs])
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    for k in range(args.synth_warmup):
        step(k)
    t0 = time.perf_counter()
    for k in range(args.synth_steps):
        loss = step(k)
    float(loss.detach())
    dt = time.perf_counter() - t0
    img_per_s = args.synth_steps * bs / dt
    ms_per_step = dt / args.synth_steps * 1e3
    print("== synthetic %dx%d RGB, %d classes: %d params, adam, bs=%d, %d timed steps (+%d warmup): "
          "%.1f img/s train (%.1f ms/step)" % (args.side, args.side, args.classes, nparams, bs,
                                                args.synth_steps, args.synth_warmup, img_per_s, ms_per_step))
    result_line("folder_cnn", threads=threads, side=args.side, classes=args.classes, bs=bs, params=nparams,
                synth_steps=args.synth_steps, train_img_per_s=img_per_s, ms_per_step=ms_per_step)


if __name__ == "__main__":
    main()
