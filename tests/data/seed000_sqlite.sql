-- The database of field report 000 (shared/seeds/000_*.txt) translated to SQLite, as Django's SQLite
-- backend spells the same legacy schema: "integer" for the old AutoField ids of application and grant,
-- "bigint" for the newer foreign key columns. On SQLite both are the same 64-bit INTEGER storage class:
-- the foreign keys were created without complaint (migration 0004 completed and is recorded) and there
-- is no width to mismatch. What does carry over from the report: created/updated missing from
-- application and grant (pre-1.3 tables) and the pre-squash migration names still recorded.
CREATE TABLE "django_migrations" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "applied" datetime NOT NULL);
CREATE TABLE "user_user" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "username" varchar(150) NOT NULL);
CREATE TABLE "oauth2_provider_application" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "client_id" varchar(100) NOT NULL UNIQUE, "redirect_uris" text NOT NULL, "client_type" varchar(32) NOT NULL, "authorization_grant_type" varchar(32) NOT NULL, "client_secret" varchar(255) NOT NULL, "name" varchar(255) NOT NULL, "user_id" integer NOT NULL REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED, "skip_authorization" bool NOT NULL, "algorithm" varchar(5) NOT NULL);
CREATE INDEX "oauth2_provider_application_9d667c2b" ON "oauth2_provider_application" ("client_secret");
CREATE INDEX "oauth2_provider_application_user_id_79829054" ON "oauth2_provider_application" ("user_id");
CREATE TABLE "oauth2_provider_idtoken" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "jti" char(32) NOT NULL UNIQUE, "expires" datetime NOT NULL, "scope" text NOT NULL, "created" datetime NOT NULL, "updated" datetime NOT NULL, "application_id" bigint NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NULL REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE "oauth2_provider_accesstoken" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "token" varchar(255) NOT NULL UNIQUE, "expires" datetime NOT NULL, "scope" text NOT NULL, "application_id" bigint NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NULL REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED, "created" datetime NOT NULL, "updated" datetime NOT NULL, "source_refresh_token_id" bigint NULL UNIQUE REFERENCES "oauth2_provider_refreshtoken" ("id") DEFERRABLE INITIALLY DEFERRED, "id_token_id" bigint NULL UNIQUE REFERENCES "oauth2_provider_idtoken" ("id") DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE "oauth2_provider_grant" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "code" varchar(255) NOT NULL, "expires" datetime NOT NULL, "redirect_uri" text NOT NULL, "scope" text NOT NULL, "application_id" integer NOT NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED, "code_challenge" varchar(128) NOT NULL, "code_challenge_method" varchar(10) NOT NULL, "nonce" varchar(255) NOT NULL, "claims" text NOT NULL);
CREATE INDEX "oauth2_provider_grant_c1336794" ON "oauth2_provider_grant" ("code");
CREATE TABLE "oauth2_provider_refreshtoken" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "token" varchar(255) NOT NULL, "access_token_id" bigint NULL UNIQUE REFERENCES "oauth2_provider_accesstoken" ("id") DEFERRABLE INITIALLY DEFERRED, "application_id" bigint NOT NULL REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED, "user_id" integer NOT NULL REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED, "created" datetime NOT NULL, "updated" datetime NOT NULL, "revoked" datetime NULL);
CREATE UNIQUE INDEX "oauth2_provider_refreshtoken_token_revoked_af8a5134_uniq" ON "oauth2_provider_refreshtoken" ("token", "revoked");
INSERT INTO "django_migrations" ("app", "name", "applied") VALUES
 ('oauth2_provider', '0001_initial', '2016-03-01 10:00:00'),
 ('oauth2_provider', '0002_08_updates', '2016-03-01 10:00:01'),
 ('oauth2_provider', '0003_auto_20160316_1503', '2016-03-20 10:00:00'),
 ('oauth2_provider', '0004_auto_20160525_1623', '2016-06-01 10:00:00'),
 ('oauth2_provider', '0005_auto_20170514_1141', '2017-06-01 10:00:00'),
 ('oauth2_provider', '0006_auto_20171214_2232', '2018-01-10 10:00:00'),
 ('oauth2_provider', '0002_auto_20190406_1805', '2019-05-01 10:00:00'),
 ('oauth2_provider', '0003_auto_20201211_1314', '2021-01-05 10:00:00'),
 ('oauth2_provider', '0004_auto_20200902_2022', '2022-09-16 10:00:00');
INSERT INTO "user_user" ("id", "username") VALUES (1, 'alice'), (2, 'bob');
INSERT INTO "oauth2_provider_application" ("id", "client_id", "redirect_uris", "client_type", "authorization_grant_type", "client_secret", "name", "user_id", "skip_authorization", "algorithm") VALUES
 (1, 'client-one', 'https://one.example/cb', 'confidential', 'authorization-code', 'secret-one', 'One', 1, 0, ''),
 (4, 'client-four', 'https://four.example/cb', 'public', 'client-credentials', 'secret-four', 'Four', 2, 1, '');
INSERT INTO "oauth2_provider_accesstoken" ("id", "token", "expires", "scope", "application_id", "user_id", "created", "updated") VALUES
 (1, 'tok-one', '2030-01-01 00:00:00', 'read', 1, 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00'),
 (2, 'tok-two', '2030-01-01 00:00:00', 'read write', 4, 2, '2020-01-01 00:00:00', '2020-01-01 00:00:00');
INSERT INTO "oauth2_provider_refreshtoken" ("id", "token", "access_token_id", "application_id", "user_id", "created", "updated") VALUES
 (1, 'ref-one', 1, 1, 1, '2020-01-01 00:00:00', '2020-01-01 00:00:00');
INSERT INTO "oauth2_provider_grant" ("id", "code", "expires", "redirect_uri", "scope", "application_id", "user_id", "code_challenge", "code_challenge_method", "nonce", "claims") VALUES
 (1, 'code-one', '2030-01-01 00:00:00', 'https://one.example/cb', 'read', 1, 1, '', '', '', '');
