#!/usr/bin/python3
"""Golden fixture of the sign of zero: PyTorch's eval outputs, as float32 bit patterns, for
networks whose weights, biases, BatchNorm statistics and inputs hold ±0.

Run from the repository root with the system Python that has torch installed:

    /usr/bin/python3 tools/make-signed-zero-fixtures.py

It writes test/fixtures/torch/signed-zeros.json, read by test/inference/signed-zeros.test.ts:
  {"torch_version", "cases": [{"name", "input_shape", "layers" (normserve's config entries),
   "state": {name: {"shape", "bits"}}, "rows", "input": bits, "output": bits}],
   "softmax": {"rows", "width", "input": bits, "output": bits}}
Every tensor is given by the uint32 patterns of its float32 values ("bits"), so −0 and +0 differ.

Each case runs with every row in one batch of at least 2 rows on one thread, the path PyTorch
takes for batches: F.linear is addmm (the BLAS sum starts at +0, the bias is added after it), a
3×3 Conv2d is oneDNN's (the same). PyTorch's results differ from these on its other paths: a
Linear(1, 1) on one row, and a Conv2d its native kernel runs (batch 1 with kernels up to 3×3,
or 1×1 kernels on one thread below 16 rows) start the sum at the bias (docs/signed-zeros.md).
"""

import importlib
import json
import math
import os
import struct
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "test", "fixtures", "torch", "signed-zeros.json")

torch.set_num_threads(1)


# tools/torch-eval-model.py, the reference loader (whose Residual block normserve's mirrors): a
# hyphenated file name imports through importlib with tools/ on the path.
sys.path.insert(0, os.path.join(ROOT, "tools"))
build_layers = importlib.import_module("torch-eval-model").build_layers

N = -0.0  # negative zero
TINY = -1e-44  # a negative float32 subnormal: LeakyReLU's product underflows to −0


def bits(x):
    return [struct.unpack("<I", struct.pack("<f", v))[0] for v in x.detach().to(torch.float32).flatten().tolist()]


def tensor(values, shape=None):
    t = torch.tensor(values, dtype=torch.float32)
    return t.reshape(shape) if shape is not None else t


