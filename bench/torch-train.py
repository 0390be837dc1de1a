"""PyTorch (CPU, eager, one thread) training throughput for `npm run bench` (bench/training.ts).

Trains the network a normserve training config describes, the way normserve's trainer does, and
prints samples/s: per epoch a shuffle, batches of `batch_size` (the last one short), zero_grad,
forward in train mode, cross-entropy with label smoothing, backward, AdamW (decoupled weight
decay) or Adam or SGD, the cosine or constant learning-rate schedule stepped per batch, then a
forward pass over the validation rows in eval mode. Time counts from the first batch to the end of
the last epoch, as normserve's samples_per_second does.

  python3 bench/torch-train.py '<json>'   ->  {"samples_per_second": ..., "seconds": ..., "torch": "1.13.0"}

json: {"layers": [...], "training": {...}, "seed": n, "train_rows": R, "val_rows": V,
       "data": {"csv": path, "label_column": name} | {"random": {"width": W, "classes": C}}}
The CSV's features are standardized; random data is normal(0, 1) with uniform labels. Which rows
are which does not change the time: nothing here depends on the values.
"""

import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


def build(layers):
    modules = []
    for spec in layers:
        kind = spec["type"]
        if kind == "linear":
            modules.append(nn.Linear(spec["in_features"], spec["out_features"], bias=spec.get("bias", True)))
        elif kind == "batchnorm1d":
            modules.append(nn.BatchNorm1d(spec["num_features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1)))
        elif kind == "relu":
            modules.append(nn.ReLU())
        elif kind == "dropout":
            modules.append(nn.Dropout(spec.get("p", 0.5)))
        else:
            raise ValueError(f"torch-train.py: layer type {kind} is not supported here")
    return nn.Sequential(*modules)


def optimizer_for(params, cfg):
    kind = cfg["type"]
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    if kind == "adam":
        return torch.optim.Adam(params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"], weight_decay=cfg["weight_decay"])
    if kind == "sgd":
        return torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0), weight_decay=cfg.get("weight_decay", 0))
    raise ValueError(f"torch-train.py: optimizer {kind} is not supported here")


def data_for(spec, rows):
    data = spec["data"]
    if "csv" in data:
        raw = np.genfromtxt(data["csv"], delimiter=",", names=True)
        names = [n for n in raw.dtype.names if n != data["label_column"]]
        x = np.stack([raw[n] for n in names], axis=1).astype(np.float32)
        y = raw[data["label_column"]].astype(np.int64)
        x = (x - x.mean(axis=0)) / np.where(x.std(axis=0) > 0, x.std(axis=0), 1)
        reps = math.ceil(rows / len(x))
        x = np.tile(x, (reps, 1))[:rows]
        y = np.tile(y, reps)[:rows]
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    rnd = data["random"]
    g = torch.Generator().manual_seed(spec.get("seed", 0))
    x = torch.randn(rows, rnd["width"], generator=g)
    y = torch.randint(0, rnd["classes"], (rows,), generator=g)
    return x, y


def main():
    spec = json.loads(sys.argv[1])
    torch.manual_seed(spec.get("seed", 0))
    t = spec["training"]
    train_rows, val_rows = spec["train_rows"], spec["val_rows"]
    x, y = data_for(spec, train_rows + val_rows)
    xt, yt, xv = x[:train_rows], y[:train_rows], x[train_rows:]
    model = build(spec["layers"])
    opt = optimizer_for(model.parameters(), t["optimizer"])
    loss_fn = nn.CrossEntropyLoss(label_smoothing=t.get("label_smoothing", 0.0))
    batch = t["batch_size"]
    epochs = t["epochs"]
    steps = epochs * math.ceil(train_rows / batch)
    schedule = t.get("lr_schedule", {"type": "constant"})
    base_lr = t["optimizer"]["lr"]
    step = 0
    seen = 0
    started = time.perf_counter()
    for _ in range(epochs):
        model.train()
        order = torch.randperm(train_rows) if t.get("shuffle", True) else torch.arange(train_rows)
        for start in range(0, train_rows, batch):
            idx = order[start : start + batch]
            if schedule["type"] == "cosine":
                eta_min = schedule.get("eta_min", 0)
                lr = eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * step / steps)) / 2
                for group in opt.param_groups:
                    group["lr"] = lr
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            step += 1
            seen += len(idx)
        if val_rows > 0:
            model.eval()
            with torch.no_grad():
                model(xv)
    seconds = time.perf_counter() - started
    print(json.dumps({"samples_per_second": seen / seconds, "seconds": seconds, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
