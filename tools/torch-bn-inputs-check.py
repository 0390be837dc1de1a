#!/usr/bin/python3
"""Compare a recalibrated version's BatchNorm statistics with PyTorch's own view of its inputs.

For each BatchNorm1d of a normserve model directory (a version recalibrated in `exact` mode), a
forward pre-hook (`register_forward_pre_hook`) takes the layer's input on the CSV's rows in eval
mode, in float32 as PyTorch runs it (or float64 with --float64), and compares h.mean(0) and
h.var(0, unbiased=True) with the layer's running_mean and running_var: the "PyTorch check" row of
docs/recalibration.md.

Usage (Debian's python3-torch; run from the repository root):
  npm run -s night-shift -- --out /tmp/night.csv
  npm run -s recalibrate -- --model /tmp/repo/digits --data /tmp/night.csv
  /usr/bin/python3 tools/torch-bn-inputs-check.py /tmp/repo/digits/2 /tmp/night.csv
"""
import argparse
import csv
import importlib.util
import json
from pathlib import Path

import torch

spec = importlib.util.spec_from_file_location("torch_eval_model", Path(__file__).with_name("torch-eval-model.py"))
torch_eval_model = importlib.util.module_from_spec(spec)
spec.loader.exec_module(torch_eval_model)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir")
    parser.add_argument("csv")
    parser.add_argument("--float64", action="store_true", help="run the network in float64")
    args = parser.parse_args()
    config = json.load(open(f"{args.version_dir}/config.json"))
    model = torch_eval_model.build(config)
    model.load_state_dict(torch_eval_model.read_safetensors(f"{args.version_dir}/model.safetensors"), strict=True)
    model.eval()
    dtype = torch.float64 if args.float64 else torch.float32
    model.to(dtype)
    with open(args.csv) as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r]
    names = (config.get("training") or {}).get("feature_names") or header[:-1]
    columns = [header.index(n) for n in names]
    x = torch.tensor([[float(r[i]) for i in columns] for r in rows], dtype=torch.float32)
    t = config.get("input_transform")
    if t:
        x = (x - torch.tensor(t["shift"], dtype=torch.float32)) * torch.tensor(t["scale"], dtype=torch.float32)
    x = x.to(dtype).view(-1, *config["input_shape"])
    inputs = {}
    layers = dict(model.named_modules())
    for name, module in layers.items():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.register_forward_pre_hook(lambda m, inp, name=name: inputs.__setitem__(name, inp[0].detach().clone()))
    with torch.no_grad():
        model(x)
    mean_diff = max((h.mean(0) - layers[n].running_mean).abs().max().item() for n, h in inputs.items())
    var_diff = max((h.var(0, unbiased=True) - layers[n].running_var).abs().max().item() for n, h in inputs.items())
    print(f"{'float64' if args.float64 else 'float32'}: max |Δμ| {mean_diff:.3g}, max |Δσ²| {var_diff:.3g} over {len(inputs)} BatchNorms, {len(rows)} rows")


if __name__ == "__main__":
    main()
