#!/usr/bin/env python3
"""descent and PyTorch measured in alternation: the CNN rows of BENCHMARKS.md on a noisy machine.

`compare.py` runs every descent figure, then every PyTorch one. On a shared VM the machine's
speed drifts by tens of percent within minutes (a neighbour on the same physical core shows up
in neither `top` nor the steal time), so two figures taken ten minutes apart compare the
machine's moods as much as the programs. Here each pair runs back to back, descent then
PyTorch, `--pairs` times: each pair's ratio sees about the same machine, and the table reports
the median of the pairs' ratios beside each side's median and range.

    python3 bench/paired.py --python ../.venv-bench/bin/python                       # ~25 minutes
    python3 bench/paired.py --python ../.venv-bench/bin/python --workloads cnn,inference --pairs 5
"""
import argparse
import json
import os
import statistics
import sys

from compare import FASHION, HERE, ROOT, result, run

TARGETS = {"fashion": 1.25, "cnn": 1.5, "inference": 1.5}
NAMES = {
    "fashion": "Fashion-MNIST CNN, 1 epoch, training images/s",
    "cnn": "digits CNN (bench config), training images/s",
    "inference": "Fashion-MNIST test set, inference images/s",
}


def one_pair(args, workload, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    bench = [args.descent, "bench", "--devices", "flex", "--repeats", "1", "--fashion", args.fashion,
             "--json", "--workloads", workload]
    ours = json.loads(run(bench, env).strip().splitlines()[-1])["results"][0]["median"]
    py = os.path.join(HERE, "pytorch")
    t = ["--threads", str(threads)]
    if workload == "fashion":
        cmd, key = [f"{py}/fashion.py", "--epochs", "1", "--dir", args.fashion], "train_img_per_s"
    elif workload == "cnn":
        cmd, key = [f"{py}/cnn.py", "--mode", "digits", "--epochs", "3"], "digits_train_img_per_s"
    else:
        cmd, key = [f"{py}/inference.py", "--dir", args.fashion, "--repeats", "1"], "img_per_s"
    theirs = result(run([args.python] + cmd + t, env))[key]
    return ours, theirs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--descent", default=os.path.join(ROOT, "target", "release", "descent"))
    p.add_argument("--python", default=sys.executable, help="a Python with torch, numpy, scikit-learn")
    p.add_argument("--threads", default="2,1", help="thread counts, comma-separated")
    p.add_argument("--workloads", default="cnn,inference,fashion", help="of: fashion, cnn, inference")
    p.add_argument("--pairs", type=int, default=3, help="alternating runs of each side")
    p.add_argument("--fashion", default=FASHION, help="the Fashion-MNIST IDX folder")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = p.parse_args()
    report = []
    for threads in [int(t) for t in args.threads.split(",")]:
        for workload in args.workloads.split(","):
            pairs = [one_pair(args, workload, threads) for _ in range(args.pairs)]
            ours, theirs = [a for a, _ in pairs], [b for _, b in pairs]
            ratios = [a / b for a, b in pairs]
            report.append({"workload": workload, "threads": threads, "descent": ours, "pytorch": theirs,
                           "ratios": ratios})
    print("| workload | threads | descent median (range) | PyTorch median (range) | median pair ratio (range) | target |")
    print("|---|---|---|---|---|---|")
    for r in report:
        span = lambda xs, f: f"{f(statistics.median(xs))} ({f(min(xs))}–{f(max(xs))})"
        count = lambda x: f"{x:,.0f}"
        ratio = lambda x: f"{x:.2f}×"
        print(f"| {NAMES[r['workload']]} | {r['threads']} | {span(r['descent'], count)} | "
              f"{span(r['pytorch'], count)} | {span(r['ratios'], ratio)} | ≥ {TARGETS[r['workload']]}× |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
