#!/usr/bin/env bash
# The README's first command (`make demo`): build the bundled demo site's SQLite database broken like the
# field reports (a half-applied checksum migration, pre-squash history rows, and an Application model swapped
# after the first migration), run the rollout playbook on it, prove that Django's own migrate now completes and
# that the tokens issued before the repair still authenticate, and end with the host's report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/.venv/bin:$PATH" ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}" ANSIBLE_STDOUT_CALLBACK=default
export PYTHONDONTWRITEBYTECODE=1
RUN="$ROOT/demo/run"
rm -rf "$RUN" && mkdir -p "$RUN/reports"
export DEMO_DB="$RUN/db.sqlite3"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. Building the demo site's database, broken like field reports 000, 001 and 004 (docs/field-reports.md)"
tokens_json="$(python demo/break_db.py)"
python -c 'import json,sys; print("tokens issued before the repair (sample):", json.loads(sys.argv[1])["tokens"])' "$tokens_json"
if (cd demo/site && python manage.py migrate --noinput >"$RUN/migrate-before.log" 2>&1); then
    echo "unexpected: Django's migrate worked on the broken database" >&2; exit 1
fi
echo "The release being deployed swaps the Application model; Django's own migrate fails on this database:"
tail -1 "$RUN/migrate-before.log"

say "2. ansible-playbook playbooks/repair_oauth.yml (staging: the demo site)"
# The host's report is printed once, at the end (step 4), not also by the playbook (oauth_repair_show_report).
ansible-playbook -i demo/inventory.yml playbooks/repair_oauth.yml \
    -e "{\"oauth_repair_db\": {\"engine\": \"sqlite\", \"name\": \"$DEMO_DB\"}, \"oauth_repair_report_dir\": \"$RUN/reports\",
         \"oauth_repair_show_report\": false}"

say "3. Django's own migrate now completes, and the old tokens still authenticate"
(cd demo/site && python manage.py migrate --noinput | tail -3 && python manage.py makemigrations --check --dry-run)
python - "$tokens_json" <<'PY'
import json, os, sys
sys.path.insert(0, "demo/site")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
import django
django.setup()
from django.test import Client
from oauth2_provider.models import get_application_model
model = get_application_model()
print("applications now in %s (%s): %s" % (model._meta.db_table, model._meta.label,
                                            list(model.objects.values_list("client_id", flat=True))))
assert model._meta.label == "demoapp.DemoApplication" and model.objects.filter(client_id="demo-client").exists()
for token in json.loads(sys.argv[1])["tokens"]:
    status = Client().get("/api/hello/", HTTP_AUTHORIZATION="Bearer " + token).status_code
    print("GET /api/hello/ with a token issued before the repair ->", status)
    assert status == 200, status
PY

say "4. The report ($RUN/reports/demo-site.md; JSON beside it)"
cat "$RUN/reports/demo-site.md"
say "Demo done: repaired, recorded, migrated, tokens still work."
