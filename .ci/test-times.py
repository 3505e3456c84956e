#!/usr/bin/env python3
"""Pass the test command's output through unchanged, then print where its time went.

cargo test runs each test binary in turn, and each binary runs its tests on as many threads as
there are cores, printing `test NAME ... ok` as each one ends. The time between one such line and
the one before it is charged to the test that ended; summed by module (the first part of the test's
path within its binary: `cnn` for `cnn::fashion_mnist_...`, `train` for `train::tests::...`), that
is each module's share of the wall time, which is what a slow CI run is made of. A test that runs
beside another is charged only its share, so a module's figure is a lower bound of its tests' own
time and the figures add up to the test run's wall time.
"""

import re
import sys
import time

RUNNING = re.compile(r"^\s*Running (?:unittests )?(\S+)")
DOCTESTS = re.compile(r"^\s*Doc-tests (\S+)")
STARTED = re.compile(r"^running \d+ tests?$")
ENDED = re.compile(r"^test (\S+) \.\.\. (ok|FAILED|ignored)")


def main() -> None:
    binary = "?"
    last = None
    seconds: dict[str, float] = {}
    for line in sys.stdin:
        sys.stdout.write(line)
        sys.stdout.flush()
        now = time.monotonic()
        text = line.rstrip("\n")
        if match := RUNNING.match(text):
            source = match.group(1)
            binary = {"src/lib.rs": "lib", "src/main.rs": "cli"}.get(source.split("crates/descent-cli/")[-1])
            binary = binary or source.removeprefix("tests/").removesuffix("/main.rs").removesuffix(".rs")
            last = None
        elif match := DOCTESTS.match(text):
            binary, last = f"doc-tests {match.group(1)}", None
        elif STARTED.match(text):
            last = now
        elif (match := ENDED.match(text)) and last is not None:
            module = match.group(1).split("::")[0].split(" ")[0]
            key = f"{binary} {module}"
            seconds[key] = seconds.get(key, 0.0) + (now - last)
            last = now
    if seconds:
        print("\n== time per test module (share of wall time, seconds), slowest first")
        for key, value in sorted(seconds.items(), key=lambda item: -item[1]):
            print(f"{value:8.1f}  {key}")
        print(f"{sum(seconds.values()):8.1f}  in all")


if __name__ == "__main__":
    main()
