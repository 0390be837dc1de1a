"""PyTorch (CPU, one thread) as a peer of `npm run bench`.

Runs the same fused plan as the other engines: bench/peer-engines.ts writes the plan's tensors
as safetensors (`<step>.weight`, `<step>.bias`, `<step>.scale`, `<step>.shift`) and describes its
steps in JSON; this script builds them from PyTorch's own modules (nn.Linear, nn.LayerNorm, the
activations) and answers commands, one JSON object per line on stdin, one JSON line on stdout:

  {"op": "load", "weights": "<plan.safetensors>", "steps": [...]}  -> {"torch": "1.13.0", "threads": 1}
  {"op": "input", "path": "<x.f32>", "rows": R, "width": W}         -> {"rows": R}
  {"op": "run", "out": "<y.f32>"}                                  -> {"rows": R}   (outputs, float32 LE)
  {"op": "measure", "budget_ms": T}                                -> {"rows_per_second": ..., "calls": n}

A persistent process, so that the harness can interleave PyTorch's measurements with the other
engines' round by round. Errors answer {"error": "..."}. Run from the repository root.
"""

import importlib.util
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

# The safetensors reader of the reference loader (tools/torch-eval-model.py), not a second copy.
_spec = importlib.util.spec_from_file_location(
    "torch_eval_model", os.path.join(os.path.dirname(__file__), "..", "tools", "torch-eval-model.py")
)
_tem = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tem)


class Affine(nn.Module):
    """y = x·scale + shift per feature: a plan's stand-alone affine step."""

    def __init__(self, scale, shift):
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x):
        return torch.addcmul(self.shift, x, self.scale)


def activation(spec):
    kind = spec["kind"]
    if kind == "none":
        return None
    if kind == "relu":
        return nn.ReLU()
    if kind == "leaky_relu":
        return nn.LeakyReLU(spec["negativeSlope"])
    if kind == "gelu":
        return nn.GELU()
    if kind == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if kind == "tanh":
        return nn.Tanh()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "selu":
        return nn.SELU()
    raise ValueError(f"unknown activation {kind}")


def build(steps, tensors):
    layers = []
    for i, step in enumerate(steps):
        op = step["op"]
        if op == "dense":
            linear = nn.Linear(step["inFeatures"], step["outFeatures"])
            linear.weight.data.copy_(tensors[f"{i}.weight"])
            linear.bias.data.copy_(tensors[f"{i}.bias"])
            layers.append(linear)
        elif op == "affine":
            layers.append(Affine(tensors[f"{i}.scale"], tensors[f"{i}.shift"]))
        elif op == "layernorm":
            affine = f"{i}.weight" in tensors
            norm = nn.LayerNorm(step["features"], eps=step["eps"], elementwise_affine=affine)
            if affine:
                norm.weight.data.copy_(tensors[f"{i}.weight"])
                norm.bias.data.copy_(tensors.get(f"{i}.bias", torch.zeros(step["features"])))
            layers.append(norm)
        elif op != "activation":
            raise ValueError(f"unknown step {op}")
        act = activation(step["activation"])
        if act is not None:
            layers.append(act)
    return nn.Sequential(*layers).eval()


def main():
    model = None
    x = None
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        try:
            op = command["op"]
            if op == "load":
                model = build(command["steps"], _tem.read_safetensors(command["weights"]))
                reply = {"torch": torch.__version__, "threads": torch.get_num_threads()}
            elif op == "input":
                rows, width = command["rows"], command["width"]
                x = torch.from_numpy(np.fromfile(command["path"], dtype="<f4").reshape(rows, width).copy())
                reply = {"rows": rows}
            elif op == "run":
                with torch.inference_mode():
                    y = model(x)
                y.numpy().astype("<f4").tofile(command["out"])
                reply = {"rows": x.shape[0]}
            elif op == "measure":
                budget = command["budget_ms"] / 1000
                calls = 0
                with torch.inference_mode():
                    start = time.perf_counter()
                    elapsed = 0.0
                    while calls < 1 or elapsed < budget:
                        model(x)
                        calls += 1
                        elapsed = time.perf_counter() - start
                reply = {"rows_per_second": calls * x.shape[0] / elapsed, "calls": calls}
            elif op == "quit":
                return
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as e:  # reported to the harness, which skips this engine
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
