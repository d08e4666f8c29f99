-- Field report 000 translated to PostgreSQL, as the site stood BEFORE `manage.py migrate` ran DOT's 0004:
-- tests/data/seed000_postgresql.sql without what 0004 adds (application.algorithm, the idtoken table,
-- accesstoken.id_token_id, grant.nonce/claims), with Django's auth_user (integer id) as the user table and
-- a site table (shop_order) whose foreign key to the application has ON DELETE/ON UPDATE actions.
-- serial (int4) ids for application and grant; PostgreSQL accepted the bigint -> integer foreign keys.
-- auth_user and django_migrations exist already (manage.py migrate auth).
CREATE TABLE "oauth2_provider_application" (
  "id" serial NOT NULL PRIMARY KEY,
  "client_id" varchar(100) NOT NULL UNIQUE,
  "redirect_uris" text NOT NULL,
  "client_type" varchar(32) NOT NULL,
  "authorization_grant_type" varchar(32) NOT NULL,
  "client_secret" varchar(255) NOT NULL,
  "name" varchar(255) NOT NULL,
  "user_id" integer NOT NULL,
  "skip_authorization" boolean NOT NULL
);
CREATE INDEX "oauth2_provider_application_9d667c2b" ON "oauth2_provider_application" ("client_secret");
CREATE INDEX "oauth2_provider_application_user_id_79829054" ON "oauth2_provider_application" ("user_id");
ALTER TABLE "oauth2_provider_application" ADD CONSTRAINT "oauth2_provider_application_user_id_79829054_fk_auth_user_id"
  FOREIGN KEY ("user_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_accesstoken" (
  "id" bigserial NOT NULL PRIMARY KEY,
  "token" varchar(255) NOT NULL UNIQUE,
  "expires" timestamp with time zone NOT NULL,
  "scope" text NOT NULL,
  "application_id" bigint NULL,
  "user_id" integer NULL,
  "created" timestamp with time zone NOT NULL,
  "updated" timestamp with time zone NOT NULL,
  "source_refresh_token_id" bigint NULL UNIQUE
);
CREATE INDEX "oauth2_provider_accesstoken_application_id_b22886e1" ON "oauth2_provider_accesstoken" ("application_id");
CREATE INDEX "oauth2_provider_accesstoken_user_id_6e4c9a65" ON "oauth2_provider_accesstoken" ("user_id");
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_application_id_b22886e1_fk_oauth2_pr"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_accesstoken_user_id_6e4c9a65_fk_auth_user_id"
  FOREIGN KEY ("user_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "oauth2_provider_grant" (
  "id" serial NOT NULL PRIMARY KEY,
  "code" varchar(255) NOT NULL,
  "expires" timestamp with time zone NOT NULL,
  "redirect_uri" text NOT NULL,
  "scope" text NOT NULL,
  "application_id" integer NOT NULL,
  "user_id" integer NOT NULL,
  "code_challenge" varchar(128) NOT NULL,
  "code_challenge_method" varchar(10) NOT NULL
);
CREATE INDEX "oauth2_provider_grant_application_id_81923564" ON "oauth2_provider_grant" ("application_id");
CREATE INDEX "oauth2_provider_grant_user_id_e8f62af8" ON "oauth2_provider_grant" ("user_id");
CREATE INDEX "oauth2_provider_grant_c1336794" ON "oauth2_provider_grant" ("code");
ALTER TABLE "oauth2_provider_grant" ADD CONSTRAINT "oauth2_application_id_81923564_fk_oauth2_provider_application_id"
  FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_grant" ADD CONSTRAINT "oauth2_provider_grant_user_id_e8f62af8_fk_auth_user_id"
  FOREIGN KEY ("user_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;

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
ALTER TABLE "oauth2_provider_refreshtoken" ADD CONSTRAINT "oauth2_provider_refreshtoken_user_id_da837fce_fk_auth_user_id"
  FOREIGN KEY ("user_id") REFERENCES "auth_user" ("id") DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE "oauth2_provider_accesstoken" ADD CONSTRAINT "oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr"
  FOREIGN KEY ("source_refresh_token_id") REFERENCES "oauth2_provider_refreshtoken" ("id") DEFERRABLE INITIALLY DEFERRED;

CREATE TABLE "shop_order" (
  "id" serial NOT NULL PRIMARY KEY,
  "application_id" integer NOT NULL,
  "total" integer NOT NULL,
  CONSTRAINT "shop_order_application_fk" FOREIGN KEY ("application_id") REFERENCES "oauth2_provider_application" ("id")
    ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "shop_order_application_id" ON "shop_order" ("application_id");

INSERT INTO "django_migrations" ("app", "name", "applied") VALUES
 ('oauth2_provider', '0001_initial', '2016-03-01 10:00:00+00'),
 ('oauth2_provider', '0002_08_updates', '2016-03-01 10:00:01+00'),
 ('oauth2_provider', '0003_auto_20160316_1503', '2016-03-20 10:00:00+00'),
 ('oauth2_provider', '0004_auto_20160525_1623', '2016-06-01 10:00:00+00'),
 ('oauth2_provider', '0005_auto_20170514_1141', '2017-06-01 10:00:00+00'),
 ('oauth2_provider', '0006_auto_20171214_2232', '2018-01-10 10:00:00+00'),
 ('oauth2_provider', '0002_auto_20190406_1805', '2019-05-01 10:00:00+00'),
 ('oauth2_provider', '0003_auto_20201211_1314', '2021-01-05 10:00:00+00');
