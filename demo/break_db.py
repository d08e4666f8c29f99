"""Build the demo database, broken the way the field reports describe (docs/field-reports.md).

1. The site runs DOT's migrations up to 0011 and issues OAuth tokens (real Django, real DOT).
2. An upgrade to DOT 3.0.0 died in 0012 the way it does where DDL is not transactional
   (field report 004): token_checksum exists, every row holds '', no unique index, 0012 unrecorded.
3. django_migrations still has rows from before DOT 1.3's squash (field report 000).
4. All of that with the release the site ran before (DEMO_RELEASE=before-swap: DOT's own Application model),
   while the release being deployed (demosite/settings.py) swaps OAUTH2_PROVIDER_APPLICATION_MODEL to
   demoapp.DemoApplication (field report 001): its migrate stops with InconsistentMigrationHistory.
Prints the tokens (JSON) so that the demo can check they still authenticate afterwards.
"""
import json
import os
import sqlite3
import sys

import django

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "site"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demosite.settings")
os.environ["DEMO_RELEASE"] = "before-swap"
django.setup()

from datetime import timedelta  # noqa: E402

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.utils import timezone  # noqa: E402

call_command("migrate", "auth", verbosity=0)
call_command("migrate", "oauth2_provider", "0011", verbosity=0)

from oauth2_provider.models import get_access_token_model, get_application_model  # noqa: E402

# At 0011 the models of DOT 3.4 already have token_checksum: write through SQL what the ORM of
# the old release would have written.
db = sqlite3.connect(os.environ["DEMO_DB"])
user = get_user_model().objects.create_user("demo", password="demo-password")
db.execute(
    "INSERT INTO oauth2_provider_application (client_id, redirect_uris, client_type, authorization_grant_type,"
    " client_secret, name, user_id, skip_authorization, created, updated, algorithm,"
    " post_logout_redirect_uris, hash_client_secret, allowed_origins)"
    " VALUES ('demo-client', '', 'confidential', 'client-credentials', 'demo-secret-hashed', 'Demo', ?, 0,"
    " datetime('now'), datetime('now'), '', '', 1, '')", (user.pk,))
app_id = db.execute("SELECT id FROM oauth2_provider_application WHERE client_id = 'demo-client'").fetchone()[0]
tokens = ["demo-token-%04d" % i for i in range(200)] + ["démo-tøkén-€"]
expires = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S")
db.executemany(
    "INSERT INTO oauth2_provider_accesstoken (token, expires, scope, application_id, user_id, created, updated)"
    " VALUES (?, ?, 'read write', ?, ?, datetime('now'), datetime('now'))",
    [(t, expires, app_id, user.pk) for t in tokens])
# DOT 3.0.0's 0012 died after adding the column: every row got ''.
db.execute("ALTER TABLE oauth2_provider_accesstoken ADD COLUMN token_checksum varchar(64) NOT NULL DEFAULT ''")
db.executemany("INSERT INTO django_migrations (app, name, applied) VALUES ('oauth2_provider', ?, '2017-01-01')",
               [("0002_08_updates",), ("0003_auto_20160316_1503",), ("0004_auto_20160525_1623",)])
db.commit()
db.close()
assert get_application_model().objects.count() == 1
assert get_access_token_model().objects.count() == len(tokens)
print(json.dumps({"tokens": [tokens[0], tokens[-1]]}))
