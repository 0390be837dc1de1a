"""PyTorch's own float32 exact recalibration of digits-torch on the 360 night rows, scored as
test/recalibration/torch-exact.test.ts scores normserve's (issue 16; the TypeScript side is
bench/recalibration-precision.ts): worst relative error of each running mean and variance against
the float64 golden (test/fixtures/torch-model/recalibration.json, STATS_RTOL 1e-4), and worst
|Δ| of the recalibrated model's logits, evaluated in float64, against reference-float64.json
(OUTPUT_ATOL 1e-5).

    /usr/bin/python3 bench/torch-recalibration-precision.py
"""

import csv
import json
import os
import struct

import torch

torch.set_num_threads(1)
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODEL = os.path.join(ROOT, "test", "fixtures", "torch-model")


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    out = {}
    for key, v in header.items():
        if key == "__metadata__":
            continue
        start, end = v["data_offsets"]
        dtype = {"F32": torch.float32, "I64": torch.int64}[v["dtype"]]
        out[key] = torch.frombuffer(bytearray(raw[8 + n + start : 8 + n + end]), dtype=dtype).reshape(v["shape"])
    return out


config = json.load(open(os.path.join(MODEL, "digits-torch", "1", "config.json")))
state = read_safetensors(os.path.join(MODEL, "digits-torch", "1", "model.safetensors"))
rows = list(csv.reader(open(os.path.join(ROOT, "data", "digits", "digits.csv"))))[1:][1437:1797]
x = torch.tensor([[float(c) for c in r[:64]] for r in rows], dtype=torch.float32)
night = (16.0 * (0.35 * (x.double() / 16.0) + 0.1)).float()
shift = torch.tensor(config["input_transform"]["shift"], dtype=torch.float32)
scale = torch.tensor(config["input_transform"]["scale"], dtype=torch.float32)
z = (night - shift) * scale
golden = json.load(open(os.path.join(MODEL, "recalibration.json")))["batchnorms"]
logits64 = torch.tensor(json.load(open(os.path.join(MODEL, "reference-float64.json")))["recalibrated"]["logits"]["data"], dtype=torch.float64).reshape(-1, 10)
p = {k: v.double() for k, v in state.items() if v.is_floating_point()}


def stats(h):
    mean = h.mean(0)
    return mean, ((h - mean) ** 2).sum(0) / (h.shape[0] - 1)


def bn(h, mean, var, i):
    return (h - mean) / torch.sqrt(var + 1e-5) * state[f"{i}.weight"].to(h.dtype) + state[f"{i}.bias"].to(h.dtype)


# The golden's procedure (recalibrate_bn in tools/make-golden-fixtures.py) in float32.
h = z @ state["0.weight"].T + state["0.bias"]
m1, v1 = stats(h)
h = torch.relu(bn(h, m1, v1, 1)) @ state["4.weight"].T + state["4.bias"]
m5, v5 = stats(h)
ours = {1: (m1, v1), 5: (m5, v5)}
parts = []
for g in golden:
    for name, value in zip(("mean", "var"), ours[g["index"]]):
        ref = torch.tensor(g[f"running_{name}"]["data"], dtype=torch.float64)
        rel = ((value.double() - ref).abs() / ref.abs().clamp(min=1e-6)).max().item()
        parts.append(f"BN {g['index']} {name} {rel:.1e}")
# The recalibrated float32 checkpoint evaluated in float64, as reference-float64.json was made.
s = {i: (m.float().double(), v.float().double()) for i, (m, v) in ours.items()}
h = z.double() @ p["0.weight"].T + p["0.bias"]
h = torch.relu(bn(h, *s[1], 1)) @ p["4.weight"].T + p["4.bias"]
h = torch.relu(bn(h, *s[5], 5)) @ p["7.weight"].T + p["7.bias"]
print(f"torch {torch.__version__} float32: {'; '.join(parts)}; logits {(h - logits64).abs().max().item():.2e}")
