#!/usr/bin/env bash
# Idempotent setup of the development environment of the collection.
#
#  * creates .venv with Python 3.11 if it is missing (installing Debian's
#    python3 / python3-venv with apt when this is a Debian machine that lacks
#    them),
#  * installs requirements-dev.txt into it, unless the pins are already
#    satisfied (a hash of the requirements files is kept in .venv, so a
#    second run does nothing and takes well under a second),
#  * creates .cache/collections/ansible_collections/django_ops/oauth_repair,
#    a symlink to the repository root, which ansible.cfg puts on the
#    collections path so the collection is found by its FQCN uninstalled.
#
# Environment knobs:
#   PYTHON=/path/to/python3.11   interpreter used to create .venv
#   SETUP_FORCE=1                reinstall the requirements even if the hash matches
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP="$VENV/.requirements.sha256"
WANT_PY="3.11"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

APT_UPDATED=""
apt_install() {
    # apt_install PKG... : install Debian packages, running `apt-get update`
    # once first (only reached when something is actually missing).
    command -v apt-get >/dev/null 2>&1 || die "missing system packages ($*) and no apt-get to install them"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 || die "need root (or sudo) to install: $*"
        sudo="sudo"
    fi
    if [ -z "$APT_UPDATED" ]; then
        log "apt-get update"
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

py_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }

find_python() {
    local cand
    for cand in "${PYTHON:-}" python3.11 python3; do
        [ -n "$cand" ] || continue
        command -v "$cand" >/dev/null 2>&1 || continue
        if [ "$(py_version "$cand")" = "$WANT_PY" ]; then
            command -v "$cand"
            return 0
        fi
    done
    return 1
}

requirements_hash() {
    # Hash of everything that decides what .venv must contain.
    {
        echo "python=$("$VENV/bin/python" -c 'import sys; print(sys.version)' 2>/dev/null || echo none)"
        cat requirements.txt requirements-dev.txt
    } | sha256sum | cut -d' ' -f1
}

pins_satisfied() {
    # Offline check: every `name==version` pin of requirements-dev.txt (and
    # the files it includes with -r) is installed in .venv at that version.
    "$VENV/bin/python" - requirements-dev.txt <<'PY'
import re, sys
from importlib import metadata
from pathlib import Path

def pins(path, seen=set()):
    path = Path(path).resolve()
    if path in seen:
        return
    seen.add(path)
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            yield from pins(path.parent / line.split(None, 1)[1])
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)\s*$", line)
        if not m:
            sys.exit(1)  # not a plain pin: let pip decide
        yield m.group(1), m.group(3)

for name, version in pins(sys.argv[1]):
    try:
        if metadata.version(name) != version:
            sys.exit(1)
    except metadata.PackageNotFoundError:
        sys.exit(1)
PY
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] && [ "$(py_version "$VENV/bin/python")" = "$WANT_PY" ]; then
        return 0
    fi
    if [ -e "$VENV" ]; then
        log "removing broken or wrong-version $VENV"
        rm -rf "$VENV"
    fi
    local py
    if ! py="$(find_python)"; then
        log "no Python $WANT_PY found; installing Debian's python3"
        apt_install python3 python3-venv python3-pip
        py="$(find_python)" || die "Python $WANT_PY is required (python3 is $(py_version python3))"
    fi
    if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        log "$py lacks venv/ensurepip; installing python3-venv"
        apt_install python3-venv "python${WANT_PY}-venv"
    fi
    log "creating $VENV with $py"
    "$py" -m venv "$VENV"
}

ensure_requirements() {
    local want
    want="$(requirements_hash)"
    if [ -z "${SETUP_FORCE:-}" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        log "requirements up to date (hash match)"
        return 0
    fi
    if [ -z "${SETUP_FORCE:-}" ] && pins_satisfied; then
        log "requirements already satisfied; recording hash"
    else
        log "installing requirements-dev.txt into .venv (a fresh install takes a few minutes)"
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip
        "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r requirements-dev.txt
        pins_satisfied || die "requirements-dev.txt pins are still not satisfied after pip install"
    fi
    requirements_hash >"$STAMP"
}

ensure_collection_link() {
    # The link is relative so the tree can be copied or moved as a whole.
    local dir="$ROOT/.cache/collections/ansible_collections/django_ops"
    local link="$dir/oauth_repair"
    local target="../../../.."
    mkdir -p "$dir"
    if [ -L "$link" ] && [ "$(readlink "$link")" = "$target" ]; then
        return 0
    fi
    rm -rf "$link"
    ln -s "$target" "$link"
    [ -f "$link/galaxy.yml" ] || die "collection link $link does not reach the repository root"
    log "linked $link -> repository root"
}

ensure_venv
ensure_requirements
ensure_collection_link
log "ready: $VENV ($("$VENV/bin/python" --version 2>&1)), ansible-core $("$VENV/bin/python" -c 'from ansible.release import __version__; print(__version__)')"
