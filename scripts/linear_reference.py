#!/usr/bin/env python3
"""Writes tests/fixtures/linear_reference.json: scikit-learn's solutions of the linear recipe's
problems on a small fixed dataset, which tests/linear_reference.rs checks tandem's own solver
against (the objectives are convex, so both must find the same optimum).

Usage (needs scikit-learn, as in the venv scripts/setup.sh makes):
    python3 scripts/linear_reference.py
"""
import json
import os

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge

rng = np.random.RandomState(7)
n, d = 60, 8
x = rng.normal(size=(n, d))
classes = rng.randint(0, 3, size=n)
x[np.arange(n), classes] += 1.5  # some signal, not separable
binary = (x[:, 3] + 0.5 * rng.normal(size=n) > 0.2).astype(int)
value = x @ rng.normal(size=d) + 0.3 * rng.normal(size=n) + 4.0

cases = []
for c in [0.01, 1.0, 100.0]:
    m = LogisticRegression(C=c, tol=1e-12, max_iter=100000).fit(x, classes)
    cases.append({"loss": "softmax", "c": c, "y": classes.tolist(),
                  "weight": m.coef_.tolist(), "bias": m.intercept_.tolist()})
    b = LogisticRegression(C=c, tol=1e-12, max_iter=100000).fit(x, binary)
    cases.append({"loss": "sigmoid", "c": c, "y": binary.tolist(),
                  "weight": b.coef_.tolist(), "bias": b.intercept_.tolist()})
    # Ridge minimizes ||y - Xw - b||^2 + alpha ||w||^2, which is tandem's
    # 1/2 ||w||^2 + C * sum 1/2 (y - z)^2 times 2/C: alpha = 1/C.
    r = Ridge(alpha=1.0 / c, tol=1e-12, solver="cholesky").fit(x, value)
    cases.append({"loss": "squared", "c": c, "y": value.tolist(),
                  "weight": [r.coef_.tolist()], "bias": [float(r.intercept_)]})

out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "linear_reference.json")
with open(out, "w") as f:
    json.dump({"generator": "scripts/linear_reference.py", "x": x.tolist(), "cases": cases}, f)
print(f"wrote {out}: {len(cases)} cases")
