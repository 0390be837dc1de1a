#!/usr/bin/python3
"""Golden fixtures from PyTorch for normserve's engine tests.

Run from the repository root with the system Python that has torch installed:

    /usr/bin/python3 tools/make-golden-fixtures.py

It writes
  test/fixtures/torch/*.json                       layer, loss, optimizer and schedule traces (a-k)
  test/fixtures/torch-model/digits-torch/1/        a small trained digits model in normserve's
                                                   checkpoint format (config.json + model.safetensors)
  test/fixtures/torch-model/expected.json          its eval logits/probabilities on the test rows
  test/fixtures/torch-model/recalibration.json     the "night" shift and exact BN recalibration
  test/fixtures/torch-model/reference-float64.json the same logits evaluated in float64
  test/fixtures/torch-model/recalibration-running.json
                                                   `running` BN recalibration (update_bn-style)
                                                   of that model on the night-shifted rows
  test/fixtures/torch/conv-layers.json             Conv2d, pooling, Flatten, LayerNorm over
                                                   [C, H, W], the residual block (section k2)
  test/fixtures/torch-model/digits-cnn-torch/1/    the convolutional networks issue's CNN trained
                                                   by PyTorch, in normserve's format (section n)
  test/fixtures/torch-model/cnn-expected.json      its eval outputs on the test rows
  test/fixtures/torch-model/cnn-recalibration.json exact (forward pre-hooks, float64) and running
                                                   BatchNorm2d recalibration on the night rows
  test/fixtures/torch/layer-options.json           every layer option config.json accepts, built
                                                   from its config entry (PyTorch's defaults for
                                                   the rest), train steps and eval; dropouts in
                                                   train mode; default initialisation bounds (o)
  test/fixtures/torch-model/every-layer-torch/1/   a PyTorch network holding every layer type, in
  test/fixtures/torch-model/every-layer-expected.json
                                                   normserve's format, with its eval outputs,
                                                   state_dict names and recalibration (p)
  test/fixtures/torch/training-loop.json           normserve's training loop run by PyTorch (q)

`/usr/bin/python3 tools/make-golden-fixtures.py conv cnn` writes only the named sections (conv:
k2, cnn: n, optimizers: h, schedules: j, clip: k, options: o, roundtrip: p, training: q).
Deterministic on one machine; PyTorch's float32 matrix products depend on the CPU's kernels, so
another machine may change the Linear-based fixtures by float32 ulps. The outputs are committed, so CI and the TypeScript tests never need torch. Re-run this only to
regenerate them (e.g. after changing what is recorded), and commit the result.

Conventions of the JSON files:
  * every file records `torch_version`;
  * a tensor is {"shape": [...], "data": [flat row-major list]};
  * all tensors are float32; each value is the float32 value converted to a Python float, whose
    repr round-trips exactly (JSON.parse gives the same double, Math.fround(x) === x);
  * every section seeds torch.manual_seed itself, so sections are independent of each other.
"""

import copy
import csv
import json
import math
import os
import struct

import torch
import torch.nn.functional as F
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_DIR = os.path.join(ROOT, "test", "fixtures", "torch")
MODEL_DIR = os.path.join(ROOT, "test", "fixtures", "torch-model")
DIGITS_CSV = os.path.join(ROOT, "data", "digits", "digits.csv")
TORCH_VERSION = torch.__version__

torch.set_num_threads(1)  # deterministic float32 reductions
torch.set_default_dtype(torch.float32)


# ---------------------------------------------------------------------------------------------
# helpers


def t(x):
    """A tensor as {"shape", "data"}; float32 values become exactly-equal Python floats."""
    x = x.detach()
    if x.is_floating_point():
        x = x.to(torch.float32)
    return {"shape": list(x.shape), "data": x.flatten().tolist()}


def t64(x):
    """A float64 tensor as {"shape", "data"} (reference values computed in double precision)."""
    x = x.detach().to(torch.float64)
    return {"shape": list(x.shape), "data": x.flatten().tolist()}


def write_json(path, obj):
    obj = {"torch_version": TORCH_VERSION, **obj}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    size = len(text) + 1
    assert size < 300_000, f"{path} is {size} bytes"
    print(f"wrote {os.path.relpath(path, ROOT)} ({size} bytes)")


def shifted(shape, channel_means, channel_scales):
    """randn with a different mean and scale per channel (dimension 1)."""
    view = [1] * len(shape)
    view[1] = shape[1]
    return torch.randn(*shape) * torch.tensor(channel_scales).view(view) + torch.tensor(
        channel_means
    ).view(view)


# ---------------------------------------------------------------------------------------------
# a, b. BatchNorm traces


def batchnorm_case(name, cls, num_features, momentum, batch_shape, steps, seed, eval_rows=6):
    """Train-mode steps (forward + running stats), one backward at step 1, then eval forwards."""
    torch.manual_seed(seed)
    bn = cls(num_features, eps=1e-5, momentum=momentum)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(num_features) * 1.5 + 0.5)
        bn.bias.copy_(torch.randn(num_features) * 0.5)
    case = {
        "name": name,
        "num_features": num_features,
        "eps": bn.eps,
        "momentum": momentum,
        "weight": t(bn.weight),
        "bias": t(bn.bias),
        "steps": [],
    }
    means = [float(v) for v in torch.linspace(-2.0, 3.0, num_features)]
    scales = [float(v) for v in torch.linspace(0.5, 4.0, num_features)]
    bn.train()
    for step in range(steps):
        x = shifted(batch_shape, means, scales).requires_grad_(True)
        y = bn(x)
        record = {
            "input": t(x),
            "output": t(y),
            "running_mean": t(bn.running_mean),
            "running_var": t(bn.running_var),
            "num_batches_tracked": int(bn.num_batches_tracked.item()),
        }
        case["steps"].append(record)
        if step == 0:
            grad_output = torch.randn(*batch_shape)
            y.backward(grad_output)
            case["backward"] = {
                "step": 0,
                "grad_output": t(grad_output),
                "grad_input": t(x.grad),
                "weight_grad": t(bn.weight.grad),
                "bias_grad": t(bn.bias.grad),
            }
            bn.weight.grad = None
            bn.bias.grad = None
    bn.eval()
    eval_shape = [eval_rows, *batch_shape[1:]]
    x = shifted(eval_shape, means, scales).requires_grad_(True)
    y = bn(x)
    grad_output = torch.randn(*eval_shape)
    y.backward(grad_output)
    case["eval"] = {
        "input": t(x),
        "output": t(y),
        "grad_output": t(grad_output),
        "grad_input": t(x.grad),
        "weight_grad": t(bn.weight.grad),
        "bias_grad": t(bn.bias.grad),
    }
    x1 = shifted([1, *batch_shape[1:]], means, scales)
    case["eval_single"] = {"input": t(x1), "output": t(bn(x1))}
    # Eval must not have touched the running statistics.
    assert int(bn.num_batches_tracked.item()) == steps
    return case


def make_batchnorm():
    cases = [
        batchnorm_case("momentum_0.1", nn.BatchNorm1d, 5, 0.1, [8, 5], 4, seed=1),
        batchnorm_case("momentum_none", nn.BatchNorm1d, 5, None, [8, 5], 4, seed=2),
        batchnorm_case("3d_momentum_0.1", nn.BatchNorm1d, 4, 0.1, [6, 4, 3], 3, seed=3),
    ]
    write_json(
        os.path.join(TORCH_DIR, "batchnorm1d.json"),
        {
            "description": "BatchNorm1d train traces (forward, running stats, backward at step 0) "
            "and eval forwards/backward; weight/bias are set before training",
            "cases": cases,
        },
    )
    case2d = batchnorm_case("bn2d_momentum_0.1", nn.BatchNorm2d, 3, 0.1, [4, 3, 5, 6], 2, seed=4,
                            eval_rows=2)
    write_json(
        os.path.join(TORCH_DIR, "batchnorm2d.json"),
        {"description": "BatchNorm2d(3) on [4,3,5,6]: 2 train steps, eval, grads", "cases": [case2d]},
    )


# ---------------------------------------------------------------------------------------------
# c. BatchNorm error text


def make_batchnorm_errors():
    cases = []
    for cls, shape in [
        (nn.BatchNorm1d, [1, 4]),
        (nn.BatchNorm1d, [1, 4, 1]),
        (nn.BatchNorm2d, [1, 4, 1, 1]),
        (nn.BatchNorm1d, [2, 4]),
        (nn.BatchNorm1d, [1, 4, 3]),
    ]:
        bn = cls(4).train()
        try:
            bn(torch.zeros(*shape))
            error = None
        except ValueError as e:
            error = str(e)
        cases.append({"module": cls.__name__, "num_features": 4, "input_shape": shape, "error": error})
    write_json(
        os.path.join(TORCH_DIR, "batchnorm-errors.json"),
        {
            "description": "Training-mode BatchNorm on inputs with one value per channel raises "
            "ValueError; error is null when PyTorch accepts the input",
            "cases": cases,
        },
    )


# ---------------------------------------------------------------------------------------------
# d. LayerNorm


def make_layernorm():
    torch.manual_seed(5)
    cases = []
    for affine in (True, False):
        ln = nn.LayerNorm([6], eps=1e-5, elementwise_affine=affine)
        if affine:
            with torch.no_grad():
                ln.weight.copy_(torch.rand(6) * 1.5 + 0.5)
                ln.bias.copy_(torch.randn(6) * 0.5)
        x = (torch.randn(4, 6) * 2.0 + 1.0).requires_grad_(True)
        y = ln(x)
        grad_output = torch.randn(4, 6)
        y.backward(grad_output)
        case = {
            "name": "affine" if affine else "no_affine",
            "normalized_shape": [6],
            "eps": ln.eps,
            "elementwise_affine": affine,
            "input": t(x),
            "output": t(y),
            "grad_output": t(grad_output),
            "grad_input": t(x.grad),
        }
        if affine:
            case.update(
                weight=t(ln.weight),
                bias=t(ln.bias),
                weight_grad=t(ln.weight.grad),
                bias_grad=t(ln.bias.grad),
            )
        cases.append(case)
    write_json(os.path.join(TORCH_DIR, "layernorm.json"), {"cases": cases})


# ---------------------------------------------------------------------------------------------
# e. Activations