def case(name, input_shape, layers, params, rows):
    """params: state_dict name → values (others keep PyTorch's initial values, seeded)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(*build_layers(layers))
    state = model.state_dict()
    for key, values in params.items():
        state[key].copy_(tensor(values, state[key].shape))
    model.load_state_dict(state)
    model.eval()
    x = tensor(rows, [len(rows)] + input_shape)
    with torch.no_grad():
        y = model(x)
    return {
        "name": name,
        "input_shape": input_shape,
        "layers": layers,
        "state": {
            k: {"shape": list(v.shape), "bits": bits(v)}
            for k, v in model.state_dict().items()
            if v.is_floating_point()
        },
        "rows": len(rows),
        "input": bits(x),
        "output": bits(y),
    }


def linear(i, o, bias=True):
    return {"type": "linear", "in_features": i, "out_features": o, "bias": bias}


def bn1d(c):
    return {"type": "batchnorm1d", "num_features": c}


def bn2d(c):
    return {"type": "batchnorm2d", "num_features": c}


def conv(i, o, k, padding, bias=True):
    return {"type": "conv2d", "in_channels": i, "out_channels": o, "kernel_size": [k, k], "padding": [padding, padding], "bias": bias}


# Rows of 4 features with ±0 entries, and values whose products with ±1 weights are exact.
ROWS4 = [[N, N, N, N], [0.0, 0.0, 0.0, 0.0], [N, 0.0, N, 0.0], [1.0, N, 2.0, -1.0], [N, N, 0.0, N], [-2.0, 0.0, N, 3.0]]
# Weights with ±0 entries: row 0 all −0 (every product ±0), row 1 ±1 (x = ±0 gives ±0 products).
W4 = [[N, N, N, N], [1.0, -1.0, 1.0, 1.0], [N, 0.0, N, 0.0], [-1.0, N, 1.0, N]]
# BatchNorm1d(4): channel 0 γ < 0, μ = −0, β = −0 (PyTorch's shift β − μ·α is −0 and the zero of
# a zero input becomes +0·α = −0: the output −0); channel 1 γ > 0, μ = +0, β = −0 (shift −0,
# +0·α = +0: +0); channel 2 γ < 0, μ = +0, β = −0 (shift +0); channel 3 γ = 2, μ = −0, β = +0.
BN4 = {"weight": [-1.0, 1.0, -1.0, 2.0], "bias": [N, N, N, 0.0], "running_mean": [N, 0.0, 0.0, N], "running_var": [1.0, 1.0, 0.25, 4.0]}


def prefixed(prefix, params):
    return {f"{prefix}.{k}": v for k, v in params.items()}


def cases():
    out = []
    # (a) Linear: bias −0 with products of −0 (and +0).
    out.append(case("linear, bias −0", [4], [linear(4, 4)], {"0.weight": W4, "0.bias": [N, N, 0.0, N]}, ROWS4))
    out.append(case("linear, no bias", [4], [linear(4, 4, bias=False)], {"0.weight": W4}, ROWS4))
    # (b) Linear → BatchNorm1d (folded into its rows), bare and inside a residual block.
    out.append(case("linear → batchnorm1d", [4], [linear(4, 4), bn1d(4)], {"0.weight": W4, "0.bias": [N, N, 0.0, N], **prefixed("1", BN4)}, ROWS4))
    out.append(case("linear (no bias) → batchnorm1d → relu", [4], [linear(4, 4, bias=False), bn1d(4), {"type": "relu"}], {"0.weight": W4, **prefixed("1", BN4)}, ROWS4))
    out.append(case("residual(linear → batchnorm1d)", [4], [{"type": "residual", "layers": [linear(4, 4), bn1d(4)]}], {"0.body.0.weight": W4, "0.body.0.bias": [N, N, 0.0, N], **prefixed("0.body.1", BN4)}, ROWS4))
    out.append(case("batchnorm1d → linear (folded into its columns)", [4], [bn1d(4), linear(4, 4)], {**prefixed("0", BN4), "1.weight": W4, "1.bias": [N, N, 0.0, N]}, ROWS4))
    out.append(case("batchnorm1d → relu (affine step)", [4], [bn1d(4), {"type": "relu"}], prefixed("0", BN4), ROWS4))
    # Conv2d (3×3, padding 1: the padding's +0 columns too), bias −0, then BatchNorm2d.
    planes = [[[N] * 4] * 4, [[0.0, N, 0.0, N]] * 4]
    mixed = [[[1.0, N, 0.0, -1.0], [N, N, N, N], [0.0, 0.0, 0.0, 0.0], [2.0, N, -2.0, N]], [[N] * 4] * 4]
    conv_rows = [planes, [[[N] * 4] * 4] * 2, mixed]
    cw = [[[[N] * 3] * 3, [[1.0, N, -1.0]] * 3], [[[1.0] * 3] * 3, [[N] * 3] * 3], [[[N, 0.0, N]] * 3, [[0.0, 1.0, N]] * 3]]
    out.append(case("conv2d, bias −0", [2, 4, 4], [conv(2, 3, 3, 1)], {"0.weight": cw, "0.bias": [N, N, 0.0]}, conv_rows))
    bn3 = {"weight": [-1.0, 1.0, -2.0], "bias": [N, N, N], "running_mean": [N, 0.0, N], "running_var": [1.0, 1.0, 1.0]}
    out.append(case("conv2d → batchnorm2d", [2, 4, 4], [conv(2, 3, 3, 1, bias=False), bn2d(3)], {"0.weight": cw, **prefixed("1", bn3)}, conv_rows))
    # The convolution's GEMM epilogue (bias per row): LeakyReLU(0) of its negative sums is −0.
    out.append(case("conv2d → leaky_relu(0)", [2, 4, 4], [conv(2, 3, 3, 1), {"type": "leaky_relu", "negative_slope": 0.0}], {"0.weight": cw, "0.bias": [N, N, 0.0]}, conv_rows))
    bn2 = {"weight": [-1.0, 2.0], "bias": [N, N], "running_mean": [N, 0.0], "running_var": [1.0, 1.0]}
    out.append(case("residual(conv2d → batchnorm2d)", [2, 4, 4], [{"type": "residual", "layers": [conv(2, 2, 3, 1), bn2d(2)]}], {"0.body.0.weight": cw[:2], "0.body.0.bias": [N, 0.0], **prefixed("0.body.1", bn2)}, conv_rows))
    # (c) Activations at ±0, after nothing (an activation step) and fused after a Linear (the
    # GEMM's epilogue): −2 and a subnormal give LeakyReLU(0)'s and an underflow's −0.
    act_rows = [[N, 0.0, -2.0, TINY, 2.0], [N, N, N, N, N], [0.0, 0.0, N, -1.0, TINY]]
    identity5 = [[1.0 if i == j else 0.0 for j in range(5)] for i in range(5)]
    activations = [
        ("relu", {"type": "relu"}),
        ("leaky_relu(0.01)", {"type": "leaky_relu", "negative_slope": 0.01}),
        ("leaky_relu(0)", {"type": "leaky_relu", "negative_slope": 0.0}),
        ("leaky_relu(−0)", {"type": "leaky_relu", "negative_slope": N}),
        ("gelu", {"type": "gelu"}),
        ("gelu(tanh)", {"type": "gelu", "approximate": "tanh"}),
        ("tanh", {"type": "tanh"}),
        ("sigmoid", {"type": "sigmoid"}),
        ("selu", {"type": "selu"}),
    ]
    # SELU leaves the subnormal out: PyTorch computes (eˣ − 1)·α·scale in float32, +0 for
    # x > −2⁻²⁵ where normserve keeps expm1's −1.76·|x| (docs/signed-zeros.md); −0 is in.
    selu_rows = [[-0.5 if v == TINY else v for v in row] for row in act_rows]
    for name, spec in activations:
        rows = selu_rows if name == "selu" else act_rows
        out.append(case(name, [5], [spec], {}, rows))
        out.append(case(f"linear → {name}", [5], [linear(5, 5), spec], {"0.weight": identity5, "0.bias": [N, N, N, 0.0, N]}, rows))
    # Pooling of −0 windows (and the first zero of a ±0 window: MaxPool keeps it).
    pool_rows = [[[[N] * 4] * 4, [[0.0, N, N, 0.0], [N, 0.0, 0.0, N], [N, N, 0.0, 0.0], [N, N, N, N]]], [[[N] * 4] * 4] * 2]
    pools = [
        ("maxpool2d 2", {"type": "maxpool2d", "kernel_size": [2, 2], "stride": [2, 2]}),
        ("maxpool2d 3/2/1", {"type": "maxpool2d", "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
        ("avgpool2d 2", {"type": "avgpool2d", "kernel_size": [2, 2], "stride": [2, 2]}),
        ("avgpool2d 3/2/1", {"type": "avgpool2d", "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
        ("avgpool2d 3/2/1 without padding", {"type": "avgpool2d", "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "count_include_pad": False}),
        ("adaptive_avgpool2d 1", {"type": "adaptive_avgpool2d", "output_size": [1, 1]}),
        ("adaptive_avgpool2d 3", {"type": "adaptive_avgpool2d", "output_size": [3, 3]}),
    ]
    for name, spec in pools:
        out.append(case(name, [2, 4, 4], [spec], {}, pool_rows))
    return out


def softmax():
    x = tensor([[N, 0.0, N], [-200.0, 0.0, N], [N, N, N]])
    return {"rows": 3, "width": 3, "input": bits(x), "output": bits(torch.softmax(x, dim=1))}


def main():
    doc = {"torch_version": torch.__version__, "cases": cases(), "softmax": softmax()}
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    signs = sum(1 for c in doc["cases"] for b in c["output"] if b == 0x80000000)
    print(f"wrote {OUT}: {len(doc['cases'])} cases, {signs} outputs −0")


if __name__ == "__main__":
    main()
