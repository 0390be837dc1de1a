#!/usr/bin/python3
"""Checks ONNX files with the official ONNX checker: the full check and strict shape inference.

Usage (Debian's python3-onnx):  /usr/bin/python3 tools/onnx-check.py model.onnx [more.onnx ...]
Prints one line per file (opset, operators, inferred output shapes) and exits 1 if any fails.
"""
import sys

import onnx
from onnx import checker, shape_inference


def describe(model):
    outputs = []
    for o in model.graph.output:
        dims = [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
        outputs.append(f"{o.name} {dims}")
    opsets = ", ".join(f"{i.domain or 'ai.onnx'} {i.version}" for i in model.opset_import)
    ops = sorted({n.op_type for n in model.graph.node})
    return f"IR {model.ir_version}, opset {opsets}, operators {' '.join(ops)}; outputs {'; '.join(outputs)}"


failed = 0
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        checker.check_model(model, full_check=True)
        inferred = shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
        print(f"{path}: ok (onnx {onnx.__version__}): {describe(inferred)}")
    except Exception as e:  # report every file, then fail
        failed += 1
        print(f"{path}: FAILED: {type(e).__name__}: {e}")
sys.exit(1 if failed or len(sys.argv) < 2 else 0)