def make_activations():
    torch.manual_seed(6)
    special = torch.tensor([-10.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 10.0])
    x = torch.cat([special, torch.randn(13) * 3.0]).view(4, 5)
    grad_output = torch.randn(4, 5)
    modules = [
        ("relu", {}, nn.ReLU()),
        ("leaky_relu", {"negative_slope": 0.2}, nn.LeakyReLU(0.2)),
        ("gelu", {"approximate": "none"}, nn.GELU(approximate="none")),
        ("gelu_tanh", {"approximate": "tanh"}, nn.GELU(approximate="tanh")),
        ("tanh", {}, nn.Tanh()),
        ("sigmoid", {}, nn.Sigmoid()),
        ("selu", {}, nn.SELU()),
    ]
    cases = []
    for name, options, module in modules:
        xi = x.clone().requires_grad_(True)
        y = module(xi)
        y.backward(grad_output)
        cases.append({"name": name, "options": options, "output": t(y), "grad_input": t(xi.grad)})
    write_json(
        os.path.join(TORCH_DIR, "activations.json"),
        {"input": t(x), "grad_output": t(grad_output), "cases": cases},
    )


# ---------------------------------------------------------------------------------------------
# f. Dropout in eval mode


def make_dropout():
    torch.manual_seed(7)
    x = torch.randn(4, 6)
    cases = []
    for name, module in [("dropout", nn.Dropout(p=0.3)), ("alpha_dropout", nn.AlphaDropout(p=0.2))]:
        module.eval()
        xi = x.clone().requires_grad_(True)
        y = module(xi)
        grad_output = torch.randn(4, 6)
        y.backward(grad_output)
        cases.append(
            {
                "name": name,
                "p": module.p,
                "output": t(y),
                "grad_output": t(grad_output),
                "grad_input": t(xi.grad),
            }
        )
    write_json(
        os.path.join(TORCH_DIR, "dropout.json"),
        {"description": "eval mode: identity", "input": t(x), "cases": cases},
    )


# ---------------------------------------------------------------------------------------------
# g. Linear + BatchNorm1d in eval mode


def state_entry(value):
    if value.dtype == torch.int64:
        return int(value.item())
    return t(value)


def make_sequential_eval():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        model[1].weight.copy_(torch.rand(4) * 1.5 + 0.5)
        model[1].bias.copy_(torch.randn(4) * 0.5)
        model[1].running_mean.copy_(torch.randn(4) * 0.7)
        model[1].running_var.copy_(torch.rand(4) * 2.0 + 0.3)
        model[1].num_batches_tracked.fill_(7)
    model.eval()
    x = torch.randn(5, 6).requires_grad_(True)
    y = model(x)
    grad_output = torch.randn(5, 4)
    y.backward(grad_output)
    state = model.state_dict()
    write_json(
        os.path.join(TORCH_DIR, "sequential-eval.json"),
        {
            "description": "nn.Sequential(Linear(6,4), BatchNorm1d(4)) in eval mode with set "
            "running statistics; num_batches_tracked is an integer",
            "state_dict_keys": list(state.keys()),
            "state_dict": {k: state_entry(v) for k, v in state.items()},
            "input": t(x),
            "output": t(y),
            "grad_output": t(grad_output),
            "grad_input": t(x.grad),
            "grads": {name: t(p.grad) for name, p in model.named_parameters()},
        },
    )


# ---------------------------------------------------------------------------------------------
# h. Optimizers


def make_optimizers():
    torch.manual_seed(9)
    lin = nn.Linear(4, 3)
    initial = {"weight": lin.weight.detach().clone(), "bias": lin.bias.detach().clone()}
    grads = []
    for k in range(5):
        scale = [1.0, 0.5, 2.0, 0.05, 1.0][k]
        grads.append({"weight": torch.randn(3, 4) * scale, "bias": torch.randn(3) * scale})
    configs = [
        ("adamw_lr1e-2_wd0.1", "AdamW", {"lr": 1e-2, "weight_decay": 0.1}),
        ("adam_lr1e-2_wd0.1", "Adam", {"lr": 1e-2, "weight_decay": 0.1}),
        ("adamw_lr1e-2_defaults", "AdamW", {"lr": 1e-2}),
        ("sgd_momentum_wd", "SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}),
        ("sgd_nesterov", "SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
        ("sgd_plain", "SGD", {"lr": 0.1}),
        ("adamw_betas_eps", "AdamW", {"lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-6,
                                      "weight_decay": 0.05}),
        ("adam_betas_eps", "Adam", {"lr": 3e-3, "betas": [0.5, 0.9], "eps": 1e-4}),
        ("sgd_dampening", "SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.3,
                                  "weight_decay": 1e-2}),
    ]
    # The lr of each step set in the param group before it, as an LR scheduler does.
    lr_per_step = [("adamw_lr_per_step", "AdamW", {"lr": 1e-2, "weight_decay": 0.1},
                    [1e-2, 5e-3, 2e-2, 1e-3, 0.0]),
                   ("sgd_momentum_lr_per_step", "SGD", {"lr": 0.1, "momentum": 0.9},
                    [0.1, 0.05, 0.2, 0.01, 0.0])]
    configs = [(name, cls_name, options, None) for name, cls_name, options in configs] + lr_per_step
    cases = []
    for name, cls_name, options, lrs in configs:
        weight = nn.Parameter(initial["weight"].clone())
        bias = nn.Parameter(initial["bias"].clone())
        kwargs = {k: (tuple(v) if k == "betas" else v) for k, v in options.items()}
        opt = getattr(torch.optim, cls_name)([weight, bias], **kwargs)
        group = opt.param_groups[0]
        resolved = {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in group.items()
            if k in ("lr", "betas", "eps", "weight_decay", "momentum", "dampening", "nesterov")
        }
        after = []
        for k, g in enumerate(grads):
            if lrs is not None:
                group["lr"] = lrs[k]
            weight.grad = g["weight"].clone()
            bias.grad = g["bias"].clone()
            opt.step()
            after.append({"weight": t(weight), "bias": t(bias)})
        case = {"name": name, "optimizer": cls_name, "options": options,
                "resolved_options": resolved, "after_step": after}
        if lrs is not None:
            case["lr_per_step"] = lrs
        cases.append(case)
    write_json(
        os.path.join(TORCH_DIR, "optimizers.json"),
        {
            "description": "Linear(4,3) weight and bias; before step k the gradients are grads[k] "
            "and, when lr_per_step is given, the param group's lr is lr_per_step[k]",
            "initial": {"weight": t(initial["weight"]), "bias": t(initial["bias"])},
            "grads": [{"weight": t(g["weight"]), "bias": t(g["bias"])} for g in grads],
            "cases": cases,
        },
    )


# ---------------------------------------------------------------------------------------------
# i. Losses


def make_losses():
    torch.manual_seed(10)
    logits = torch.randn(6, 4) * 2.0
    targets = torch.tensor([0, 3, 1, 2, 3, 0])
    large = torch.tensor(
        [
            [1000.0, -1000.0, 0.0, 999.0],
            [-1000.0, 1000.0, 1000.0, -1000.0],
            [1000.0, 0.0, -1000.0, 500.0],
            [-1000.0, -999.0, -1000.0, -1000.0],
        ]
    )
    large_targets = torch.tensor([0, 2, 2, 1])
    cross_entropy = []
    for name, z, y in [("random", logits, targets), ("large", large, large_targets)]:
        for smoothing in (0.0, 0.1):
            zi = z.clone().requires_grad_(True)
            loss = F.cross_entropy(zi, y, label_smoothing=smoothing)
            loss.backward()
            cross_entropy.append(
                {
                    "name": f"{name}_ls{smoothing}",
                    "label_smoothing": smoothing,
                    "logits": t(z),
                    "targets": y.tolist(),
                    "loss": loss.item(),
                    "grad": t(zi.grad),
                }
            )
    pred = torch.randn(6, 4).requires_grad_(True)
    target = torch.randn(6, 4)
    mse = F.mse_loss(pred, target)
    mse.backward()
    write_json(
        os.path.join(TORCH_DIR, "losses.json"),
        {
            "description": "reduction='mean'; grad is d(loss)/d(input)",
            "cross_entropy": cross_entropy,
            "mse": {"input": t(pred), "target": t(target), "loss": mse.item(), "grad": t(pred.grad)},
        },
    )


# ---------------------------------------------------------------------------------------------
# j. LR schedules


def record_lrs(make_scheduler, base_lr, steps=20):
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base_lr)
    scheduler = make_scheduler(opt)
    lrs = []
    for step in range(steps):
        lrs.append(opt.param_groups[0]["lr"])  # the lr this optimizer step uses
        param.grad = torch.zeros(1)
        opt.step()
        if step < steps - 1:
            scheduler.step()
    return lrs


def make_lr_schedules():
    sched = torch.optim.lr_scheduler
    cases = [
        {
            "name": "cosine",
            "scheduler": "CosineAnnealingLR",
            "options": {"T_max": 20, "eta_min": 0.0},
            "base_lr": 0.1,
            "lrs": record_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=20), 0.1),
        },
        {
            "name": "cosine_eta_min",
            "scheduler": "CosineAnnealingLR",
            "options": {"T_max": 20, "eta_min": 1e-3},
            "base_lr": 0.05,
            "lrs": record_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=20, eta_min=1e-3), 0.05),
        },
        {
            "name": "one_cycle",
            "scheduler": "OneCycleLR",
            "options": {"max_lr": 0.1, "total_steps": 20, "pct_start": 0.3, "div_factor": 25.0,
                        "final_div_factor": 1e4, "cycle_momentum": False},
            "base_lr": 0.1,
            "lrs": record_lrs(
                lambda o: sched.OneCycleLR(o, max_lr=0.1, total_steps=20, cycle_momentum=False), 0.1
            ),
        },
        {
            "name": "one_cycle_custom",
            "scheduler": "OneCycleLR",
            "options": {"max_lr": 0.05, "total_steps": 20, "pct_start": 0.25, "div_factor": 10.0,
                        "final_div_factor": 100.0, "cycle_momentum": False},
            "base_lr": 0.05,
            "lrs": record_lrs(
                lambda o: sched.OneCycleLR(o, max_lr=0.05, total_steps=20, pct_start=0.25,
                                           div_factor=10.0, final_div_factor=100.0,
                                           cycle_momentum=False),
                0.05,
            ),
        },
        {
            # pct_start·total_steps − 1 = 5.9: the warm-up ends between two steps.
            "name": "one_cycle_uneven_warmup",
            "scheduler": "OneCycleLR",
            "options": {"max_lr": 0.02, "total_steps": 23, "pct_start": 0.3, "div_factor": 25.0,
                        "final_div_factor": 1e4, "cycle_momentum": False},
            "base_lr": 0.02,
            "lrs": record_lrs(
                lambda o: sched.OneCycleLR(o, max_lr=0.02, total_steps=23, cycle_momentum=False),
                0.02, steps=23,
            ),
        },
        {
            "name": "cosine_23_steps",
            "scheduler": "CosineAnnealingLR",
            "options": {"T_max": 23, "eta_min": 1e-5},
            "base_lr": 3e-3,
            "lrs": record_lrs(lambda o: sched.CosineAnnealingLR(o, T_max=23, eta_min=1e-5), 3e-3,
                              steps=23),
        },
    ]
    write_json(
        os.path.join(TORCH_DIR, "lr-schedules.json"),
        {
            "description": "lrs[k] is the learning rate of optimizer step k (0-based), read before "
            "the scheduler.step() that follows it; 20 steps unless the case has more lrs",
            "steps": 20,
            "cases": cases,
        },
    )


