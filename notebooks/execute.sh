#!/usr/bin/env bash
# Run the notebooks (lesson2.ipynb, then cnn.ipynb, or those named after the folder) on the evcxr
# Jupyter kernel, cell by cell, headless, and save them with their outputs: in place (what is
# committed), or as DIR/NAME.ipynb with a folder argument.
#
#     notebooks/execute.sh                     # regenerate the committed outputs
#     notebooks/execute.sh target/notebook     # CI: executed copies for the test to check
#     notebooks/execute.sh target/notebook cnn # one of them
#
# Needs the kernel (`cargo install evcxr_jupyter && evcxr_jupyter --install`) and Jupyter's
# nbconvert (`pip install jupyter`, in a virtual environment: put its bin/ on PATH or set
# JUPYTER to its `jupyter`). The first run compiles descent and Burn for the kernel (minutes).
set -euo pipefail
notebooks="$(cd "$(dirname "$0")" && pwd)"
jupyter="${JUPYTER:-jupyter}"

if ! command -v "$jupyter" >/dev/null; then
  echo "execute.sh: no jupyter ($jupyter): pip install jupyter into a virtual environment and set JUPYTER to its bin/jupyter" >&2
  exit 2
fi
if ! "$jupyter" kernelspec list 2>/dev/null | grep -qw rust; then
  echo "execute.sh: the evcxr kernel is not installed: cargo install evcxr_jupyter && evcxr_jupyter --install" >&2
  exit 2
fi

out_dir=""
if [ $# -ge 1 ]; then
  mkdir -p "$1"
  out_dir="$(cd "$1" && pwd)"
  shift
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(lesson2 cnn)
for name in "${names[@]}"; do
  if [ -n "$out_dir" ]; then
    where=(--output-dir "$out_dir" --output "$name.ipynb")
  else
    where=(--inplace)
  fi
  started=$(date +%s)
  # The kernel runs in the notebook's folder, so `:dep descent = { path = "../crates/descent" }`
  # finds the library. A cell that fails stops the run (and this script) with its error.
  "$jupyter" nbconvert --to notebook --execute \
    --ExecutePreprocessor.kernel_name=rust --ExecutePreprocessor.timeout=3600 \
    "${where[@]}" "$notebooks/$name.ipynb"
  echo "executed notebooks/$name.ipynb in $(( $(date +%s) - started )) s"
done
