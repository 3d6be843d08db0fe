#!/usr/bin/env bash
# Installs the attrprune package into the freshly created conda env (see attrprune.yaml).
# Snakemake runs this in the working directory, which is the repository root in a normal
# run; for `--directory elsewhere`, export ATTRPRUNE_SRC=<repository root> first.
set -euo pipefail
src="${ATTRPRUNE_SRC:-.}"
if ! grep -qs '^name = "attrprune"' "$src/pyproject.toml"; then
    echo "attrprune post-deploy: '$src' is not the attrprune repository;" \
        "set ATTRPRUNE_SRC to the repository root" >&2
    exit 1
fi
# Dependencies come from attrprune.yaml; editable, so code changes need no env rebuild.
pip install --no-deps -e "$src"
