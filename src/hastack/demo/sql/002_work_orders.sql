-- Work orders: one row per job at a site, partitioned by month, isolated per site by
-- row-level security keyed on the transaction setting app.current_site_id.
CREATE TABLE work_orders (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    site_id     int NOT NULL REFERENCES sites (id),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    status      text NOT NULL DEFAULT 'open'
                CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    priority    int NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);

CREATE INDEX work_orders_site_created ON work_orders (site_id, created_at DESC, id DESC);

-- Rows no month partition takes (far past or future) still land somewhere.
CREATE TABLE work_orders_default PARTITION OF work_orders DEFAULT;

ALTER TABLE work_orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE work_orders FORCE ROW LEVEL SECURITY;
CREATE POLICY site_isolation ON work_orders
    USING (site_id = nullif(current_setting('app.current_site_id', true), '')::int)
    WITH CHECK (site_id = nullif(current_setting('app.current_site_id', true), '')::int);

-- Monthly partitions from last month to `months_ahead` ahead. SECURITY DEFINER so the app
-- role (which owns nothing) can keep them ahead without DDL rights of its own. Partitions are
-- reachable only through the parent (where the policy applies): the app roles get no
-- privilege on them.
CREATE FUNCTION work_orders_ensure_partitions(months_ahead int DEFAULT 3)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
    month_start date;
    part text;
    created int := 0;
BEGIN
    FOR i IN -1..months_ahead LOOP
        month_start := (date_trunc('month', now()) + make_interval(months => i))::date;
        part := format('work_orders_%s', to_char(month_start, 'YYYY_MM'));
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF work_orders FOR VALUES FROM (%L) TO (%L)',
                part, month_start, (month_start + interval '1 month')::date);
            EXECUTE format('REVOKE ALL ON %I FROM PUBLIC, app, readonly', part);
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

REVOKE ALL ON work_orders_default FROM PUBLIC, app, readonly;
REVOKE ALL ON FUNCTION work_orders_ensure_partitions(int) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION work_orders_ensure_partitions(int) TO app;
SELECT work_orders_ensure_partitions(3);
