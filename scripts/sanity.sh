#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection, offline-safe.
#
# ansible-test insists on a .../ansible_collections/<namespace>/<name> layout,
# so the collection's files (tracked plus untracked-but-not-ignored, i.e. what
# the next commit would contain) are copied into
#   ${TMPDIR:-/tmp}/django_ops.oauth_repair-sanity-<hash of repo path>/ansible_collections/django_ops/oauth_repair
# (outside the repository: inside it, git would report the copy as ignored and
# ansible-test would find no targets) and ansible-test runs there with `--local --python 3.11` (the controller is
# .venv; each sanity test still gets its own managed virtualenv under
# ~/.ansible/test/venv, installed from PyPI on first use and reused after).
#
# Offline pip bootstrap: ansible-test creates those virtualenvs without pip and
# bootstraps pip by downloading get-pip.py from a host that is not reachable
# here. The download is skipped when ~/.ansible/test/cache/get_pip_<ver>.py
# exists (ansible_test/_util/target/setup/requirements.py, bootstrap()), so we
# put a small stand-in there that installs pip with the stdlib's `ensurepip`
# and then upgrades it to the exact version ansible-test asked for.
#
# Usage: scripts/sanity.sh [extra ansible-test sanity args, e.g. --test pep8]
# Env:   SANITY_SKIP_TESTS="a b"  extra sanity tests to skip (none by default)
#        SANITY_WORKDIR=/path       where the temporary collection tree goes
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY_VERSION="3.11"
NS="django_ops"
NAME="oauth_repair"
WORK="${SANITY_WORKDIR:-${TMPDIR:-/tmp}/$NS.$NAME-sanity-$(printf %s "$ROOT" | sha256sum | cut -c1-8)}"
COLL="$WORK/ansible_collections/$NS/$NAME"

log() { printf '[sanity] %s\n' "$*" >&2; }
die() { printf '[sanity] ERROR: %s\n' "$*" >&2; exit 1; }

[ -x "$VENV/bin/ansible-test" ] || die "$VENV/bin/ansible-test missing: run scripts/setup.sh first"
export PATH="$VENV/bin:$PATH"
export PIP_DISABLE_PIP_VERSION_CHECK=1

# --- 1. offline stand-in for get-pip.py ---------------------------------------
PIP_VERSION="$("$VENV/bin/python" - "$PY_VERSION" <<'PY'
import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version=sys.argv[1]))["pip"])
PY
)"
GET_PIP="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
SHIM_MARK="# django_ops.oauth_repair offline get-pip stand-in v1"
if [ ! -f "$GET_PIP" ] || grep -q "^# django_ops.oauth_repair offline get-pip stand-in" "$GET_PIP"; then
    mkdir -p "$(dirname "$GET_PIP")"
    cat >"$GET_PIP.tmp" <<PY
$SHIM_MARK
"""Stand-in for get-pip.py ${PIP_VERSION}, written by scripts/sanity.sh.

ansible-test runs it (through quiet_pip.py) inside a fresh virtualenv created
--without-pip, as: get-pip.py [pip options] pip==X [--no-setuptools] [--no-wheel].
"""
import subprocess
import sys

args = sys.argv[1:]
flags = {"--no-setuptools", "--no-wheel"}
pip_args = [a for a in args if a not in flags]

# 1. a pip from the wheel bundled with the interpreter (no network needed)
subprocess.check_call([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"],
                      stdout=subprocess.DEVNULL)
# 2. the exact pip version ansible-test pinned, from the package index
subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", *pip_args])
# 3. get-pip.py would not have installed setuptools with --no-setuptools
if "--no-setuptools" in args:
    subprocess.call([sys.executable, "-m", "pip", "uninstall", "--yes", "--quiet", "setuptools"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
PY
    mv "$GET_PIP.tmp" "$GET_PIP"
fi

# --- 2. shellcheck, so the shellcheck sanity test runs instead of skipping ----
if ! command -v shellcheck >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
        log "installing shellcheck (Debian package) for the shellcheck sanity test"
        export DEBIAN_FRONTEND=noninteractive
        if ! apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1; then
            apt-get update -qq >/dev/null
            apt-get install -y -qq --no-install-recommends shellcheck >/dev/null
        fi
    else
        log "WARNING: shellcheck not found; the shellcheck sanity test will be skipped"
    fi
fi

# --- 3. the collection tree ansible-test needs ---------------------------------
log "copying the collection into $COLL"
rm -rf "$WORK"
mkdir -p "$COLL"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked files plus new files that .gitignore does not exclude, minus
    # tracked files deleted in the work tree
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done \
        | tar --null --no-recursion -T - -cf -) | tar -xf - -C "$COLL"
else
    (cd "$ROOT" && tar --exclude=./.git --exclude=./.venv --exclude=./.cache --exclude=./.ansible \
        --exclude=./build --exclude=./tests/output --exclude='__pycache__' --exclude='*.pyc' \
        --exclude=./.pytest_cache -cf - .) | tar -xf - -C "$COLL"
fi

# --- 4. run ----------------------------------------------------------------------
skip_args=()
for t in ${SANITY_SKIP_TESTS:-}; do skip_args+=(--skip-test "$t"); done

cd "$COLL"
log "ansible-test sanity --local --python $PY_VERSION ${skip_args[*]:-} $*"
set +e
ansible-test sanity --local --python "$PY_VERSION" --color no "${skip_args[@]}" "$@"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    log "FAILED (exit $rc); results kept in $COLL/tests/output"
fi
exit "$rc"
