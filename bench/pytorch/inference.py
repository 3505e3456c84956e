#!/usr/bin/env python3
"""Inference of the descent CNN on Fashion-MNIST's 10,000 test images -- PyTorch CPU reference for
`descent bench --workloads inference`.

The model is fashion.py's (descent's default CnnConfig), untrained: the weights do not change the
work. `model.eval()` (batch norm on its running statistics, dropout off) under `torch.no_grad()`,
batches of 512 images (descent's evaluation passes), log-softmax per batch, as descent's
evaluation computes and reads back. Timing covers the batches only; the first batch of an
untimed warm-up pass lets oneDNN pick its kernels first.

Usage: python inference.py [--threads T] [--dir DIR] [--repeats N]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import result_line, setup_threads  # noqa: E402
from fashion import DIR, load, make_cnn  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=DIR)
    p.add_argument("--bs", type=int, default=512)
    p.add_argument("--repeats", type=int, default=3, help="timed passes over the test set (median)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    import torch
    threads = setup_threads(args.threads)
    x, _ = load(torch, args.dir, "t10k")
    torch.manual_seed(args.seed)
    model = make_cnn(torch).eval()
    rates = []
    with torch.no_grad():
        model(x[:args.bs]).log_softmax(1)
        for _ in range(args.repeats):
            start = time.perf_counter()
            for i in range(0, len(x), args.bs):
                model(x[i:i + args.bs]).log_softmax(1)
            rates.append(len(x) / (time.perf_counter() - start))
    result_line(script="inference", threads=threads, n_test=len(x), bs=args.bs,
                      img_per_s=statistics.median(rates), runs=",".join("%.0f" % r for r in rates))


if __name__ == "__main__":
    main()
