#!/usr/bin/env bash
# The main job: set up (idempotent), build, check the install, then show what tandem does today:
# embed the TREC demo questions and print nearest neighbours for a few new questions.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --release --quiet --bin tandem --example neighbours
./target/release/tandem doctor
echo
./target/release/examples/neighbours --variant int8