# ---------------------------------------------------------------------------------------------
# k. Gradient clipping


def make_clip_grad_norm():
    torch.manual_seed(11)
    cases = []
    for name, scale in [("clipped", 2.0), ("unclipped", 0.1)]:
        grads = [torch.randn(3, 4) * scale, torch.randn(3) * scale]
        params = [nn.Parameter(torch.zeros(3, 4)), nn.Parameter(torch.zeros(3))]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = nn.utils.clip_grad_norm_(params, max_norm=1.0)
        cases.append(
            {
                "name": name,
                "max_norm": 1.0,
                "grads": [t(g) for g in grads],
                "total_norm": total.item(),
                "clipped_grads": [t(p.grad) for p in params],
            }
        )
    # A non-finite gradient: PyTorch multiplies by clamp(max_norm / (total + 1e-6), max=1) even
    # then, so a NaN norm makes every gradient NaN and an infinite one zeroes the finite ones.
    # JSON has no NaN or Infinity: they are written as the strings "nan", "inf".
    def text(values):
        return [v if math.isfinite(v) else ("nan" if math.isnan(v) else
                                            ("inf" if v > 0 else "-inf")) for v in values]

    nonfinite = []
    for name, bad in [("nan_gradient", float("nan")), ("inf_gradient", float("inf"))]:
        grads = [torch.tensor([1.0, bad, -2.0]), torch.tensor([3.0, 4.0])]
        params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2))]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        total = nn.utils.clip_grad_norm_(params, max_norm=1.0)
        nonfinite.append({"name": name, "max_norm": 1.0,
                          "grads": [text(g.tolist()) for g in grads],
                          "total_norm": text([total.item()])[0],
                          "clipped_grads": [text(p.grad.tolist()) for p in params]})
    write_json(os.path.join(TORCH_DIR, "clip-grad-norm.json"),
               {"cases": cases, "nonfinite": nonfinite})


# ---------------------------------------------------------------------------------------------
# k2. Convolutional layers: Conv2d, pooling, Flatten, the residual block, LayerNorm over [C, H, W]


