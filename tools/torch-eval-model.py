#!/usr/bin/python3
"""Evaluate a normserve model directory in PyTorch (proof that checkpoints are PyTorch-exact).

Builds an nn.Sequential from config.json, loads model.safetensors (read by hand: the format is
an 8-byte little-endian header length, a JSON header, then little-endian tensor bytes), applies
the config's input_transform and prints or writes the eval-mode logits for rows of a CSV file.

Usage (Debian's python3-torch; run from the repository root):
  /usr/bin/python3 tools/torch-eval-model.py models/digits/1 data/digits/digits.csv \
      --rows 1437:1797 --out test/fixtures/torch-model/bundled-digits-eval.json
  npm run -s predict -- --model models/digits/1 --input data/digits/digits.csv --logits > ours.json
  /usr/bin/python3 tools/torch-eval-model.py models/digits/1 data/digits/digits.csv --compare ours.json

--compare takes the predict CLI's output: its logits when it has them (--logits), else its
predictions (a classifier's probabilities, a regression model's outputs). Columns are taken by
the model's recorded feature names when the CSV has them all, as predict takes them.
"""
import argparse
import csv
import json
import struct

import numpy as np
import torch
from torch import nn

DTYPES = {"F32": (np.float32, 4), "F64": (np.float64, 8), "I64": (np.int64, 8), "I32": (np.int32, 4)}


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    tensors = {}
    for name, entry in header.items():
        dtype, size = DTYPES[entry["dtype"]]
        begin, end = entry["data_offsets"]
        array = np.frombuffer(data[base + begin : base + end], dtype=dtype).reshape(entry["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


class Residual(nn.Module):
    """normserve's residual block: out = relu(body(x) + x); tensors body.<j>.<name>."""

    def __init__(self, *layers):
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x):
        return torch.relu(self.body(x) + x)


def build(config):
    return nn.Sequential(*build_layers(config["layers"]))


def build_layers(specs):
    layers = []
    for spec in specs:
        t = spec["type"]
        if t == "linear":
            layers.append(nn.Linear(spec["in_features"], spec["out_features"], bias=spec.get("bias", True)))
        elif t == "batchnorm1d":
            layers.append(nn.BatchNorm1d(spec["num_features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1), affine=spec.get("affine", True)))
        elif t == "batchnorm2d":
            layers.append(nn.BatchNorm2d(spec["num_features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1), affine=spec.get("affine", True)))
        elif t == "conv2d":
            layers.append(nn.Conv2d(spec["in_channels"], spec["out_channels"], spec["kernel_size"], stride=spec.get("stride", 1), padding=spec.get("padding", 0), dilation=spec.get("dilation", 1), bias=spec.get("bias", True)))
        elif t == "maxpool2d":
            layers.append(nn.MaxPool2d(spec["kernel_size"], stride=spec.get("stride"), padding=spec.get("padding", 0)))
        elif t == "avgpool2d":
            layers.append(nn.AvgPool2d(spec["kernel_size"], stride=spec.get("stride"), padding=spec.get("padding", 0), count_include_pad=spec.get("count_include_pad", True)))
        elif t == "adaptive_avgpool2d":
            layers.append(nn.AdaptiveAvgPool2d(spec["output_size"]))
        elif t == "flatten":
            layers.append(nn.Flatten(spec.get("start_dim", 1), spec.get("end_dim", -1)))
        elif t == "residual":
            layers.append(Residual(*build_layers(spec["layers"])))
        elif t == "layernorm":
            layers.append(nn.LayerNorm(spec["normalized_shape"], eps=spec.get("eps", 1e-5), elementwise_affine=spec.get("elementwise_affine", True)))
        elif t == "relu":
            layers.append(nn.ReLU())
        elif t == "leaky_relu":
            layers.append(nn.LeakyReLU(spec.get("negative_slope", 0.01)))
        elif t == "gelu":
            layers.append(nn.GELU(approximate=spec.get("approximate", "none")))
        elif t == "tanh":
            layers.append(nn.Tanh())
        elif t == "sigmoid":
            layers.append(nn.Sigmoid())
        elif t == "selu":
            layers.append(nn.SELU())
        elif t == "dropout":
            layers.append(nn.Dropout(spec.get("p", 0.5)))
        elif t == "alpha_dropout":
            layers.append(nn.AlphaDropout(spec.get("p", 0.5)))
        elif t == "identity":
            layers.append(nn.Identity())
        else:
            raise SystemExit(f"unknown layer type {t}")
    return layers


def compare(path, task, outputs):
    """Max |ours - torch| against a predict CLI output file (or one of this tool's).

    predict writes `predictions`: a classifier's softmax probabilities (its logits only with
    --logits), a regression model's outputs; so the logits are compared when the file has them,
    else the predictions with torch's probabilities or outputs.
    """
    ours_json = json.load(open(path))
    if "logits" in ours_json:
        what, theirs = "logits", outputs
    elif task == "regression":
        what, theirs = "outputs", outputs
    else:
        what, theirs = "probabilities", torch.softmax(outputs.double(), dim=1)
    ours = torch.tensor(ours_json["predictions" if what != "logits" else "logits"], dtype=torch.float64)
    if ours.shape != theirs.shape:
        raise SystemExit(f"{path}: {what} of shape {list(ours.shape)}, torch gives {list(theirs.shape)}")
    diff = (ours - theirs.double()).abs().max().item()
    line = f"max |ours - torch| = {diff:.3g} over {ours.numel()} {what}"
    if task != "regression":
        line += f"; argmax equal: {bool((ours.argmax(1) == theirs.argmax(1)).all())}"
    print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir")
    parser.add_argument("csv")
    parser.add_argument("--rows", default=None, help="start:end data rows (header excluded)")
    parser.add_argument("--label-column", default=None, help="default: the model's training.label_column, else label")
    parser.add_argument("--out", help="write {logits, predictions} JSON here")
    parser.add_argument("--compare", help="npm run predict's JSON output (predictions, or --logits): print max |difference|")
    args = parser.parse_args()

    config = json.load(open(f"{args.model_dir}/config.json"))
    task = config.get("task", "classification")
    training = config.get("training") or {}
    model = build(config)
    model.load_state_dict(read_safetensors(f"{args.model_dir}/model.safetensors"), strict=True)
    model.eval()

    with open(args.csv) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    if args.rows:
        start, end = (int(v) for v in args.rows.split(":"))
        rows = rows[start:end]
    label_column = args.label_column or training.get("label_column") or "label"
    label = header.index(label_column) if label_column in header else None
    # The model's recorded feature columns by name, as the predict CLI takes them; else every
    # column but the label's, in file order.
    names = training.get("feature_names")
    if isinstance(names, list) and all(n in header for n in names):
        columns = [header.index(n) for n in names]
    else:
        columns = [i for i in range(len(header)) if i != label]
    features = [[float(r[i]) for i in columns] for r in rows]
    x = torch.tensor(features, dtype=torch.float32)
    t = config.get("input_transform")
    if t:
        x = (x - torch.tensor(t["shift"], dtype=torch.float32)) * torch.tensor(t["scale"], dtype=torch.float32)
    x = x.view(-1, *config["input_shape"])  # rows are row-major samples, e.g. [1, 8, 8]
    with torch.no_grad():
        logits = model(x)
    result = {"torch_version": torch.__version__, "model_dir": args.model_dir, "rows": args.rows, "logits": logits.tolist()}
    if task == "regression":
        # The outputs themselves, as predict writes them ([[y], ...]); RMSE and R² against the label.
        result["predictions"] = logits.tolist()
        summary = ""
        if label is not None:
            y = torch.tensor([float(r[label]) for r in rows], dtype=torch.float64)
            residual = ((y - logits.double()[:, 0]) ** 2).sum().item()
            total = ((y - y.mean()) ** 2).sum().item()
            result["rmse"] = (residual / len(rows)) ** 0.5
            summary = f", RMSE {result['rmse']:.4g}"
            if total > 0:
                result["r2"] = 1 - residual / total
                summary += f", R² {result['r2']:.4f}"
    else:
        predictions = logits.argmax(dim=1).tolist()
        result["predictions"] = predictions
        summary = ""
        if label is not None and config.get("labels"):
            truth = [r[label].strip() for r in rows]
            result["accuracy"] = sum(config["labels"][p] == y for p, y in zip(predictions, truth)) / len(rows)
            summary = f", accuracy {result['accuracy']}"
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f)
            f.write("\n")
    if args.compare:
        compare(args.compare, task, logits)
    print(f"torch {torch.__version__}: {len(rows)} rows{summary}")


if __name__ == "__main__":
    main()
