-- The database of field report 000 (shared/seeds/000_*.txt) translated to PostgreSQL: the same legacy
-- schema, as an install whose tables were created by DOT < 1.3 under an old Django (AutoField = serial,
-- int4 ids for oauth2_provider_application and oauth2_provider_grant) and later migrated by a newer DOT
-- whose foreign key columns to the application are bigint.
--
-- The one difference with the MariaDB original is what PostgreSQL does with it: a foreign key from a
-- bigint column to an integer primary key is accepted without a word, so migration 0004 did NOT die
-- half-way here. Its foreign keys exist and it is recorded. The width mismatch stays silent until the
-- application ids outgrow int4 (or a bigint id above 2^31 is written into a referencing column).
-- created/updated are missing from application and grant exactly as in the report (pre-1.3 tables),
-- and the pre-squash migration names are still recorded.
CREATE TABLE "django_migrations" (
  "id" serial NOT NULL PRIMARY KEY, "app" varchar(255) NOT NULL, "name" varchar(255) NOT NULL,
  "applied" timestamp with time zone NOT NULL
);
CREATE TABLE "user_user" ("id" serial NOT NULL PRIMARY KEY, "username" varchar(150) NOT NULL);

CREATE TABLE "oauth2_provider_application" (
  "id" serial NOT NULL PRIMARY KEY,
  "client_id" varchar(100) NOT NULL UNIQUE,
  "redirect_uris" text NOT NULL,
  "client_type" varchar(32) NOT NULL,
  "authorization_grant_type" varchar(32) NOT NULL,
  "client_secret" varchar(255) NOT NULL,
  "name" varchar(255) NOT NULL,
  "user_id" integer NOT NULL,
  "skip_authorization" boolean NOT NULL,
  "algorithm" varchar(5) NOT NULL
);
CREATE INDEX "oauth2_provider_application_9d667c2b" ON "oauth2_provider_application" ("client_secret");
CREATE INDEX "oauth2_provider_application_user_id_79829054" ON "oauth2_provider_application" ("user_id");
ALTER TABLE "oauth2_provider_application" ADD CONSTRAINT "oauth2_provider_appl_user_id_79829054_fk_user_user"
  FOREIGN KEY ("user_id") REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_idtoken" (
  "id" bigserial NOT NULL PRIMARY KEY,
  "jti" char(32) NOT NULL UNIQUE,
  "expires" timestamp with time zone NOT NULL,
  "scope" text NOT NULL,
  "created" timestamp with time zone NOT NULL,
  "updated" timestamp with time zone NOT NULL,
  "application_id" bigint NULL,
  "user_id" integer NULL
);
CREATE INDEX "oauth2_provider_idtoken_application_id_08c5ff4f" ON "oauth2_provider_idtoken" ("application_id");
CREATE INDEX "oauth2_provider_idtoken_user_id_dd512b59" ON "oauth2_provider_idtoken" ("user_id");
ALTER TABLE "oauth2_provider_idtoken" ADD CONSTRAINT "oauth2_provider_idto_application_id_08c5ff4f_fk_oauth2_pr"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_idtoken" ADD CONSTRAINT "oauth2_provider_idtoken_user_id_dd512b59_fk_user_user_id"
  FOREIGN KEY ("user_id") REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_accesstoken" (
  "id" bigserial NOT NULL PRIMARY KEY,
  "token" varchar(255) NOT NULL UNIQUE,
  "expires" timestamp with time zone NOT NULL,
  "scope" text NOT NULL,
  "application_id" bigint NULL,
  "user_id" integer NULL,
  "created" timestamp with time zone NOT NULL,
  "updated" timestamp with time zone NOT NULL,
  "source_refresh_token_id" bigint NULL UNIQUE,
  "id_token_id" bigint NULL UNIQUE
);
CREATE INDEX "oauth2_provider_accesstoken_application_id_b22886e1" ON "oauth2_provider_accesstoken" ("application_id");
CREATE INDEX "oauth2_provider_accesstoken_user_id_6e4c9a65" ON "oauth2_provider_accesstoken" ("user_id");
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_application_id_b22886e1_fk_oauth2_pr"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_id_token_id_85db651b_fk_oauth2_pr"
  FOREIGN KEY ("id_token_id") REFERENCES "oauth2_provider_idtoken" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_accesstoken_user_id_6e4c9a65_fk_user_user_id"
  FOREIGN KEY ("user_id") REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_grant" (
  "id" serial NOT NULL PRIMARY KEY,
  "code" varchar(255) NOT NULL,
  "expires" timestamp with time zone NOT NULL,
  "redirect_uri" text NOT NULL,
  "scope" text NOT NULL,
  "application_id" integer NOT NULL,
  "user_id" integer NOT NULL,
  "code_challenge" varchar(128) NOT NULL,
  "code_challenge_method" varchar(10) NOT NULL,
  "nonce" varchar(255) NOT NULL,
  "claims" text NOT NULL
);
CREATE INDEX "oauth2_provider_grant_application_id_81923564" ON "oauth2_provider_grant" ("application_id");
CREATE INDEX "oauth2_provider_grant_user_id_e8f62af8" ON "oauth2_provider_grant" ("user_id");
CREATE INDEX "oauth2_provider_grant_c1336794" ON "oauth2_provider_grant" ("code");
ALTER TABLE "oauth2_provider_grant" ADD CONSTRAINT "oauth2_application_id_81923564_fk_oauth2_provider_application_id"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_grant" ADD CONSTRAINT "oauth2_provider_grant_user_id_e8f62af8_fk_user_user_id"
  FOREIGN KEY ("user_id") REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_refreshtoken" (
  "id" bigserial NOT NULL PRIMARY KEY,
  "token" varchar(255) NOT NULL,
  "access_token_id" bigint NULL UNIQUE,
  "application_id" bigint NOT NULL,
  "user_id" integer NOT NULL,
  "created" timestamp with time zone NOT NULL,
  "updated" timestamp with time zone NOT NULL,
  "revoked" timestamp with time zone NULL,
  CONSTRAINT "oauth2_provider_refreshtoken_token_revoked_af8a5134_uniq" UNIQUE ("token", "revoked")
);
CREATE INDEX "oauth2_provider_refreshtoken_application_id_2d1c311b" ON "oauth2_provider_refreshtoken" ("application_id");
CREATE INDEX "oauth2_provider_refreshtoken_user_id_da837fce" ON "oauth2_provider_refreshtoken" ("user_id");
ALTER TABLE "oauth2_provider_refreshtoken" ADD CONSTRAINT "oauth2_provider_refr_access_token_id_775e84e8_fk_oauth2_pr"
  FOREIGN KEY ("access_token_id") REFERENCES "oauth2_provider_accesstoken" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_refreshtoken" ADD CONSTRAINT "oauth2_provider_refr_application_id_2d1c311b_fk_oauth2_pr"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_refreshtoken" ADD CONSTRAINT "oauth2_provider_refreshtoken_user_id_da837fce_fk_user_user_id"
  FOREIGN KEY ("user_id") REFERENCES "user_user" ("id") DEFERRABLE INITIALLY DEFERRED;

ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr"
  FOREIGN KEY ("source_refresh_token_id") REFERENCES "oauth2_provider_refreshtoken" ("id") DEFERRABLE INITIALLY DEFERRED;