def load_torch_eval_model():
    """tools/torch-eval-model.py as a module: the reference loader, whose Residual block is the
    one normserve's "residual" layer mirrors."""
    import importlib.util

    path = os.path.join(ROOT, "tools", "torch-eval-model.py")
    spec = importlib.util.spec_from_file_location("torch_eval_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Residual = load_torch_eval_model().Residual


def module_case(name, module, x, options, train=True):
    """Forward and backward of one module on x: output, input gradient, parameter gradients."""
    module.train(train)
    x = x.clone().requires_grad_(True)
    y = module(x)
    grad_output = torch.randn(*y.shape)
    y.backward(grad_output)
    case = {
        "name": name,
        "options": options,
        "train": train,
        "input": t(x),
        "output": t(y),
        "grad_output": t(grad_output),
        "grad_input": t(x.grad),
        "parameters": {k: t(p) for k, p in module.named_parameters()},
        "grads": {k: t(p.grad) for k, p in module.named_parameters()},
        "buffers": {k: state_entry(b) for k, b in module.named_buffers()},
    }
    return case


def randomize_batchnorms(module):
    """Non-trivial affine parameters and running statistics for every BatchNorm of a module."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.weight.copy_(torch.rand(m.num_features) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(m.num_features) * 0.5)
                m.running_mean.copy_(torch.randn(m.num_features) * 0.5)
                m.running_var.copy_(torch.rand(m.num_features) * 1.5 + 0.5)


def make_conv_layers():
    torch.manual_seed(31)
    cases = []
    conv_specs = [
        ("conv_3x3_pad1", dict(in_channels=2, out_channels=3, kernel_size=3, stride=1, padding=1,
                               bias=True), (2, 2, 5, 6)),
        ("conv_rect_stride_dilation_no_bias",
         dict(in_channels=3, out_channels=4, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0),
              dilation=(1, 2), bias=False), (3, 3, 6, 7)),
        ("conv_1x1", dict(in_channels=4, out_channels=2, kernel_size=1, bias=True), (2, 4, 3, 3)),
    ]
    for name, options, shape in conv_specs:
        conv = nn.Conv2d(**options)
        cases.append(module_case(name, conv, torch.randn(*shape), {"type": "conv2d", **options}))
    pool_specs = [
        ("maxpool_2", nn.MaxPool2d(2), {"type": "maxpool2d", "kernel_size": 2}, (2, 3, 6, 5)),
        ("maxpool_3_stride2_pad1", nn.MaxPool2d(3, stride=2, padding=1),
         {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
        ("avgpool_2", nn.AvgPool2d(2), {"type": "avgpool2d", "kernel_size": 2}, (2, 3, 6, 5)),
        ("avgpool_3_stride2_pad1", nn.AvgPool2d(3, stride=2, padding=1),
         {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1}, (2, 2, 7, 6)),
        ("avgpool_3_stride2_pad1_exclude_pad",
         nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
         {"type": "avgpool2d", "kernel_size": 3, "stride": 2, "padding": 1,
          "count_include_pad": False}, (2, 2, 7, 6)),
        ("adaptive_avgpool_1", nn.AdaptiveAvgPool2d(1),
         {"type": "adaptive_avgpool2d", "output_size": 1}, (2, 3, 4, 4)),
        ("adaptive_avgpool_3x2_uneven", nn.AdaptiveAvgPool2d((3, 2)),
         {"type": "adaptive_avgpool2d", "output_size": [3, 2]}, (2, 2, 5, 7)),
        ("flatten", nn.Flatten(), {"type": "flatten", "start_dim": 1, "end_dim": -1}, (2, 3, 2, 2)),
        ("flatten_2_3", nn.Flatten(2, 3), {"type": "flatten", "start_dim": 2, "end_dim": 3},
         (2, 3, 2, 2)),
    ]
    for name, module, options, shape in pool_specs:
        cases.append(module_case(name, module, torch.randn(*shape), options))

    ln = nn.LayerNorm([3, 4, 5])
    with torch.no_grad():
        ln.weight.copy_(torch.rand(3, 4, 5) * 1.5 + 0.5)
        ln.bias.copy_(torch.randn(3, 4, 5) * 0.5)
    cases.append(module_case("layernorm_chw", ln, torch.randn(2, 3, 4, 5) * 2 + 1,
                             {"type": "layernorm", "normalized_shape": [3, 4, 5]}))
    ln_w = nn.LayerNorm(5, elementwise_affine=False)
    cases.append(module_case("layernorm_last_dim", ln_w, torch.randn(2, 3, 4, 5),
                             {"type": "layernorm", "normalized_shape": [5],
                              "elementwise_affine": False}))

    def block():
        return Residual(
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
        )

    residual_options = {"type": "residual", "layers": [
        {"type": "conv2d", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1,
         "bias": False},
        {"type": "batchnorm2d", "num_features": 4},
        {"type": "relu"},
        {"type": "conv2d", "in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1,
         "bias": False},
        {"type": "batchnorm2d", "num_features": 4},
    ]}
    for train in (True, False):
        torch.manual_seed(32)
        module = block()
        randomize_batchnorms(module)
        x = torch.randn(3, 4, 5, 5)
        before = {k: state_entry(b) for k, b in module.named_buffers()}
        case = module_case(f"residual_{'train' if train else 'eval'}", module, x, residual_options,
                           train=train)
        case["buffers_before"] = before
        case["state_dict_keys"] = list(module.state_dict().keys())
        cases.append(case)
    write_json(
        os.path.join(TORCH_DIR, "conv-layers.json"),
        {
            "description": "forward and backward of single modules: input, output, grad_output "
            "(randn), grad_input, parameters and their gradients, buffers after the forward "
            "(residual: buffers_before too). options are the normserve config entry.",
            "cases": cases,
        },
    )


# ---------------------------------------------------------------------------------------------
# l. A trained digits model in normserve's checkpoint format


TRAIN_ROWS = (0, 1437)
TEST_ROWS = (1437, 1797)


def read_digits():
    with open(DIGITS_CSV, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader)
        assert header == [f"p{i}" for i in range(64)] + ["label"], header
        rows = [[int(v) for v in row] for row in reader]
    assert len(rows) == 1797
    x = torch.tensor([row[:64] for row in rows], dtype=torch.float32)
    y = torch.tensor([row[64] for row in rows], dtype=torch.int64)
    return x, y


def write_safetensors(path, state, metadata):
    """The safetensors format by hand: u64 LE header length, JSON header, raw LE tensor bytes."""
    header = {"__metadata__": metadata}
    blobs = []
    offset = 0
    for name, value in state.items():
        value = value.detach().contiguous()
        if value.dtype == torch.float32:
            dtype = "F32"
            blob = struct.pack(f"<{value.numel()}f", *value.flatten().tolist())
        elif value.dtype == torch.int64:
            dtype = "I64"
            blob = struct.pack(f"<{value.numel()}q", *value.flatten().tolist())
        else:
            raise TypeError(f"{name}: unsupported dtype {value.dtype}")
        header[name] = {
            "dtype": dtype,
            "shape": list(value.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)
    print(f"wrote {os.path.relpath(path, ROOT)} ({8 + len(header_bytes) + offset} bytes)")


def night(x_raw):
    """The project's "night" domain shift on raw pixels, computed in float64, stored as float32."""
    return (16.0 * (0.35 * (x_raw.double() / 16.0) + 0.1)).float()


def eval_logits(model, x):
    model.eval()
    with torch.no_grad():
        return model(x)


def accuracy(logits, labels):
    return (logits.argmax(dim=1) == labels).double().mean().item()


def recalibrate_bn(model, z):
    """Exact layer-by-layer recalibration: each BN in order gets the mean and unbiased variance
    of its inputs over all rows of z, with earlier layers in eval mode (earlier BNs already
    recalibrated). Works in the model's dtype; returns the per-BN statistics."""
    model.eval()
    stats = []
    with torch.no_grad():
        h = z
        for index, layer in enumerate(model):
            if isinstance(layer, nn.BatchNorm1d):
                mean = h.mean(dim=0)
                var = ((h - mean) ** 2).sum(dim=0) / (h.shape[0] - 1)
                layer.running_mean.copy_(mean)
                layer.running_var.copy_(var)
                stats.append({"index": index, "mean": mean.clone(), "var": var.clone()})
            h = layer(h)
    return stats


def make_model_fixture():
    x_raw, labels = read_digits()
    x_train_raw, y_train = x_raw[TRAIN_ROWS[0]:TRAIN_ROWS[1]], labels[TRAIN_ROWS[0]:TRAIN_ROWS[1]]
    x_test_raw, y_test = x_raw[TEST_ROWS[0]:TEST_ROWS[1]], labels[TEST_ROWS[0]:TEST_ROWS[1]]

    # Per-feature standardization on the train rows (population std, ddof=0; std 0 -> scale 1),
    # computed in float64 and stored as float32 values.
    mean64 = x_train_raw.double().mean(dim=0)
    std64 = x_train_raw.double().std(dim=0, unbiased=False)
    shift = mean64.float()
    scale = torch.where(std64 > 0, 1.0 / std64, torch.ones_like(std64)).float()

    def transform(raw):
        return (raw - shift) * scale  # float32, as the engine applies (x - shift) * scale

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(32, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )
    epochs, batch_size, lr, weight_decay = 10, 64, 1e-2, 0.01
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    z_train = transform(x_train_raw)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(z_train.shape[0])
        for start in range(0, z_train.shape[0], batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(z_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
    model.eval()
    train_accuracy = accuracy(eval_logits(model, z_train), y_train)

    labels_text = [str(d) for d in range(10)]
    layers = []
    for layer in model:
        if isinstance(layer, nn.Linear):
            layers.append({"type": "linear", "in_features": layer.in_features,
                           "out_features": layer.out_features, "bias": layer.bias is not None})
        elif isinstance(layer, nn.BatchNorm1d):
            layers.append({"type": "batchnorm1d", "num_features": layer.num_features,
                           "eps": layer.eps, "momentum": layer.momentum})
        elif isinstance(layer, nn.ReLU):
            layers.append({"type": "relu"})
        elif isinstance(layer, nn.Dropout):
            layers.append({"type": "dropout", "p": layer.p})
        else:
            raise TypeError(type(layer))
    config = {
        "format": "normserve.model/v1",
        "name": "digits-torch",
        "task": "classification",
        "input_shape": [64],
        "labels": labels_text,
        "input_transform": {"shift": shift.tolist(), "scale": scale.tolist()},
        "layers": layers,
        "provenance": {"source": "pytorch", "torch_version": TORCH_VERSION},
    }
    version_dir = os.path.join(MODEL_DIR, "digits-torch", "1")
    os.makedirs(version_dir, exist_ok=True)
    with open(os.path.join(version_dir, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, allow_nan=False) + "\n")
    print(f"wrote {os.path.relpath(os.path.join(version_dir, 'config.json'), ROOT)}")
    state = model.state_dict()
    write_safetensors(
        os.path.join(version_dir, "model.safetensors"),
        state,
        {"format": "pt", "torch_version": TORCH_VERSION},
    )

    # Clean test rows.
    z_test = transform(x_test_raw)
    logits = eval_logits(model, z_test)
    clean_accuracy = accuracy(logits, y_test)
    training = {
        "seed": 0,
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": "AdamW",
        "lr": lr,
        "weight_decay": weight_decay,
        "loss": "cross_entropy",
        "standardization": "population std (ddof=0) over train rows; std 0 -> scale 1",
        "train_accuracy": train_accuracy,
    }
    write_json(
        os.path.join(MODEL_DIR, "expected.json"),
        {
            "description": "eval-mode outputs of digits-torch/1 on the test rows of "
            "data/digits/digits.csv; inputs are raw pixels, the model applies (x - shift) * scale",
            "model": "digits-torch",
            "version": 1,
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "num_rows": TEST_ROWS[1] - TEST_ROWS[0],
            "training": training,
            "labels": y_test.tolist(),
            "logits": t(logits),
            "probabilities": t(torch.softmax(logits, dim=1)),
            "predictions": logits.argmax(dim=1).tolist(),
            "accuracy": clean_accuracy,
        },
    )

    # Night shift, before recalibration.
    x_night_raw = night(x_test_raw)
    z_night = transform(x_night_raw)
    night_logits = eval_logits(model, z_night)
    night_accuracy = accuracy(night_logits, y_test)

    # Exact recalibration: statistics in float64 (reference), loaded into the float32 model as
    # their float32 roundings.
    model64 = copy.deepcopy(model).double()
    stats64 = recalibrate_bn(model64, z_night.double())
    recalibrated = copy.deepcopy(model)
    with torch.no_grad():
        for s in stats64:
            recalibrated[s["index"]].running_mean.copy_(s["mean"].float())
            recalibrated[s["index"]].running_var.copy_(s["var"].float())
    recal_logits = eval_logits(recalibrated, z_night)
    recal_accuracy = accuracy(recal_logits, y_test)
    # For information: the same procedure carried out entirely in float32.
    stats32 = recalibrate_bn(copy.deepcopy(model), z_night)
    state_names = list(state.keys())
    batchnorms = []
    for s64, s32 in zip(stats64, stats32):
        batchnorms.append(
            {
                "index": s64["index"],
                "running_mean_key": f"{s64['index']}.running_mean",
                "running_var_key": f"{s64['index']}.running_var",
                "count": z_night.shape[0],
                "running_mean_float64": t64(s64["mean"]),
                "running_var_float64": t64(s64["var"]),
                "running_mean": t(s64["mean"].float()),
                "running_var": t(s64["var"].float()),
                "max_abs_diff_float32_pipeline": max(
                    (s32["mean"].double() - s64["mean"]).abs().max().item(),
                    (s32["var"].double() - s64["var"]).abs().max().item(),
                ),
            }
        )
        assert f"{s64['index']}.running_mean" in state_names
    write_json(
        os.path.join(MODEL_DIR, "recalibration.json"),
        {
            "description": "night shift x_night_raw = float32(16*(0.35*(x_raw/16)+0.1)) (computed "
            "in float64) on the test rows; exact layer-by-layer BN recalibration on all 360 "
            "shifted rows: for each BatchNorm in order, running_mean = mean and running_var = "
            "unbiased variance (/(n-1)) of its inputs, earlier layers in eval mode and earlier "
            "BNs already recalibrated. Statistics computed in float64 (running_*_float64); "
            "running_* are their float32 roundings, which the recalibrated model uses. "
            "num_batches_tracked and all other tensors are unchanged.",
            "model": "digits-torch",
            "version": 1,
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "num_rows": TEST_ROWS[1] - TEST_ROWS[0],
            "shift": {"name": "night", "contrast": 0.35, "brightness": 0.1, "pixel_max": 16},
            "labels": y_test.tolist(),
            "clean_accuracy": clean_accuracy,
            "night": {
                "logits": t(night_logits),
                "predictions": night_logits.argmax(dim=1).tolist(),
                "accuracy": night_accuracy,
            },
            "batchnorms": batchnorms,
            "recalibrated": {
                "logits": t(recal_logits),
                "probabilities": t(torch.softmax(recal_logits, dim=1)),
                "predictions": recal_logits.argmax(dim=1).tolist(),
                "accuracy": recal_accuracy,
            },
        },
    )
    # float64 references: the float32 checkpoints (original and recalibrated) evaluated in double
    # precision on the same float32 inputs. PyTorch's float32 logits above carry its own rounding
    # (up to ~2e-5 here, because the standardized night inputs reach |z| ~ 60), while an engine that
    # accumulates in float64 lands much closer to these.
    def logits64(m, z):
        return eval_logits(copy.deepcopy(m).double(), z.double())

    write_json(
        os.path.join(MODEL_DIR, "reference-float64.json"),
        {
            "description": "logits of the float32 checkpoint digits-torch/1 (and of its "
            "recalibrated variant, running stats = the float32 values in recalibration.json) "
            "evaluated in float64 on the float32 standardized inputs of the test rows; "
            "max_abs_diff_torch_float32 is how far PyTorch's float32 logits are from these",
            "model": "digits-torch",
            "version": 1,
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "num_rows": TEST_ROWS[1] - TEST_ROWS[0],
            **{
                name: {
                    "logits": t64(ref),
                    "max_abs_diff_torch_float32": (ref - l32.double()).abs().max().item(),
                }
                for name, ref, l32 in [
                    ("clean", logits64(model, z_test), logits),
                    ("night", logits64(model, z_night), night_logits),
                    ("recalibrated", logits64(recalibrated, z_night), recal_logits),
                ]
            },
        },
    )
    print(
        f"digits-torch: train {train_accuracy:.4f}, clean test {clean_accuracy:.4f}, "
        f"night {night_accuracy:.4f}, recalibrated {recal_accuracy:.4f}"
    )


# ---------------------------------------------------------------------------------------------
# m. `running` recalibration of the digits model (torch.optim.swa_utils.update_bn, dropout off)


def read_safetensors(path):
    """A safetensors file (F32 / I64 only, as write_safetensors writes them) as a state dict."""
    with open(path, "rb") as f:
        data = f.read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length].decode("utf-8"))
    base = 8 + header_length
    state = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        blob = data[base + begin:base + end]
        if entry["dtype"] == "F32":
            values = struct.unpack(f"<{len(blob) // 4}f", blob)
            state[name] = torch.tensor(values, dtype=torch.float32).view(entry["shape"])
        elif entry["dtype"] == "I64":
            values = struct.unpack(f"<{len(blob) // 8}q", blob)
            state[name] = torch.tensor(values, dtype=torch.int64).view(entry["shape"])
        else:
            raise TypeError(f"{name}: unsupported dtype {entry['dtype']}")
    return state


def model_from_checkpoint(version_dir):
    """nn.Sequential and (shift, scale) from a normserve checkpoint written by section l."""
    with open(os.path.join(version_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    modules = []
    for layer in config["layers"]:
        if layer["type"] == "linear":
            modules.append(nn.Linear(layer["in_features"], layer["out_features"], bias=layer["bias"]))
        elif layer["type"] == "batchnorm1d":
            modules.append(nn.BatchNorm1d(layer["num_features"], eps=layer["eps"],
                                          momentum=layer["momentum"]))
        elif layer["type"] == "relu":
            modules.append(nn.ReLU())
        elif layer["type"] == "dropout":
            modules.append(nn.Dropout(layer["p"]))
        else:
            raise TypeError(layer["type"])
    model = nn.Sequential(*modules)
    model.load_state_dict(read_safetensors(os.path.join(version_dir, "model.safetensors")))
    transform = config["input_transform"]
    shift = torch.tensor(transform["shift"], dtype=torch.float32)
    scale = torch.tensor(transform["scale"], dtype=torch.float32)
    return model.eval(), shift, scale


def make_running_recalibration():
    """update_bn on the night rows, except that dropout stays in eval mode: reset_running_stats,
    momentum=None (cumulative average), BN layers in train mode on consecutive batches of 64 rows
    (the last batch has 360 - 5*64 = 40 rows), then momenta and eval mode restored."""
    model, shift, scale = model_from_checkpoint(os.path.join(MODEL_DIR, "digits-torch", "1"))
    x_raw, labels = read_digits()
    x_test_raw, y_test = x_raw[TEST_ROWS[0]:TEST_ROWS[1]], labels[TEST_ROWS[0]:TEST_ROWS[1]]
    z_night = (night(x_test_raw) - shift) * scale
    batch_size = 64

    batchnorms = [(i, m) for i, m in enumerate(model) if isinstance(m, nn.BatchNorm1d)]
    source = {i: (m.running_mean.clone(), m.running_var.clone()) for i, m in batchnorms}
    momenta = {}
    for i, m in batchnorms:
        m.reset_running_stats()
        momenta[i] = m.momentum
        m.momentum = None
    model.eval()
    for _, m in batchnorms:
        m.train()
    batches = 0
    with torch.no_grad():
        for start in range(0, z_night.shape[0], batch_size):
            model(z_night[start:start + batch_size])
            batches += 1
    for i, m in batchnorms:
        m.momentum = momenta[i]
    model.eval()
    assert all(not m.training for m in model)

    logits = eval_logits(model, z_night)
    records = []
    for i, m in batchnorms:
        assert int(m.num_batches_tracked.item()) == batches
        records.append(
            {
                "index": i,
                "running_mean_key": f"{i}.running_mean",
                "running_var_key": f"{i}.running_var",
                "source_running_mean": t(source[i][0]),
                "source_running_var": t(source[i][1]),
                "running_mean": t(m.running_mean),
                "running_var": t(m.running_var),
                "num_batches_tracked": int(m.num_batches_tracked.item()),
            }
        )
    write_json(
        os.path.join(MODEL_DIR, "recalibration-running.json"),
        {
            "description": "running-mode BN recalibration of digits-torch/1 on the night-shifted "
            "test rows (as in recalibration.json, standardized in float32 as (x - shift) * scale): "
            "like torch.optim.swa_utils.update_bn but with Dropout in eval mode. Each BN: "
            "reset_running_stats(), momentum=None, train mode; consecutive batches of batch_size "
            "rows in row order (the last one partial); running_* are PyTorch's float32 buffers "
            "afterwards (the average over batches of the batch mean and unbiased variance), "
            "num_batches_tracked = num_batches. logits/predictions: the recalibrated model in "
            "eval mode on the same rows.",
            "model": "digits-torch",
            "version": 1,
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "num_rows": TEST_ROWS[1] - TEST_ROWS[0],
            "shift": {"name": "night", "contrast": 0.35, "brightness": 0.1, "pixel_max": 16},
            "batch_size": batch_size,
            "num_batches": batches,
            "batchnorms": records,
            "recalibrated": {
                "logits": t(logits),
                "predictions": logits.argmax(dim=1).tolist(),
                "accuracy": accuracy(logits, y_test),
            },
        },
    )
    print(f"digits-torch running recalibration: {batches} batches, "
          f"accuracy {accuracy(logits, y_test):.4f}")


# ---------------------------------------------------------------------------------------------
# n. A PyTorch-trained CNN (the convolutional networks issue) in normserve's checkpoint format


CNN_DIR = os.path.join(MODEL_DIR, "digits-cnn-torch", "1")


def digits_cnn():
    """conv(1→16,3,p1) bn2d relu | residual[conv bn relu conv bn] | maxpool2d(2) |
    conv(16→32,3,p1) bn2d relu | adaptive_avgpool2d(1) | flatten | linear(32→10)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        Residual(
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        ),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


def as_list(v):
    return list(v) if isinstance(v, tuple) else v


def layer_entry(m):
    """A PyTorch module as its normserve.model/v1 config entry (constructor arguments)."""
    if isinstance(m, nn.Conv2d):
        return {"type": "conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels,
                "kernel_size": as_list(m.kernel_size), "stride": as_list(m.stride),
                "padding": as_list(m.padding), "dilation": as_list(m.dilation),
                "groups": m.groups, "bias": m.bias is not None, "padding_mode": m.padding_mode}
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"type": "batchnorm2d" if isinstance(m, nn.BatchNorm2d) else "batchnorm1d",
                "num_features": m.num_features, "eps": m.eps, "momentum": m.momentum,
                "affine": m.affine, "track_running_stats": m.track_running_stats}
    if isinstance(m, nn.MaxPool2d):
        return {"type": "maxpool2d", "kernel_size": m.kernel_size, "stride": m.stride,
                "padding": m.padding, "dilation": m.dilation, "ceil_mode": m.ceil_mode}
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return {"type": "adaptive_avgpool2d", "output_size": as_list(m.output_size)}
    if isinstance(m, nn.Flatten):
        return {"type": "flatten", "start_dim": m.start_dim, "end_dim": m.end_dim}
    if isinstance(m, nn.Linear):
        return {"type": "linear", "in_features": m.in_features, "out_features": m.out_features,
                "bias": m.bias is not None}
    if isinstance(m, nn.AvgPool2d):
        assert m.divisor_override is None and not m.ceil_mode
        return {"type": "avgpool2d", "kernel_size": m.kernel_size, "stride": m.stride,
                "padding": m.padding, "count_include_pad": m.count_include_pad}
    if isinstance(m, nn.LayerNorm):
        return {"type": "layernorm", "normalized_shape": list(m.normalized_shape), "eps": m.eps,
                "elementwise_affine": m.elementwise_affine}
    if isinstance(m, nn.LeakyReLU):
        return {"type": "leaky_relu", "negative_slope": m.negative_slope}
    if isinstance(m, nn.GELU):
        return {"type": "gelu", "approximate": m.approximate}
    if isinstance(m, (nn.Dropout, nn.AlphaDropout)):
        return {"type": "dropout" if isinstance(m, nn.Dropout) else "alpha_dropout", "p": m.p}
    simple = {nn.ReLU: "relu", nn.SELU: "selu", nn.Tanh: "tanh", nn.Sigmoid: "sigmoid",
              nn.Identity: "identity"}
    if type(m) in simple:
        return {"type": simple[type(m)]}
    if isinstance(m, Residual):
        return {"type": "residual", "layers": [layer_entry(c) for c in m.body]}
    raise TypeError(type(m))


def batchnorms_in_order(model):
    """(path, module) of every BatchNorm in execution order (named_modules order here)."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]


def recalibrate_exact_hooks(model, z):
    """Exact layer-by-layer recalibration through forward pre-hooks: for each BatchNorm in order,
    the mean and unbiased variance of its inputs over N·H·W per channel, with the whole network in
    eval mode and earlier BatchNorms already recalibrated. Works in the model's dtype."""
    model.eval()
    stats = []
    with torch.no_grad():
        for path, bn in batchnorms_in_order(model):
            seen = {}

            def hook(module, inputs, seen=seen):
                seen["x"] = inputs[0].detach().clone()

            handle = bn.register_forward_pre_hook(hook)
            model(z)
            handle.remove()
            x = seen["x"]
            dims = [0] + list(range(2, x.dim()))
            count = x.numel() // x.shape[1]
            mean = x.mean(dim=dims)
            view = [1, -1] + [1] * (x.dim() - 2)
            var = ((x - mean.view(view)) ** 2).sum(dim=dims) / (count - 1)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            stats.append({"path": path, "count": count, "mean": mean.clone(), "var": var.clone()})
    return stats


def make_cnn_fixture():
    x_raw, labels = read_digits()
    images = x_raw.view(-1, 1, 8, 8)
    scale = torch.full((64,), 1.0 / 16.0)
    z = images * (1.0 / 16.0)  # the input transform (x - 0) * 0.0625, exact in float32
    z_train, y_train = z[TRAIN_ROWS[0]:TRAIN_ROWS[1]], labels[TRAIN_ROWS[0]:TRAIN_ROWS[1]]
    z_test, y_test = z[TEST_ROWS[0]:TEST_ROWS[1]], labels[TEST_ROWS[0]:TEST_ROWS[1]]

    torch.manual_seed(0)
    model = digits_cnn()
    epochs, batch_size, lr, weight_decay = 30, 64, 1e-3, 1e-2
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(z_train.shape[0])
        for start in range(0, z_train.shape[0], batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            F.cross_entropy(model(z_train[idx]), y_train[idx]).backward()
            opt.step()
    model.eval()
    parameters = sum(p.numel() for p in model.parameters())

    config = {
        "format": "normserve.model/v1",
        "name": "digits-cnn-torch",
        "task": "classification",
        "description": "the convolutional networks issue's CNN, trained by PyTorch "
        "(tools/make-golden-fixtures.py cnn)",
        "input_shape": [1, 8, 8],
        "labels": [str(d) for d in range(10)],
        "input_transform": {"shift": [0.0] * 64, "scale": scale.tolist()},
        "layers": [layer_entry(m) for m in model],
        "provenance": {"source": "pytorch", "torch_version": TORCH_VERSION,
                       "training": {"seed": 0, "epochs": epochs, "batch_size": batch_size,
                                    "optimizer": "AdamW", "lr": lr,
                                    "weight_decay": weight_decay}},
    }
    os.makedirs(CNN_DIR, exist_ok=True)
    with open(os.path.join(CNN_DIR, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, allow_nan=False) + "\n")
    state = model.state_dict()
    write_safetensors(os.path.join(CNN_DIR, "model.safetensors"), state,
                      {"format": "pt", "torch_version": TORCH_VERSION})

    logits = eval_logits(model, z_test)
    clean_accuracy = accuracy(logits, y_test)
    write_json(
        os.path.join(MODEL_DIR, "cnn-expected.json"),
        {
            "description": "eval-mode outputs of digits-cnn-torch/1 on the test rows of "
            "data/digits/digits.csv (raw pixels; the model applies x * 0.0625 and reads [1, 8, 8]); "
            "logits_float64: the float32 checkpoint evaluated in float64 on the same inputs",
            "model": "digits-cnn-torch",
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "parameters": parameters,
            "state_dict_keys": list(state.keys()),
            "labels": y_test.tolist(),
            "logits": t(logits),
            "probabilities": t(torch.softmax(logits, dim=1)),
            "logits_float64": t64(eval_logits(copy.deepcopy(model).double(), z_test.double())),
            "predictions": logits.argmax(dim=1).tolist(),
            "accuracy": clean_accuracy,
        },
    )

    # The night shift 0.35·x + 0.1 on pixel/16, clamped to [0, 1] (a no-op here: x' ∈ [0.1, 0.45]),
    # back in raw pixels as the service receives them.
    night_raw = (16.0 * torch.clamp(0.35 * (x_raw.double() / 16.0) + 0.1, 0.0, 1.0)).float()
    z_night = night_raw[TEST_ROWS[0]:TEST_ROWS[1]].view(-1, 1, 8, 8) * (1.0 / 16.0)
    night_logits = eval_logits(model, z_night)
    model64 = copy.deepcopy(model).double()
    stats64 = recalibrate_exact_hooks(model64, z_night.double())
    recalibrated = copy.deepcopy(model)
    modules = dict(recalibrated.named_modules())
    with torch.no_grad():
        for s in stats64:
            modules[s["path"]].running_mean.copy_(s["mean"].float())
            modules[s["path"]].running_var.copy_(s["var"].float())
    recal_logits = eval_logits(recalibrated, z_night)

    # running mode (update_bn with Dropout off; there is none here): batches of 64 rows.
    running = copy.deepcopy(model)
    bns = batchnorms_in_order(running)
    for _, bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    running.eval()
    for _, bn in bns:
        bn.train()
    with torch.no_grad():
        for start in range(0, z_night.shape[0], 64):
            running(z_night[start:start + 64])
    running.eval()

    write_json(
        os.path.join(MODEL_DIR, "cnn-recalibration.json"),
        {
            "description": "night shift on the test rows, raw pixels x' = float32(16 * clamp("
            "0.35 * x / 16 + 0.1, 0, 1)); exact layer-by-layer recalibration of every BatchNorm2d "
            "(forward pre-hooks, whole network in eval, earlier BNs recalibrated; mean and "
            "unbiased variance over N·H·W per channel) computed in float64; running mode: "
            "update_bn-style (reset, momentum None, BNs in train mode) over batches of 64 rows in "
            "float32. BatchNorms are named by their state-dict prefix.",
            "model": "digits-cnn-torch",
            "rows": {"start": TEST_ROWS[0], "end": TEST_ROWS[1]},
            "labels": y_test.tolist(),
            "clean_accuracy": clean_accuracy,
            "night": {"accuracy": accuracy(night_logits, y_test)},
            "exact": {
                "batchnorms": [
                    {"path": s["path"], "count": s["count"], "running_mean_float64": t64(s["mean"]),
                     "running_var_float64": t64(s["var"])}
                    for s in stats64
                ],
                "logits": t(recal_logits),
                "predictions": recal_logits.argmax(dim=1).tolist(),
                "accuracy": accuracy(recal_logits, y_test),
            },
            "running": {
                "batch_size": 64,
                "batchnorms": [
                    {"path": p, "running_mean": t(bn.running_mean), "running_var": t(bn.running_var),
                     "num_batches_tracked": int(bn.num_batches_tracked.item())}
                    for p, bn in bns
                ],
            },
        },
    )
    print(f"digits-cnn-torch: {parameters} parameters, clean {clean_accuracy:.4f}, night "
          f"{accuracy(night_logits, y_test):.4f}, exact recalibration "
          f"{accuracy(recal_logits, y_test):.4f}")


def make_cnn_small_batches():
    """Batches of one row on the committed digits-cnn-torch (section `cnn`): its BatchNorm2d see
    8×8 and 4×4 maps, so one row is 64 or 16 values per channel, which PyTorch trains
    (torch.nn.functional._verify_batch_size refuses N·H·W = 1 only). running: update_bn-style on
    the first 65 night rows in batches of 64 (64 + 1: the last batch of one row counts) and on the
    first 5 in batches of 1; exact on the first night row alone."""
    tem = load_torch_eval_model()
    with open(os.path.join(CNN_DIR, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    model = tem.build(config)
    model.load_state_dict(read_safetensors(os.path.join(CNN_DIR, "model.safetensors")))
    model.eval()
    x_raw, _ = read_digits()
    night_raw = (16.0 * torch.clamp(0.35 * (x_raw.double() / 16.0) + 0.1, 0.0, 1.0)).float()
    z_night = night_raw[TEST_ROWS[0]:TEST_ROWS[1]].view(-1, 1, 8, 8) * (1.0 / 16.0)

    def running(rows, batch_size):
        m = copy.deepcopy(model)
        bns = batchnorms_in_order(m)
        for _, bn in bns:
            bn.reset_running_stats()
            bn.momentum = None
        m.eval()
        for _, bn in bns:
            bn.train()
        with torch.no_grad():
            for start in range(0, rows, batch_size):
                m(z_night[start:min(rows, start + batch_size)])
        return {
            "rows": rows,
            "batch_size": batch_size,
            "batchnorms": [
                {"path": p, "running_mean": t(bn.running_mean), "running_var": t(bn.running_var),
                 "num_batches_tracked": int(bn.num_batches_tracked.item())}
                for p, bn in bns
            ],
        }

    exact = recalibrate_exact_hooks(copy.deepcopy(model).double(), z_night[:1].double())
    write_json(
        os.path.join(MODEL_DIR, "cnn-recalibration-small-batches.json"),
        {
            "description": "digits-cnn-torch/1 on the first night rows (as cnn-recalibration.json; "
            "raw pixels x' = float32(16 * clamp(0.35 * x / 16 + 0.1, 0, 1))): running = "
            "update_bn-style (reset, momentum None, BNs in train mode, the rest in eval) over "
            "consecutive batches of batch_size rows of the first `rows`, the last one partial, "
            "in float32; exact = the layer-by-layer statistics of the first row alone (forward "
            "pre-hooks, unbiased over H·W per channel) in float64.",
            "model": "digits-cnn-torch",
            "running": [running(65, 64), running(5, 1)],
            "exact_one_row": {
                "batchnorms": [
                    {"path": e["path"], "count": e["count"], "running_mean_float64": t64(e["mean"]),
                     "running_var_float64": t64(e["var"])}
                    for e in exact
                ],
            },
        },
    )


# ---------------------------------------------------------------------------------------------
# o. Every layer option config.json accepts, built from its config entry (section `options`)


def trace_case(name, options, module, train_inputs, eval_input):
    """Train-mode steps (forward, backward, buffers after each), then one eval step. `options` is
    the normserve config entry with only the arguments given to the PyTorch constructor, so the
    schema's defaults are checked against PyTorch's."""
    with torch.no_grad():
        for k, p in module.named_parameters():
            if k.endswith("weight") and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d,
                                                            nn.LayerNorm)):
                p.copy_(torch.rand(*p.shape) * 1.5 + 0.5)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.LayerNorm)):
                p.copy_(torch.randn(*p.shape) * 0.5)
    case = {
        "name": name,
        "options": options,
        "parameters": {k: t(p) for k, p in module.named_parameters()},
        "buffers_before": {k: state_entry(b) for k, b in module.named_buffers()},
        "state_dict_keys": list(module.state_dict().keys()),
        "steps": [],
    }
    for train, x in [(True, x) for x in train_inputs] + [(False, eval_input)]:
        module.train(train)
        x = x.clone().requires_grad_(True)
        y = module(x)
        grad_output = torch.randn(*y.shape)
        y.backward(grad_output)
        case["steps"].append({
            "train": train,
            "input": t(x),
            "output": t(y),
            "grad_output": t(grad_output),
            "grad_input": t(x.grad),
            "grads": {k: t(p.grad) for k, p in module.named_parameters()},
            "buffers": {k: state_entry(b) for k, b in module.named_buffers()},
        })
        module.zero_grad(set_to_none=False)
    return case


def make_layer_options():
    torch.manual_seed(41)
    means = [-2.0, 0.5, 3.0, 1.0, -0.5, 0.0]

    def batch(shape, scale=2.0):
        view = [1] * len(shape)
        view[1] = shape[1]
        return torch.randn(*shape) * scale + torch.tensor(means[: shape[1]]).view(view)

    specs = [
        ("linear_defaults", {"type": "linear", "in_features": 5, "out_features": 3},
         nn.Linear(5, 3), [5, 5], 1),
        ("linear_no_bias", {"type": "linear", "in_features": 5, "out_features": 3, "bias": False},
         nn.Linear(5, 3, bias=False), [5, 5], 1),
        ("bn1d_defaults", {"type": "batchnorm1d", "num_features": 4}, nn.BatchNorm1d(4),
         [8, 4], 3),
        ("bn1d_momentum_none_eps", {"type": "batchnorm1d", "num_features": 4, "momentum": None,
                                    "eps": 1e-3},
         nn.BatchNorm1d(4, momentum=None, eps=1e-3), [6, 4], 4),
        ("bn1d_no_affine", {"type": "batchnorm1d", "num_features": 4, "affine": False,
                            "momentum": 0.3},
         nn.BatchNorm1d(4, affine=False, momentum=0.3), [5, 4], 3),
        ("bn1d_momentum_1", {"type": "batchnorm1d", "num_features": 4, "momentum": 1.0},
         nn.BatchNorm1d(4, momentum=1.0), [3, 4], 2),
        ("bn1d_momentum_0", {"type": "batchnorm1d", "num_features": 4, "momentum": 0.0},
         nn.BatchNorm1d(4, momentum=0.0), [4, 4], 2),
        ("bn1d_two_rows_large_eps", {"type": "batchnorm1d", "num_features": 3, "eps": 0.5,
                                     "track_running_stats": True},
         nn.BatchNorm1d(3, eps=0.5, track_running_stats=True), [2, 3], 3),
        ("bn2d_momentum_none_no_affine", {"type": "batchnorm2d", "num_features": 3,
                                          "momentum": None, "affine": False, "eps": 1e-4},
         nn.BatchNorm2d(3, momentum=None, affine=False, eps=1e-4), [2, 3, 3, 4], 3),
        ("bn2d_eps_momentum", {"type": "batchnorm2d", "num_features": 2, "eps": 0.25,
                               "momentum": 0.2},
         nn.BatchNorm2d(2, eps=0.25, momentum=0.2), [2, 2, 3, 3], 2),
        ("layernorm_int_eps", {"type": "layernorm", "normalized_shape": 6, "eps": 1e-2},
         nn.LayerNorm(6, eps=1e-2), [4, 6], 1),
        ("layernorm_chw_tail_no_affine_eps",
         {"type": "layernorm", "normalized_shape": [3, 4], "elementwise_affine": False,
          "eps": 0.1},
         nn.LayerNorm([3, 4], elementwise_affine=False, eps=0.1), [2, 2, 3, 4], 1),
        ("leaky_relu_default_slope", {"type": "leaky_relu"}, nn.LeakyReLU(), [3, 5], 1),
        ("gelu_default", {"type": "gelu"}, nn.GELU(), [3, 5], 1),
        ("relu_inplace", {"type": "relu", "inplace": True}, nn.ReLU(), [3, 5], 1),
        ("selu_inplace", {"type": "selu", "inplace": True}, nn.SELU(), [3, 5], 1),
        ("dropout_eval_defaults", {"type": "dropout"}, nn.Dropout(), [3, 5], 0),
        ("identity", {"type": "identity"}, nn.Identity(), [3, 5], 1),
    ]
    cases = []
    for name, options, module, shape, train_steps in specs:
        inputs = [batch(shape) for _ in range(train_steps)]
        cases.append(trace_case(name, options, module, inputs, batch([2, *shape[1:]])))

    # Dropouts in train mode: the masks come from different generators, so the test compares
    # element by element where both kept (or both dropped) an element; p = 1 drops everything.
    x = torch.randn(8, 10) * 2.0
    grad_output = torch.randn(8, 10)
    dropouts = []
    for name, cls, p in [("dropout", nn.Dropout, 0.3), ("dropout", nn.Dropout, 0.5),
                         ("dropout", nn.Dropout, 1.0), ("alpha_dropout", nn.AlphaDropout, 0.2),
                         ("alpha_dropout", nn.AlphaDropout, 0.5),
                         ("alpha_dropout", nn.AlphaDropout, 1.0)]:
        xi = x.clone().requires_grad_(True)
        y = cls(p).train()(xi)
        y.backward(grad_output)
        dropouts.append({"name": name, "p": p, "output": t(y), "grad_input": t(xi.grad)})
    write_json(
        os.path.join(TORCH_DIR, "layer-options.json"),
        {
            "description": "layers built from their config entry (options: only the arguments "
            "passed to the PyTorch constructor, so defaults are PyTorch's): parameters and "
            "buffers before, then train-mode steps and one eval step (train: false), each with "
            "input, output, grad_output (randn), grad_input, parameter gradients of that step "
            "alone and the buffers after it. dropouts: train mode on input with grad_output; an "
            "element was kept where grad_input is not 0. init: the bounds of the default "
            "initialisation of Linear and Conv2d (uniform draws), as torch.nn.init computes them.",
            "cases": cases,
            "dropouts": {"input": t(x), "grad_output": t(grad_output), "cases": dropouts},
            "init": init_bounds(),
        },
    )


def init_bounds():
    """The bounds of PyTorch's default initialisation (reset_parameters of Linear and Conv2d):
    weight U(-b, b) from kaiming_uniform_(a=sqrt(5)), b = gain * sqrt(3 / fan_in); bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Computed with torch.nn.init's own helpers, no draws."""
    gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
    bounds = []
    for options, shape in [
        ({"type": "linear", "in_features": 60, "out_features": 50}, [50, 60]),
        ({"type": "conv2d", "in_channels": 6, "out_channels": 40, "kernel_size": [3, 2]},
         [40, 6, 3, 2]),
    ]:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(torch.empty(*shape))
        bounds.append({"options": options, "fan_in": fan_in,
                       "weight_bound": gain * math.sqrt(3.0 / fan_in),
                       "bias_bound": 1.0 / math.sqrt(fan_in)})
    return bounds


# ---------------------------------------------------------------------------------------------
# p. A PyTorch state_dict with every layer type, in normserve's checkpoint format (section
#    `roundtrip`)


ROUNDTRIP_DIR = os.path.join(MODEL_DIR, "every-layer-torch", "1")


def every_layer_model():
    """Every layer type config.json accepts, most with non-default options, on [2, 6, 6]."""
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4, momentum=None, affine=False),
        nn.LeakyReLU(0.1),
        Residual(
            nn.Conv2d(4, 4, (3, 1), padding=(1, 0)), nn.BatchNorm2d(4, eps=1e-3),
            nn.GELU(approximate="tanh"),
            nn.Conv2d(4, 4, 3, padding=2, dilation=2, bias=False), nn.BatchNorm2d(4),
        ),
        nn.AvgPool2d(2, padding=1, count_include_pad=False),
        nn.LayerNorm([4, 4], eps=1e-4),
        nn.MaxPool2d(3, stride=1, padding=1),
        nn.Conv2d(4, 3, 2, stride=2),
        nn.AdaptiveAvgPool2d((2, 1)),
        nn.Flatten(),
        nn.Linear(6, 8),
        nn.BatchNorm1d(8, momentum=0.05, eps=1e-4),
        nn.SELU(),
        nn.AlphaDropout(0.1),
        nn.Linear(8, 8, bias=False),
        nn.LayerNorm(8, elementwise_affine=False),
        nn.Tanh(),
        nn.Dropout(0.3),
        nn.Linear(8, 6),
        nn.Sigmoid(),
        nn.Identity(),
        nn.ReLU(),
        nn.Linear(6, 3),
    )


