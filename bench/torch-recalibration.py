"""PyTorch (CPU, one thread) doing exact recalibration, as the peer of `npm run bench`'s
recalibration section.

The computation issue 16 compares against: the model in eval mode, for each BatchNorm in turn a
forward pre-hook that adds the per-channel Σx and Σx² of its input in float64 (BatchNorm2d: over
N·H·W) and stops the forward pass there, over all rows in batches of 4096; the mean and the
unbiased variance are stored into that BatchNorm before the next one is measured (so later layers
see the earlier ones recalibrated). The input transform is applied per batch in float32.

Usage (from the repository root; Debian's python3-torch):
  /usr/bin/python3 bench/torch-recalibration.py MODEL_DIR ROWS.f32 ROWS [--repeats N] [--out S.json]
      [--dtype float32|float64]
ROWS.f32 holds ROWS little-endian float32 rows of raw features. Prints one JSON line:
{"torch": version, "threads": 1, "rows": R, "seconds": [...], "rows_per_second": best, ...}
and writes the recalibrated statistics to --out (for the bench's agreement check).

`--dtype float64` runs the same procedure with the model, the rows and the input transform in
float64 and writes the statistics unrounded: the exact reference both normserve's and PyTorch's
float32 statistics are measured against (a float32 pipeline on either side differs from it by
its own rounding; comparing the two float32 pipelines with each other says nothing about which
one is off).
"""

import argparse
import importlib.util
import json
import os
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

_spec = importlib.util.spec_from_file_location(
    "torch_eval_model", os.path.join(os.path.dirname(__file__), "..", "tools", "torch-eval-model.py")
)
_tem = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tem)

BATCH = 4096


class Stop(Exception):
    pass


def batch_norms(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate(model, x, transform, shape, dtype=torch.float32):
    """Exact layer-by-layer recalibration of every BatchNorm of `model` on the rows x (raw)."""
    for _name, bn in batch_norms(model):
        channels = bn.num_features
        total = torch.zeros(channels, dtype=torch.float64)
        squares = torch.zeros(channels, dtype=torch.float64)
        count = 0

        def hook(_module, inputs):
            nonlocal total, squares, count
            (h,) = inputs
            # [N, C] or [N, C, H, W] → per channel over everything else, in float64.
            v = h.transpose(0, 1).reshape(channels, -1).double()
            total += v.sum(dim=1)
            squares += (v * v).sum(dim=1)
            count += v.shape[1]
            raise Stop()

        handle = bn.register_forward_pre_hook(hook)
        try:
            with torch.no_grad():
                for start in range(0, x.shape[0], BATCH):
                    batch = x[start : start + BATCH]
                    if transform is not None:
                        batch = (batch - transform[0]) * transform[1]
                    try:
                        model(batch.view(-1, *shape))
                    except Stop:
                        pass
        finally:
            handle.remove()
        mean = total / count
        var = (squares - mean * total) / (count - 1)
        bn.running_mean.copy_(mean.to(dtype))
        bn.running_var.copy_(var.to(dtype))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("rows_file")
    parser.add_argument("rows", type=int)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args()

    config = json.load(open(os.path.join(args.model_dir, "config.json")))
    state = _tem.read_safetensors(os.path.join(args.model_dir, "model.safetensors"))
    shape = config["input_shape"]
    width = int(np.prod(shape))
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    x = torch.from_numpy(np.fromfile(args.rows_file, dtype="<f4", count=args.rows * width).reshape(args.rows, width))
    x = x.to(dtype)
    t = config.get("input_transform")
    # The transform's shift and scale as the checkpoint's float32 values, widened exactly.
    transform = (
        (
            torch.tensor(t["shift"], dtype=torch.float32).to(dtype),
            torch.tensor(t["scale"], dtype=torch.float32).to(dtype),
        )
        if t
        else None
    )
    seconds = []
    model = None
    for _ in range(args.repeats):
        model = _tem.build(config)
        model.load_state_dict(state, strict=True)
        model.to(dtype)
        model.eval()
        started = time.perf_counter()
        recalibrate(model, x, transform, shape, dtype)
        seconds.append(time.perf_counter() - started)
    best = min(seconds)
    if args.out:
        stats = {name: {"mean": bn.running_mean.tolist(), "var": bn.running_var.tolist()} for name, bn in batch_norms(model)}
        with open(args.out, "w") as f:
            json.dump(stats, f)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "dtype": args.dtype,
                "rows": args.rows,
                "seconds": seconds,
                "rows_per_second": args.rows / best,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
