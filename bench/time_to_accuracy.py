#!/usr/bin/env python3
"""Wall-clock time to a test accuracy on Fashion-MNIST: descent's defaults beside PyTorch with the
same model, optimizer and schedule, one after the other on this machine (issue 29's last row).

descent: `descent cnn --data fashion-mnist` as a user runs it (10 epochs of Adam on the one-cycle
schedule peaking at 3e-3, batch 64, validation on the 10,000 test images after every epoch); the
time of an epoch is when its line reaches standard output, counted from the command's start.
PyTorch: `bench/pytorch/fashion.py --schedule one-cycle --lr 3e-3 --epochs 10`, the same layers,
the same schedule, its own timestamps (`wall_s`, from the script's start). Each side stops after
the first epoch at or above --accuracy; both count data loading.

    python3 bench/time_to_accuracy.py --python ../.venv-bench/bin/python [--accuracy 0.91]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def descent_epochs(binary, folder, accuracy):
    """(epoch, accuracy, seconds since start) of each epoch of descent's default Fashion run."""
    start = time.perf_counter()
    proc = subprocess.Popen([binary, "cnn", "--data", "fashion-mnist", "--out", folder],
                            stdout=subprocess.PIPE, text=True)
    rows = []
    for line in proc.stdout:
        found = re.match(r"epoch (\d+)/\d+ .*accuracy ([0-9.]+)", line)
        if found:
            rows.append((int(found[1]), float(found[2]), time.perf_counter() - start))
            print(f"descent  epoch {rows[-1][0]}  accuracy {rows[-1][1]:.4f}  {rows[-1][2]:.1f} s", flush=True)
            if rows[-1][1] >= accuracy:
                proc.terminate()
                break
    proc.wait()
    return rows


def pytorch_epochs(python, accuracy):
    cmd = [python, os.path.join(HERE, "pytorch", "fashion.py"), "--schedule", "one-cycle", "--lr", "3e-3",
           "--epochs", "10", "--stop-at", str(accuracy)]
    rows = []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        found = re.match(r"epoch (\d+) .*test_error ([0-9.]+) .*wall_s ([0-9.]+)", line)
        if found:
            rows.append((int(found[1]) + 1, 1 - float(found[2]), float(found[3])))
            print(f"PyTorch  epoch {rows[-1][0]}  accuracy {rows[-1][1]:.4f}  {rows[-1][2]:.1f} s", flush=True)
    proc.wait()
    return rows


def first_reaching(rows, accuracy):
    return next(((epoch, seconds) for epoch, acc, seconds in rows if acc >= accuracy), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--descent", default=os.path.join(ROOT, "target", "release", "descent"))
    p.add_argument("--python", default=sys.executable, help="a Python with torch")
    p.add_argument("--accuracy", type=float, default=0.91)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        ours = descent_epochs(args.descent, os.path.join(folder, "run"), args.accuracy)
    theirs = pytorch_epochs(args.python, args.accuracy)
    for name, rows in [("descent", ours), ("PyTorch", theirs)]:
        reached = first_reaching(rows, args.accuracy)
        where = f"epoch {reached[0]}, {reached[1]:.1f} s" if reached else f"not within {len(rows)} epochs"
        print(f"{name}: {args.accuracy:.0%} test accuracy at {where}")


if __name__ == "__main__":
    main()
