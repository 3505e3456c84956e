#!/usr/bin/env python3
"""descent beside PyTorch on this machine, in one run: the table of BENCHMARKS.md.

Runs `descent bench` (Flex) and the PyTorch scripts of bench/pytorch/ one after the other, at
each thread count, and prints one Markdown table per thread count with the ratios and the
targets (issue 29's), then the peak memory of a 10,000,000-row lesson run.

    python3 -m venv ../.venv-bench && ../.venv-bench/bin/pip install torch numpy scikit-learn
    cargo build --release
    python3 bench/compare.py --python ../.venv-bench/bin/python            # about 15 minutes
    python3 bench/compare.py --python ../.venv-bench/bin/python --quick    # about 3 minutes

Nothing else should run meanwhile: every figure is a wall-clock time of this machine.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FASHION = "/usr/share/datasets/fashion-mnist"


def run(cmd, env=None):
    """Run `cmd`, echo it, return its standard output."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    out = proc.stdout
    if proc.returncode:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{out}")
    return out


def peak_rss_mb(cmd):
    """Peak resident memory of one command, in MB, read from the kernel's rusage of the child."""
    print("$", " ".join(cmd), file=sys.stderr, flush=True)
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    if status:
        sys.exit(f"failed: {' '.join(cmd)}")
    return usage.ru_maxrss / 1024


def result(out):
    """The `RESULT key=value ...` line of a PyTorch script, as a dict."""
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][-1]
    pairs = (item.split("=", 1) for item in line.split()[1:])
    values = {}
    for key, value in pairs:
        try:
            values[key] = float(value)
        except ValueError:
            values[key] = value
    return values


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--descent", default=os.path.join(ROOT, "target", "release", "descent"))
    p.add_argument("--python", default=sys.executable, help="a Python with torch, numpy, scikit-learn")
    p.add_argument("--threads", default="2,1", help="thread counts to measure, comma-separated")
    p.add_argument("--repeats", type=int, default=3, help="runs per descent figure (median)")
    p.add_argument("--fashion", default=FASHION, help="the Fashion-MNIST IDX folder")
    p.add_argument("--quick", action="store_true", help="small sizes: a look, not the BENCHMARKS.md figures")
    p.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    args = p.parse_args()
    py = os.path.join(HERE, "pytorch")
    n_full = 1_000_000 if args.quick else 10_000_000
    fashion_limit = ["--train-limit", "10000"] if args.quick else []
    cnn_epochs = "1" if args.quick else "3"
    report = {"cpu": cpu_model(), "cores": os.cpu_count(), "quick": args.quick, "threads": {}}
    print(f"machine: {report['cpu']}, {report['cores']} cores")
    for threads in [int(t) for t in args.threads.split(",")]:
        env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
        bench = [args.descent, "bench", "--devices", "flex", "--repeats", str(args.repeats),
                 "--fashion", args.fashion, "--json", "--workloads", "lesson,fullbatch,cnn,fashion,inference"]
        if args.quick:
            bench.append("--quick")
        ours = json.loads(run(bench, env).strip().splitlines()[-1])["results"]
        figure = {(r["workload"], r["case"].split(",")[1].strip() if r["workload"] == "lesson" else ""): r["median"]
                  for r in ours}
        t = ["--threads", str(threads)]
        lesson = result(run([args.python, f"{py}/lesson2.py", "--steps", "100", "--mode", "both"] + t))
        closed = result(run([args.python, f"{py}/closed_form.py", "--n", str(n_full), "--repeats", "5"] + t))
        cnn = result(run([args.python, f"{py}/cnn.py", "--mode", "digits", "--epochs", cnn_epochs] + t))
        fashion = result(run([args.python, f"{py}/fashion.py", "--epochs", "1", "--dir", args.fashion]
                             + fashion_limit + t))
        inference = result(run([args.python, f"{py}/inference.py", "--dir", args.fashion] + t))
        rows = [
            ("lesson step, n = 100, 100 steps (µs, lower is better)", figure[("lesson", "100 steps")],
             lesson["module_us_per_step"], "descent/PyTorch", "≤ 0.25"),
            (f"full-batch step, n = {n_full:,} (ms)", figure[("fullbatch", "")],
             closed["numpy_matvec_out_ms"], "descent / numpy x@a", "≤ 1.5"),
            ("digits CNN, training images/s", figure[("cnn", "")], cnn["digits_train_img_per_s"],
             "descent/PyTorch", "≥ 1.5"),
            ("Fashion-MNIST CNN, training images/s", figure[("fashion", "")], fashion["train_img_per_s"],
             "descent/PyTorch", "≥ 1.25"),
            ("Fashion-MNIST test set, inference images/s", figure[("inference", "")], inference["img_per_s"],
             "descent/PyTorch", "≥ 1.5"),
        ]
        print(f"\n### {threads} thread{'s' if threads > 1 else ''}\n")
        print("| workload | descent (flex) | PyTorch / numpy | ratio | target |")
        print("|---|---|---|---|---|")
        for name, ours_value, theirs, ratio_name, target in rows:
            print(f"| {name} | {ours_value:,.1f} | {theirs:,.1f} | {ours_value / theirs:.2f} ({ratio_name}) | {target} |")
        print(f"\nPyTorch's own full-batch step: {closed['gd_step_ms']:.1f} ms; "
              f"Fashion-MNIST test error after 1 epoch: PyTorch {fashion['test_error']:.4f}")
        report["threads"][threads] = {"descent": ours, "pytorch": {
            "lesson2": lesson, "closed_form": closed, "cnn": cnn, "fashion": fashion, "inference": inference}}
    with tempfile.TemporaryDirectory() as folder:
        rss = peak_rss_mb([args.descent, "lesson2", "--n", "10000000", "--steps", "5", "--quiet",
                           "--out", os.path.join(folder, "run")])
    data_mb = 10_000_000 * 3 * 4 / 1e6
    print(f"\npeak RSS of `descent lesson2 --n 10000000 --steps 5`: {rss:.0f} MB "
          f"(target ≤ 1.3 × {data_mb:.0f} MB + 60 MB = {1.3 * data_mb + 60:.0f} MB)")
    report["lesson2_peak_rss_mb"] = rss
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
