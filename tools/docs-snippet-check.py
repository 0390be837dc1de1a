#!/usr/bin/python3
"""Runs the Python snippets of docs/model-format.md as written (Debian's python3-torch).

"From PyTorch": extracts the script that starts with `# save_normserve.py`, runs it into a
temporary repository, predicts the same rows with `npm run -s predict`, and prints max |logit
difference|. "To PyTorch": runs the snippet that starts with `# load_normserve.py` and prints its
output next to normserve's probabilities for the same row.

Usage, from the repository root:  /usr/bin/python3 tools/docs-snippet-check.py
"""
import json
import os
import re
import subprocess
import sys
import tempfile

DOC = "docs/model-format.md"


def snippet(text, first_line):
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.S):
        if block.startswith(first_line):
            return block
    raise SystemExit(f"{DOC}: no ```python block starting with {first_line!r}")


def main():
    text = open(DOC, encoding="utf-8").read()
    with tempfile.TemporaryDirectory(prefix="normserve-docs-") as tmp:
        save = os.path.join(tmp, "save_normserve.py")
        with open(save, "w") as f:
            f.write(snippet(text, "# save_normserve.py"))
        repo, torch_logits, ours = (os.path.join(tmp, n) for n in ("repo", "torch.json", "ours.json"))
        subprocess.run([sys.executable, save, repo, torch_logits], check=True)
        with open(ours, "w") as out:
            subprocess.run(
                ["npm", "run", "-s", "predict", "--", "--model", f"{repo}/iris-torch",
                 "--input", "data/iris/iris.csv", "--logits"],
                check=True, stdout=out,
            )
        a = json.load(open(torch_logits))["logits"]
        b = json.load(open(ours))["logits"]
        diff = max(abs(u - v) for r, s in zip(a, b) for u, v in zip(r, s))
        print(f"From PyTorch: max |normserve - torch| = {diff:.3g} over {len(a) * len(a[0])} logits")
        if diff > 1e-4:
            raise SystemExit("From PyTorch: logits differ by more than 1e-4")

        load = os.path.join(tmp, "load_normserve.py")
        with open(load, "w") as f:
            f.write(snippet(text, "# load_normserve.py"))
        print("To PyTorch:", subprocess.run([sys.executable, load], check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
