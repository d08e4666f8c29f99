#!/usr/bin/env bash
# Build the collection artifact into build/, install that tarball into a
# throwaway collections path and run django_ops.oauth_repair.oauth_info from
# it against a throwaway SQLite file: proves the built artifact is complete
# and its modules resolve by FQCN without the repository on the path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
[ -x "$VENV/bin/ansible-galaxy" ] || { echo "[build] $VENV missing: run scripts/setup.sh first" >&2; exit 1; }
export PATH="$VENV/bin:$PATH" ANSIBLE_NOCOLOR=1

log() { printf '[build] %s\n' "$*" >&2; }

rm -rf build
mkdir -p build
ansible-galaxy collection build --force --output-path build .
shopt -s nullglob
tarballs=(build/django_ops-oauth_repair-*.tar.gz)
shopt -u nullglob
[ "${#tarballs[@]}" -eq 1 ] || { log "expected one tarball in build/, found ${#tarballs[@]}"; exit 1; }
TARBALL="$ROOT/${tarballs[0]}"
log "built $TARBALL ($(tar -tzf "$TARBALL" | wc -l) entries)"

# Nothing from the development tree may leak into the artifact.
if leaked="$(tar -tzf "$TARBALL" | grep -E '(^|/)(\.venv|\.cache|\.git|\.ansible|build|__pycache__|\.pytest_cache)(/|$)|^tests/output/|\.tar\.gz$')"; then
    log "artifact contains files that build_ignore should exclude:"
    printf '%s\n' "$leaked" | head -20 >&2
    exit 1
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/oauth_repair-build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
ANSIBLE_COLLECTIONS_PATH="$TMP/collections" \
    ansible-galaxy collection install --offline --force -p "$TMP/collections" "$TARBALL" >/dev/null
INSTALLED="$TMP/collections/ansible_collections/django_ops/oauth_repair"
[ -f "$INSTALLED/MANIFEST.json" ] || { log "install of the tarball failed"; exit 1; }
log "installed into $INSTALLED"

if [ ! -f "$INSTALLED/plugins/modules/oauth_info.py" ]; then
    log "SKIP smoke run: plugins/modules/oauth_info.py does not exist yet"
    exit 0
fi

# A throwaway SQLite database of a minimal Django site using
# django-oauth-toolkit (auth, contenttypes and oauth2_provider migrated).
DB="$TMP/throwaway.sqlite3"
mkdir -p "$TMP/site"
cat >"$TMP/site/throwaway_settings.py" <<PY
SECRET_KEY = "throwaway"
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "oauth2_provider"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "$DB"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PY
(cd "$TMP/site" && DJANGO_SETTINGS_MODULE=throwaway_settings PYTHONPATH="$TMP/site" \
    "$VENV/bin/python" -c 'import django; from django.core.management import call_command; django.setup(); call_command("migrate", verbosity=0)')
log "made $DB (Django + django-oauth-toolkit migrations)"

# Run from the temp dir, with only the temp collections path and an empty
# ansible.cfg, so the module can only come from the installed tarball.
cd "$TMP"
export ANSIBLE_CONFIG="$TMP/empty.cfg" ANSIBLE_COLLECTIONS_PATH="$TMP/collections" \
    ANSIBLE_LOCALHOST_WARNING=0 ANSIBLE_INVENTORY_UNPARSED_WARNING=0
: >"$ANSIBLE_CONFIG"
log "ansible localhost -m django_ops.oauth_repair.oauth_info -a 'engine=sqlite db=$DB'"
set +e
ansible localhost -m django_ops.oauth_repair.oauth_info -a "engine=sqlite db=$DB" >"$TMP/out.txt" 2>&1
rc=$?
set -e
head -n 15 "$TMP/out.txt"
log "... ($(wc -l <"$TMP/out.txt") lines of output in all)"
if [ "$rc" -ne 0 ]; then
    log "FAILED: django_ops.oauth_repair.oauth_info from the installed tarball exited $rc"
    exit "$rc"
fi
log "OK: django_ops.oauth_repair.oauth_info ran by FQCN from the installed tarball"
