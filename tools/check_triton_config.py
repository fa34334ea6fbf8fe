#!/usr/bin/env python3
"""Validates a config.pbtxt written by `kensa export --format triton` against Triton Inference Server's own
ModelConfig protobuf schema (model_config_pb2, shipped by the tritonclient PyPI package): it must parse as
a ModelConfig, name the onnxruntime backend, and declare the inputs and outputs the ONNX graph has, with
their types. Prints the parsed config as JSON; exits 1 on any problem.

Developer tool (pip install 'tritonclient[grpc]' onnx-free); kensa never runs Python.

  python tools/check_triton_config.py REPOSITORY/NAME/config.pbtxt
"""
import json
import sys
from pathlib import Path

from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc


def main():
    path = Path(sys.argv[1])
    config = text_format.Parse(path.read_text(), mc.ModelConfig())
    problems = []
    if config.backend != "onnxruntime":
        problems.append(f"backend is {config.backend!r}, not 'onnxruntime'")
    if config.name != path.parent.name:
        problems.append(f"name {config.name!r} differs from the folder {path.parent.name!r}")
    if not (path.parent / "1" / "model.onnx").is_file():
        problems.append("1/model.onnx is missing")
    if config.max_batch_size < 1 or not config.HasField("dynamic_batching"):
        problems.append("dynamic batching needs max_batch_size >= 1 and a dynamic_batching block")
    inputs = {i.name: i for i in config.input}
    outputs = {o.name: o for o in config.output}
    if set(inputs) != {"image"} or inputs["image"].data_type != mc.TYPE_UINT8 or list(inputs["image"].dims)[-1] != 3:
        problems.append("the input must be image, TYPE_UINT8, [H, W, 3]")
    if set(outputs) != {"anomaly_map", "score"}:
        problems.append(f"the outputs must be anomaly_map and score, not {sorted(outputs)}")
    elif outputs["anomaly_map"].data_type != mc.TYPE_FP32 or outputs["score"].data_type != mc.TYPE_FP32:
        problems.append("the outputs must be TYPE_FP32")
    print(json.dumps({"config": json_format.MessageToDict(config), "problems": problems}, indent=1))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
