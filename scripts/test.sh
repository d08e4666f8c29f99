#!/usr/bin/env bash
# Run the test suite: pytest, then every molecule scenario if there is one.
# Extra arguments are passed to pytest (e.g. scripts/test.sh -k sqlite -x).
# Exit status is non-zero when anything fails, and also when pytest collects
# no test at all (its exit code 5): this project always has tests, so an empty
# run means something is broken (wrong paths, import errors hidden by -q, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/python" ] || { echo "[test] $VENV missing: run scripts/setup.sh first" >&2; exit 1; }

export PATH="$VENV/bin:$PATH"
# The collection by FQCN for every ansible process the tests start, whatever
# their working directory (molecule writes its own ansible.cfg, so the repo's
# ansible.cfg alone is not enough there).
export ANSIBLE_COLLECTIONS_PATH="$ROOT/.cache/collections:$HOME/.ansible/collections:/usr/share/ansible/collections"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}" PY_COLORS="${PY_COLORS:-0}"

set +e
"$VENV/bin/python" -m pytest -n "${TEST_WORKERS:-2}" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "[test] FAILED: pytest collected no tests (exit 5); this project always has tests" >&2
    exit 5
elif [ "$rc" -ne 0 ]; then
    echo "[test] FAILED: pytest exited $rc" >&2
    exit "$rc"
fi

# Molecule scenarios, only once some exist (molecule/<scenario>/molecule.yml).
shopt -s nullglob
scenarios=(molecule/*/molecule.yml)
shopt -u nullglob
if [ "${#scenarios[@]}" -gt 0 ]; then
    echo "[test] molecule test --all (${#scenarios[@]} scenario(s))" >&2
    molecule test --all
else
    echo "[test] no molecule scenarios (molecule/*/molecule.yml); skipping molecule" >&2
fi
