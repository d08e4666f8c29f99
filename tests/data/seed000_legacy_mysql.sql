-- Field report 000 (shared/seeds/000_*.txt) on MariaDB, as the site stood BEFORE `manage.py migrate`
-- ran DOT's 0004: tables created by DOT < 1.3 under an old Django (int(11) ids for application and grant,
-- old index names), later migrated to 0003 by a DOT whose foreign key columns to the application are
-- bigint (accesstoken/refreshtoken.application_id: InnoDB refused their foreign keys, so there are none),
-- created/updated missing from application and grant, the pre-squash migration names still recorded.
-- It is tests/data/seed000_mysql.sql without what 0004 adds (application.algorithm, the idtoken table,
-- accesstoken.id_token_id, grant.nonce/claims), with Django's auth_user (int id) as the user table, and a
-- site table (shop_order) whose foreign key to the application has ON DELETE/ON UPDATE actions.
-- auth_user and django_migrations exist already (manage.py migrate auth).
CREATE TABLE `oauth2_provider_application` (
 `id` int(11) NOT NULL AUTO_INCREMENT,
 `client_id` varchar(100) NOT NULL,
 `redirect_uris` longtext NOT NULL,
 `client_type` varchar(32) NOT NULL,
 `authorization_grant_type` varchar(32) NOT NULL,
 `client_secret` varchar(255) NOT NULL,
 `name` varchar(255) NOT NULL,
 `user_id` int(11) NOT NULL,
 `skip_authorization` tinyint(1) NOT NULL,
 PRIMARY KEY (`id`),
 UNIQUE KEY `client_id` (`client_id`),
 KEY `oauth2_provider_application_9d667c2b` (`client_secret`),
 KEY `oauth2_provider_application_user_id_79829054_fk_auth_user_id` (`user_id`),
 CONSTRAINT `oauth2_provider_application_user_id_79829054_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8;
CREATE TABLE `oauth2_provider_accesstoken` (
 `id` bigint(20) NOT NULL AUTO_INCREMENT,
 `token` varchar(255) NOT NULL,
 `expires` datetime(6) NOT NULL,
 `scope` longtext NOT NULL,
 `application_id` bigint(20) DEFAULT NULL,
 `user_id` int(11) DEFAULT NULL,
 `created` datetime(6) NOT NULL,
 `updated` datetime(6) NOT NULL,
 `source_refresh_token_id` bigint(20) DEFAULT NULL,
 PRIMARY KEY (`id`),
 UNIQUE KEY `token` (`token`),
 UNIQUE KEY `source_refresh_token_id` (`source_refresh_token_id`),
 KEY `oauth2_provider_accesstoken_user_id_6e4c9a65_fk_auth_user_id` (`user_id`),
 CONSTRAINT `oauth2_provider_accesstoken_user_id_6e4c9a65_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
CREATE TABLE `oauth2_provider_grant` (
 `id` int(11) NOT NULL AUTO_INCREMENT,
 `code` varchar(255) NOT NULL,
 `expires` datetime(6) NOT NULL,
 `redirect_uri` longtext NOT NULL,
 `scope` longtext NOT NULL,
 `application_id` int(11) NOT NULL,
 `user_id` int(11) NOT NULL,
 `code_challenge` varchar(128) NOT NULL,
 `code_challenge_method` varchar(10) NOT NULL,
 PRIMARY KEY (`id`),
 KEY `oauth2_application_id_81923564_fk_oauth2_provider_application_id` (`application_id`),
 KEY `oauth2_provider_grant_user_id_e8f62af8_fk_auth_user_id` (`user_id`),
 KEY `oauth2_provider_grant_c1336794` (`code`),
 CONSTRAINT `oauth2_application_id_81923564_fk_oauth2_provider_application_id` FOREIGN KEY (`application_id`) REFERENCES `oauth2_provider_application` (`id`),
 CONSTRAINT `oauth2_provider_grant_user_id_e8f62af8_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
CREATE TABLE `oauth2_provider_refreshtoken` (
 `id` bigint(20) NOT NULL AUTO_INCREMENT,
 `token` varchar(255) NOT NULL,
 `access_token_id` bigint(20) DEFAULT NULL,
 `application_id` bigint(20) NOT NULL,
 `user_id` int(11) NOT NULL,
 `created` datetime(6) NOT NULL,
 `updated` datetime(6) NOT NULL,
 `revoked` datetime(6) DEFAULT NULL,
 PRIMARY KEY (`id`),
 UNIQUE KEY `access_token_id` (`access_token_id`),
 UNIQUE KEY `oauth2_provider_refreshtoken_token_revoked_af8a5134_uniq` (`token`,`revoked`),
 KEY `oauth2_provider_refreshtoken_user_id_da837fce_fk_auth_user_id` (`user_id`),
 CONSTRAINT `oauth2_provider_refr_access_token_id_775e84e8_fk_oauth2_pr` FOREIGN KEY (`access_token_id`) REFERENCES `oauth2_provider_accesstoken` (`id`),
 CONSTRAINT `oauth2_provider_refreshtoken_user_id_da837fce_fk_auth_user_id` FOREIGN KEY (`user_id`) REFERENCES `auth_user` (`id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
ALTER TABLE `oauth2_provider_accesstoken` ADD CONSTRAINT `oauth2_provider_acce_source_refresh_token_e66fbc72_fk_oauth2_pr` FOREIGN KEY (`source_refresh_token_id`) REFERENCES `oauth2_provider_refreshtoken` (`id`);
CREATE TABLE `shop_order` (
 `id` int(11) NOT NULL AUTO_INCREMENT,
 `application_id` int(11) NOT NULL,
 `total` int(11) NOT NULL,
 PRIMARY KEY (`id`),
 KEY `shop_order_application_id` (`application_id`),
 CONSTRAINT `shop_order_application_fk` FOREIGN KEY (`application_id`) REFERENCES `oauth2_provider_application` (`id`) ON DELETE CASCADE ON UPDATE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8;
INSERT INTO `django_migrations` (`app`, `name`, `applied`) VALUES
 ('oauth2_provider', '0001_initial', '2016-03-01 10:00:00'),
 ('oauth2_provider', '0002_08_updates', '2016-03-01 10:00:01'),
 ('oauth2_provider', '0003_auto_20160316_1503', '2016-03-20 10:00:00'),
 ('oauth2_provider', '0004_auto_20160525_1623', '2016-06-01 10:00:00'),
 ('oauth2_provider', '0005_auto_20170514_1141', '2017-06-01 10:00:00'),
 ('oauth2_provider', '0006_auto_20171214_2232', '2018-01-10 10:00:00'),
 ('oauth2_provider', '0002_auto_20190406_1805', '2019-05-01 10:00:00'),
 ('oauth2_provider', '0003_auto_20201211_1314', '2021-01-05 10:00:00');