INSERT INTO "django_migrations" ("app", "name", "applied") VALUES
 ('oauth2_provider', '0001_initial', '2016-03-01 10:00:00+00'),
 ('oauth2_provider', '0002_08_updates', '2016-03-01 10:00:01+00'),
 ('oauth2_provider', '0003_auto_20160316_1503', '2016-03-20 10:00:00+00'),
 ('oauth2_provider', '0004_auto_20160525_1623', '2016-06-01 10:00:00+00'),
 ('oauth2_provider', '0005_auto_20170514_1141', '2017-06-01 10:00:00+00'),
 ('oauth2_provider', '0006_auto_20171214_2232', '2018-01-10 10:00:00+00'),
 ('oauth2_provider', '0002_auto_20190406_1805', '2019-05-01 10:00:00+00'),
 ('oauth2_provider', '0003_auto_20201211_1314', '2021-01-05 10:00:00+00'),
 ('oauth2_provider', '0004_auto_20200902_2022', '2022-09-16 10:00:00+00');
INSERT INTO "user_user" ("id", "username") VALUES (1, 'alice'), (2, 'bob');
SELECT setval(pg_get_serial_sequence('"user_user"', 'id'), 2);
INSERT INTO "oauth2_provider_application" ("id", "client_id", "redirect_uris", "client_type", "authorization_grant_type", "client_secret", "name", "user_id", "skip_authorization", "algorithm") VALUES
 (1, 'client-one', 'https://one.example/cb', 'confidential', 'authorization-code', 'secret-one', 'One', 1, false, ''),
 (4, 'client-four', 'https://four.example/cb', 'public', 'client-credentials', 'secret-four', 'Four', 2, true, '');
SELECT setval(pg_get_serial_sequence('"oauth2_provider_application"', 'id'), 4);
INSERT INTO "oauth2_provider_accesstoken" ("id", "token", "expires", "scope", "application_id", "user_id", "created", "updated") VALUES
 (1, 'tok-one', '2030-01-01 00:00:00+00', 'read', 1, 1, '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00'),
 (2, 'tok-two', '2030-01-01 00:00:00+00', 'read write', 4, 2, '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00');
SELECT setval(pg_get_serial_sequence('"oauth2_provider_accesstoken"', 'id'), 2);
INSERT INTO "oauth2_provider_refreshtoken" ("id", "token", "access_token_id", "application_id", "user_id", "created", "updated") VALUES
 (1, 'ref-one', 1, 1, 1, '2020-01-01 00:00:00+00', '2020-01-01 00:00:00+00');
SELECT setval(pg_get_serial_sequence('"oauth2_provider_refreshtoken"', 'id'), 1);
INSERT INTO "oauth2_provider_grant" ("id", "code", "expires", "redirect_uri", "scope", "application_id", "user_id", "code_challenge", "code_challenge_method", "nonce", "claims") VALUES
 (1, 'code-one', '2030-01-01 00:00:00+00', 'https://one.example/cb', 'read', 1, 1, '', '', '', '');
SELECT setval(pg_get_serial_sequence('"oauth2_provider_grant"', 'id'), 1);
