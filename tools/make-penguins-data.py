#!/usr/bin/env python3
"""Writes data/penguins/*.csv from the Palmer penguins data of Debian's r-cran-palmerpenguins.

  apt-get install r-cran-palmerpenguins && python3 tools/make-penguins-data.py

Standard library only. Keeps the numeric measurements (island, sex and year are dropped: the
training CSVs are numeric apart from a classification label) and the rows where all of them were
measured (342 of 344), in the package's order, values as written there.
"""
import csv
import hashlib
import os

SOURCE = "/usr/lib/R/site-library/palmerpenguins/extdata/penguins.csv"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "penguins")
MEASUREMENTS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]

with open(SOURCE, newline="") as f:
    rows = [r for r in csv.DictReader(f) if all(r[c] != "NA" for c in MEASUREMENTS)]

outputs = {
    # classification: the species from the four measurements (a string label)
    "penguins.csv": ["species"] + MEASUREMENTS,
    # regression: body mass in grams from the bill and flipper measurements
    "body-mass.csv": MEASUREMENTS,
}
for name, columns in outputs.items():
    path = os.path.join(OUT, name)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([r[c] for c in columns])
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    print(f"wrote {os.path.relpath(path)}: {len(rows)} rows, sha256 {digest}")
