-- django_ops.oauth_repair: SQL Server catalog snapshot, format 1.
-- Read-only: it reads sys.* catalog views and the django_migrations table, and changes nothing.
-- It prints one JSON document describing the tables of the login's default schema (usually dbo):
-- columns, indexes, constraints, foreign keys, user-created statistics, row counts and the
-- django_migrations rows. Give that file to oauth_info / oauth_repair as catalog_snapshot.
-- Needs SQL Server 2016 (13.x) or later, or Azure SQL. See docs/sqlserver.md for the sqlcmd command.
-- The same query is plugins/module_utils/dialects/mssql.py CATALOG_QUERY (a test keeps them equal).
SET NOCOUNT ON;
DECLARE @schema_id int = SCHEMA_ID();
DECLARE @migrations nvarchar(max);
IF OBJECT_ID(N'django_migrations', N'U') IS NOT NULL
    EXEC sp_executesql
        N'SET @m = (SELECT app, name, CONVERT(nvarchar(33), applied, 126) AS applied FROM django_migrations ORDER BY id FOR JSON PATH);',
        N'@m nvarchar(max) OUTPUT', @m = @migrations OUTPUT;
DECLARE @snapshot nvarchar(max) = (
SELECT
    N'django_ops.oauth_repair/mssql-catalog' AS [format],
    1 AS [format_version],
    CONVERT(nvarchar(33), SYSUTCDATETIME(), 126) AS [taken_at],
    DB_NAME() AS [database],
    SCHEMA_NAME(@schema_id) AS [schema],
    JSON_QUERY((SELECT
        CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)) AS [product_version],
        CAST(SERVERPROPERTY('ProductLevel') AS nvarchar(128)) AS [product_level],
        CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS [edition],
        CAST(SERVERPROPERTY('EngineEdition') AS int) AS [engine_edition],
        (SELECT d.compatibility_level FROM sys.databases d WHERE d.database_id = DB_ID()) AS [compatibility_level]
        FOR JSON PATH, WITHOUT_ARRAY_WRAPPER)) AS [server],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [name],
        (SELECT SUM(p.rows) FROM sys.partitions p
          WHERE p.object_id = t.object_id AND p.index_id IN (0, 1)) AS [rows]
        FROM sys.tables t
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name
        FOR JSON PATH), N'[]')) AS [tables],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], c.name AS [name], c.column_id AS [column_id],
        COALESCE(TYPE_NAME(c.system_type_id), TYPE_NAME(c.user_type_id)) AS [type], c.max_length AS [max_length],
        c.precision AS [precision], c.scale AS [scale],
        c.is_nullable AS [nullable], c.is_identity AS [identity],
        CAST(ic.seed_value AS nvarchar(40)) AS [identity_seed],
        CAST(ic.increment_value AS nvarchar(40)) AS [identity_increment],
        c.is_computed AS [computed], cc.definition AS [computed_definition],
        c.collation_name AS [collation],
        dc.name AS [default_name], dc.definition AS [default_definition]
        FROM sys.columns c
        JOIN sys.tables t ON t.object_id = c.object_id
        LEFT JOIN sys.identity_columns ic ON ic.object_id = c.object_id AND ic.column_id = c.column_id
        LEFT JOIN sys.computed_columns cc ON cc.object_id = c.object_id AND cc.column_id = c.column_id
        LEFT JOIN sys.default_constraints dc ON dc.object_id = c.default_object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name, c.column_id
        FOR JSON PATH), N'[]')) AS [columns],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], i.name AS [name], i.index_id AS [index_id], i.type_desc AS [type],
        i.is_unique AS [unique], i.is_primary_key AS [primary],
        i.is_unique_constraint AS [unique_constraint],
        i.filter_definition AS [filter], i.is_disabled AS [disabled],
        JSON_QUERY(ISNULL((SELECT
            COL_NAME(ixc.object_id, ixc.column_id) AS [name], ixc.key_ordinal AS [key_ordinal],
            ixc.is_descending_key AS [descending], ixc.is_included_column AS [included]
            FROM sys.index_columns ixc
            WHERE ixc.object_id = i.object_id AND ixc.index_id = i.index_id
            ORDER BY ixc.is_included_column, ixc.key_ordinal, ixc.index_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.indexes i
        JOIN sys.tables t ON t.object_id = i.object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0 AND i.type > 0 AND i.is_hypothetical = 0
        ORDER BY t.name, i.index_id
        FOR JSON PATH), N'[]')) AS [indexes],
    JSON_QUERY(ISNULL((SELECT
        fk.name AS [name],
        OBJECT_SCHEMA_NAME(fk.parent_object_id) AS [schema], OBJECT_NAME(fk.parent_object_id) AS [table],
        OBJECT_SCHEMA_NAME(fk.referenced_object_id) AS [ref_schema],
        OBJECT_NAME(fk.referenced_object_id) AS [ref_table],
        (SELECT ki.name FROM sys.indexes ki
          WHERE ki.object_id = fk.referenced_object_id AND ki.index_id = fk.key_index_id) AS [key_index],
        fk.delete_referential_action_desc AS [on_delete], fk.update_referential_action_desc AS [on_update],
        fk.is_disabled AS [disabled], fk.is_not_trusted AS [not_trusted],
        JSON_QUERY(ISNULL((SELECT
            COL_NAME(fkc.parent_object_id, fkc.parent_column_id) AS [column],
            COL_NAME(fkc.referenced_object_id, fkc.referenced_column_id) AS [ref_column]
            FROM sys.foreign_key_columns fkc
            WHERE fkc.constraint_object_id = fk.object_id
            ORDER BY fkc.constraint_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.foreign_keys fk
        WHERE OBJECTPROPERTY(fk.parent_object_id, 'SchemaId') = @schema_id
           OR OBJECTPROPERTY(fk.referenced_object_id, 'SchemaId') = @schema_id
        ORDER BY OBJECT_NAME(fk.parent_object_id), fk.name
        FOR JSON PATH), N'[]')) AS [foreign_keys],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], ck.name AS [name],
        CASE WHEN ck.parent_column_id > 0 THEN COL_NAME(ck.parent_object_id, ck.parent_column_id) END AS [column],
        ck.definition AS [definition], ck.is_disabled AS [disabled], ck.is_not_trusted AS [not_trusted]
        FROM sys.check_constraints ck
        JOIN sys.tables t ON t.object_id = ck.parent_object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0
        ORDER BY t.name, ck.name
        FOR JSON PATH), N'[]')) AS [check_constraints],
    JSON_QUERY(ISNULL((SELECT
        t.name AS [table], s.name AS [name], s.filter_definition AS [filter],
        JSON_QUERY(ISNULL((SELECT COL_NAME(sc.object_id, sc.column_id) AS [name]
            FROM sys.stats_columns sc
            WHERE sc.object_id = s.object_id AND sc.stats_id = s.stats_id
            ORDER BY sc.stats_column_id
            FOR JSON PATH), N'[]')) AS [columns]
        FROM sys.stats s
        JOIN sys.tables t ON t.object_id = s.object_id
        WHERE t.schema_id = @schema_id AND t.is_ms_shipped = 0 AND s.user_created = 1
        ORDER BY t.name, s.name
        FOR JSON PATH), N'[]')) AS [statistics],
    JSON_QUERY(ISNULL(@migrations, N'[]')) AS [django_migrations]
FOR JSON PATH, WITHOUT_ARRAY_WRAPPER);
SELECT @snapshot AS [snapshot];