def make_every_layer_checkpoint():
    torch.manual_seed(51)
    model = every_layer_model()
    # A few SGD steps in train mode, so every BatchNorm has its own running statistics and count.
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x_train = torch.randn(48, 2, 6, 6) * 1.5 + 0.3
    y_train = torch.randint(0, 3, (48,))
    model.train()
    for start in range(0, 48, 16):
        opt.zero_grad()
        F.cross_entropy(model(x_train[start:start + 16]), y_train[start:start + 16]).backward()
        opt.step()
    model.eval()

    config = {
        "format": "normserve.model/v1",
        "name": "every-layer-torch",
        "task": "classification",
        "description": "every layer type of normserve.model/v1, most with non-default options, "
        "trained briefly by PyTorch (tools/make-golden-fixtures.py roundtrip)",
        "input_shape": [2, 6, 6],
        "labels": ["a", "b", "c"],
        "layers": [layer_entry(m) for m in model],
        "provenance": {"source": "pytorch", "torch_version": TORCH_VERSION},
    }
    os.makedirs(ROUNDTRIP_DIR, exist_ok=True)
    with open(os.path.join(ROUNDTRIP_DIR, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, allow_nan=False) + "\n")
    state = model.state_dict()
    weights = os.path.join(ROUNDTRIP_DIR, "model.safetensors")
    write_safetensors(weights, state, {"format": "pt", "torch_version": TORCH_VERSION})

    # The directory read back by the reference loader (tools/torch-eval-model.py) with
    # load_state_dict(strict=True) gives the same module.
    reference = load_torch_eval_model()
    reloaded = reference.build(config)
    reloaded.load_state_dict(reference.read_safetensors(weights), strict=True)
    reloaded.eval()

    x = torch.randn(5, 2, 6, 6) * 1.5 + 0.3
    outputs = eval_logits(model, x)
    assert torch.equal(eval_logits(reloaded, x), outputs)
    # Recalibration on shifted rows (other mean and scale per input channel): exact, through
    # forward pre-hooks in float64, and running (update_bn-style, dropouts in eval), batches of 16.
    x_shift = torch.randn(40, 2, 6, 6) * torch.tensor([0.6, 2.5]).view(1, 2, 1, 1) \
        + torch.tensor([1.5, -0.8]).view(1, 2, 1, 1)
    stats64 = recalibrate_exact_hooks(copy.deepcopy(model).double(), x_shift.double())
    running = copy.deepcopy(model)
    bns = batchnorms_in_order(running)
    for _, bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    running.eval()
    for _, bn in bns:
        bn.train()
    with torch.no_grad():
        for start in range(0, x_shift.shape[0], 16):
            running(x_shift[start:start + 16])
    running.eval()
    recalibration = {
        "input": t(x_shift),
        "exact": [{"path": st["path"], "count": st["count"], "running_mean_float64": t64(st["mean"]),
                   "running_var_float64": t64(st["var"])} for st in stats64],
        "running": {"batch_size": 16, "batchnorms": [
            {"path": path, "running_mean": t(bn.running_mean), "running_var": t(bn.running_var),
             "num_batches_tracked": int(bn.num_batches_tracked.item())} for path, bn in bns]},
    }
    write_json(
        os.path.join(MODEL_DIR, "every-layer-expected.json"),
        {
            "description": "eval outputs of every-layer-torch/1 (no input_transform) on input; "
            "outputs_float64: the float32 checkpoint evaluated in float64 on the same input; "
            "state_dict: PyTorch's names in order with dtype and shape (what "
            "load_state_dict(strict=True) needs); recalibration: on its input, exact statistics "
            "of every BatchNorm (forward pre-hooks, float64, whole network in eval, earlier "
            "BatchNorms recalibrated; unbiased variance over N·H·W) and running mode "
            "(reset, momentum None, BatchNorms alone in train mode, batches of batch_size)",
            "recalibration": recalibration,
            "model": "every-layer-torch",
            "input": t(x),
            "outputs": t(outputs),
            "outputs_float64": t64(eval_logits(copy.deepcopy(model).double(), x.double())),
            "state_dict": [
                {"name": k, "dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
                for k, v in state.items()
            ],
        },
    )


# ---------------------------------------------------------------------------------------------
# q. normserve's training loop against PyTorch's (section `training`)


def torch_training_case(name, task, input_shape, layers, model, options, x, y, test_x, test_y):
    """The loop normserve's trainer documents (src/training/trainer.ts), written in PyTorch: per
    epoch the training rows in order (shuffle false), mini-batches in train mode, loss (cross
    entropy with label smoothing, or MSE), backward, clip_grad_norm_, optimizer.step(),
    scheduler.step(). `model` starts from the recorded initial state."""
    t_opts = options["training"]
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    o = t_opts["optimizer"]
    if o["type"] == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]),
                                eps=o["eps"], weight_decay=o["weight_decay"])
    elif o["type"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"],
                              dampening=o["dampening"], nesterov=o["nesterov"],
                              weight_decay=o["weight_decay"])
    else:
        raise TypeError(o["type"])
    rows, batch_size, epochs = x.shape[0], t_opts["batch_size"], t_opts["epochs"]
    batches = math.ceil(rows / batch_size)
    total = batches * epochs
    s = t_opts["lr_schedule"]
    if s["type"] == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total,
                                                               eta_min=s["eta_min"])
    elif s["type"] == "one_cycle":
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=o["lr"], total_steps=total, pct_start=s["pct_start"],
            div_factor=s["div_factor"], final_div_factor=s["final_div_factor"],
            cycle_momentum=False)
    else:
        raise TypeError(s["type"])
    lrs, losses, epoch_losses = [], [], []
    for _ in range(epochs):
        model.train()
        loss_sum = 0.0
        for b in range(batches):
            xb, yb = x[b * batch_size:(b + 1) * batch_size], y[b * batch_size:(b + 1) * batch_size]
            lrs.append(opt.param_groups[0]["lr"])
            opt.zero_grad()
            out = model(xb)
            if task == "classification":
                loss = F.cross_entropy(out, yb, label_smoothing=t_opts["label_smoothing"])
            else:
                loss = F.mse_loss(out, yb.view(-1, 1))
            loss.backward()
            if t_opts["grad_clip_norm"] is not None:
                nn.utils.clip_grad_norm_(model.parameters(), t_opts["grad_clip_norm"])
            opt.step()
            scheduler.step()
            losses.append(loss.item())
            loss_sum += loss.item() * xb.shape[0]
        epoch_losses.append(loss_sum / rows)
    model.eval()
    final = model.state_dict()
    features = torch.cat([x, test_x]).flatten(1)
    return {
        "name": name,
        "task": task,
        "input_shape": input_shape,
        "layers": layers,
        "config": options,
        "features": t(features),
        "targets": torch.cat([y, test_y]).tolist(),
        "train_rows": x.shape[0],
        "initial_state": {k: state_entry(v) for k, v in initial.items()},
        "lrs": lrs,
        "losses": losses,
        "epoch_train_losses": epoch_losses,
        "final_state": {k: state_entry(v) for k, v in final.items()},
        "test_outputs": t(eval_logits(model, test_x)),
    }


