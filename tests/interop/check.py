"""What the real tools make of descent's files, for the integration tests (tests/integration/interop.rs).

    python check.py probe
        exit 0 when tensorboard, onnx, onnxruntime, numpy and Pillow import; else print what is
        missing.
    python check.py events RUN_DIR
        TensorBoard's own reader (its EventAccumulator, keeping every value) on a run folder:
        prints {"scalars": {tag: [[step, value], ...]}, "texts": {tag: [[step, text], ...]}}.
    python check.py onnx MODEL INPUT DIMS
        onnx.checker.check_model(full_check=True) on MODEL, then onnxruntime on the float32
        little-endian values of INPUT shaped DIMS (comma-separated): prints
        {"input": name, "output": name, "shape": [...], "values": [...]}.
"""

import json
import sys


def probe():
    missing = []
    for name in ("numpy", "tensorboard", "onnx", "onnxruntime", "PIL"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        print(" ".join(missing))
        sys.exit(1)


def events(run_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    scalars = {
        tag: [[event.step, event.value] for event in accumulator.Scalars(tag)] for tag in tags["scalars"]
    }
    texts = {
        tag: [[event.step, event.tensor_proto.string_val[0].decode("utf-8")] for event in accumulator.Tensors(tag)]
        for tag in tags["tensors"]
    }
    print(json.dumps({"scalars": scalars, "texts": texts}))


def run_onnx(model_path, input_path, dims):
    import numpy as np
    import onnx
    import onnxruntime

    onnx.checker.check_model(onnx.load(model_path), full_check=True)
    session = onnxruntime.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    shape = [int(d) for d in dims.split(",")]
    x = np.fromfile(input_path, dtype="<f4").reshape(shape)
    (input_info,), (output_info,) = session.get_inputs(), session.get_outputs()
    (y,) = session.run(None, {input_info.name: x})
    print(json.dumps({
        "input": input_info.name,
        "output": output_info.name,
        "shape": list(y.shape),
        "values": [float(v) for v in y.reshape(-1)],
    }))


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"probe": probe, "events": events, "onnx": run_onnx}[command](*arguments)