def make_training_loop():
    cases = []
    torch.manual_seed(61)
    layers = [
        # No bias before the BatchNorm: its gradient is rounding noise around 0, which Adam
        # normalizes into lr-sized steps of either sign, in PyTorch as in any float32 engine.
        {"type": "linear", "in_features": 4, "out_features": 8, "bias": False},
        {"type": "batchnorm1d", "num_features": 8},
        {"type": "relu"},
        {"type": "linear", "in_features": 8, "out_features": 8},
        {"type": "layernorm", "normalized_shape": 8},
        {"type": "gelu"},
        {"type": "linear", "in_features": 8, "out_features": 3},
    ]
    model = nn.Sequential(nn.Linear(4, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 8),
                          nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3))
    x = torch.randn(44, 4) * torch.tensor([1.0, 2.0, 0.5, 1.5]) + torch.tensor([0.5, -1.0, 0.0, 2.0])
    y = ((x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 3] > 2.0).long())
    options = {"training": {
        "epochs": 2, "batch_size": 12, "shuffle": False,
        "optimizer": {"type": "adamw", "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8,
                      "weight_decay": 0.05},
        "lr_schedule": {"type": "cosine", "eta_min": 1e-4},
        "label_smoothing": 0.1, "grad_clip_norm": 0.5, "patience": None}}
    cases.append(torch_training_case("classification_adamw_cosine_clip_smoothing",
                                     "classification", [4], layers, model, options,
                                     x[:40], y[:40], x[40:], y[40:]))

    torch.manual_seed(62)
    layers = [
        {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 2},
        {"type": "batchnorm2d", "num_features": 2, "momentum": None},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "in_features": 8, "out_features": 1},
    ]
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.BatchNorm2d(2, momentum=None), nn.ReLU(),
                          nn.Flatten(), nn.Linear(8, 1))
    x = torch.randn(33, 1, 3, 3)
    y = x.flatten(1) @ torch.linspace(-1.0, 1.0, 9) + 0.1 * torch.randn(33)
    options = {"training": {
        "epochs": 3, "batch_size": 10, "shuffle": False,
        "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.0,
                      "nesterov": True, "weight_decay": 1e-3},
        "lr_schedule": {"type": "one_cycle", "pct_start": 0.3, "div_factor": 25.0,
                        "final_div_factor": 1e4},
        "label_smoothing": 0.0, "grad_clip_norm": None, "patience": None}}
    cases.append(torch_training_case("regression_sgd_nesterov_one_cycle", "regression",
                                     [1, 3, 3], layers, model, options, x[:30], y[:30],
                                     x[30:], y[30:]))

    # One row per batch is no BatchNorm2d problem when its maps are larger than 1×1: PyTorch
    # refuses only one value per channel (N·H·W = 1, torch.nn.functional._verify_batch_size), and
    # a row of [2, 2, 2] maps gives 4. A last batch of one row (31 rows in batches of 10) runs, as
    # DataLoader(drop_last=False) runs it, and so does a batch size of 1.
    bn2d_layers = [
        {"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 2, "bias": False},
        {"type": "batchnorm2d", "num_features": 2},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "linear", "in_features": 8, "out_features": 3},
    ]

    def bn2d_model():
        return nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), nn.BatchNorm2d(2), nn.ReLU(),
                             nn.Flatten(), nn.Linear(8, 3))

    torch.manual_seed(63)
    model = bn2d_model()
    x = torch.randn(36, 1, 3, 3)
    y = (x[:, 0, 0, 0] > 0).long() + (x[:, 0, 2, 2] > 0.5).long()
    options = {"training": {
        "epochs": 2, "batch_size": 10, "shuffle": False,
        "optimizer": {"type": "adamw", "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8,
                      "weight_decay": 0.01},
        "lr_schedule": {"type": "cosine", "eta_min": 1e-4},
        "label_smoothing": 0.0, "grad_clip_norm": None, "patience": None}}
    cases.append(torch_training_case("classification_bn2d_last_batch_of_one_row",
                                     "classification", [1, 3, 3], bn2d_layers, model, options,
                                     x[:31], y[:31], x[31:], y[31:]))

    torch.manual_seed(64)
    model = bn2d_model()
    x = torch.randn(12, 1, 3, 3)
    y = (x[:, 0, 1, 1] > 0).long() + (x[:, 0, 0, 2] > 0.5).long()
    options = {"training": {
        "epochs": 2, "batch_size": 1, "shuffle": False,
        "optimizer": {"type": "sgd", "lr": 0.02, "momentum": 0.9, "dampening": 0.0,
                      "nesterov": False, "weight_decay": 0.0},
        "lr_schedule": {"type": "cosine", "eta_min": 0.0},
        "label_smoothing": 0.0, "grad_clip_norm": None, "patience": None}}
    cases.append(torch_training_case("classification_bn2d_batch_size_1", "classification",
                                     [1, 3, 3], bn2d_layers, model, options, x[:8], y[:8],
                                     x[8:], y[8:]))
    write_json(
        os.path.join(TORCH_DIR, "training-loop.json"),
        {
            "description": "the training loop in PyTorch from initial_state: rows [0, train_rows) "
            "of features/targets in order, batches of batch_size (the last one partial), per "
            "batch zero_grad, forward in train mode, loss, backward, clip_grad_norm_ (if set), "
            "step, scheduler.step() (T_max / total_steps = batches × epochs); lrs and losses per "
            "step, epoch_train_losses = Σ loss·rows / rows; final_state in eval; test_outputs on "
            "the rows after train_rows. config.training is normserve's training section.",
            "cases": cases,
        },
    )


SECTIONS = {}


def main():
    import sys

    wanted = sys.argv[1:]
    if wanted:
        for name in wanted:
            SECTIONS[name]()
        return
    make_batchnorm()
    make_batchnorm_errors()
    make_layernorm()
    make_activations()
    make_dropout()
    make_sequential_eval()
    make_optimizers()
    make_losses()
    make_lr_schedules()
    make_clip_grad_norm()
    make_model_fixture()
    make_running_recalibration()
    make_conv_layers()
    make_cnn_fixture()
    make_cnn_small_batches()
    make_layer_options()
    make_every_layer_checkpoint()
    make_training_loop()


SECTIONS.update(cnn_small_batches=make_cnn_small_batches, clip=make_clip_grad_norm, schedules=make_lr_schedules, training=make_training_loop, roundtrip=make_every_layer_checkpoint, conv=make_conv_layers, cnn=make_cnn_fixture, options=make_layer_options,
                optimizers=make_optimizers)

if __name__ == "__main__":
    main()
