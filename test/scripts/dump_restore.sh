#!/bin/sh
# TAP: a real pg_dump / pg_restore round trip gives back exactly the data
# that was dumped, seeded rows that were edited or deleted included, and
# the same invoices and KPIs.  Run under test/cluster.sh (PGHOST etc. set).
set -eu
cd "$(dirname "$0")/../.."
dir=$(mktemp -d)
trap 'rm -rf "$dir"; dropdb --if-exists dogdb_dump_src >/dev/null 2>&1; dropdb --if-exists dogdb_dump_dst >/dev/null 2>&1' EXIT
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 "$@"; }

createdb -T template0 dogdb_dump_src
q -d dogdb_dump_src >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT * FROM dogdb_generate_demo_data(200, 6, '2021-01-01', 11);
-- the legacy sample, with its rejects
CREATE SCHEMA legacy;
SET search_path = legacy, public;
\i test/legacy_sample.sql
RESET search_path;
SELECT * FROM dogdb_import_legacy('legacy');
DROP SCHEMA legacy CASCADE;
-- edits of seeded rows, a deleted seeded price, a new plan
UPDATE dogdb.plan_prices SET monthly_price_cents = 60000 WHERE plan_id = 3 AND effective_from = '2019-01-01';
UPDATE dogdb.pricing_plans SET name = 'pro' WHERE plan_id = 2;
INSERT INTO dogdb.plan_prices VALUES (2, 5500, '2021-03-01'), (2, 4800, '2020-01-01');
DELETE FROM dogdb.plan_prices WHERE plan_id = 2 AND effective_from = '2019-01-01';
INSERT INTO dogdb.pricing_plans VALUES (4, 'startup');
INSERT INTO dogdb.plan_prices VALUES (4, 1000, '2019-01-01');
DELETE FROM dogdb.plan_prices WHERE plan_id = 1 AND NOT EXISTS (SELECT FROM dogdb.subscriptions WHERE plan_id = 1);
DELETE FROM dogdb.pricing_plans WHERE plan_id = 1 AND NOT EXISTS (SELECT FROM dogdb.subscriptions WHERE plan_id = 1);
SELECT count(*) FROM dogdb_generate_invoices('2021-01-01');
SELECT count(*) FROM dogdb_generate_invoices('2021-04-01');
SELECT count(*) FROM dogdb_refresh_kpis();
SQL

# every table pg_dump keeps, as sorted text, and the KPIs
snapshot() {
	q -d "$1" <<'SQL'
SELECT format('%s %s %s', c.oid::regclass, c.relkind,
			  CASE c.relkind WHEN 'S' THEN (SELECT format('%s', pg_sequence_last_value(c.oid)))
			  ELSE (xpath('/row/m/text()', query_to_xml(format(
					'SELECT md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) AS m, count(*) AS n FROM %s t',
					c.oid::regclass), false, true, '')))[1]::text || ' ' ||
				   (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %s', c.oid::regclass),
				   false, true, '')))[1]::text END)
  FROM pg_extension e, unnest(e.extconfig) AS u(o) JOIN pg_class c ON c.oid = u.o
 WHERE e.extname = 'dogdb_analytics'
 ORDER BY 1;
SELECT 'kpi retention ' || md5(string_agg(r::text, ',' ORDER BY r::text)) FROM dogdb_kpi_retention('2021-01-01', '2021-06-01', 'tier') r;
SELECT 'kpi usage ' || md5(string_agg(r::text, ',' ORDER BY r::text)) FROM dogdb_kpi_usage('2021-01-01', '2021-06-01', 'tier') r;
SELECT 'kpi revenue ' || md5(string_agg(r::text, ',' ORDER BY r::text)) FROM dogdb_kpi_revenue('2021-01-01', '2021-06-01', 'tier') r;
SELECT 'preview 2021-05 ' || md5(string_agg(r::text, ',' ORDER BY r::text)) FROM dogdb_preview_invoice_lines('2021-05-01') r;
SQL
}
snapshot dogdb_dump_src > "$dir/src.txt"

pg_dump -Fc -d dogdb_dump_src -f "$dir/dump"
createdb -T template0 dogdb_dump_dst
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
set +e
pg_restore --exit-on-error -d dogdb_dump_dst "$dir/dump" 2>"$dir/restore.err"
ok $? "pg_restore succeeds"
[ -s "$dir/restore.err" ] && sed 's/^/# /' "$dir/restore.err"
q -d dogdb_dump_dst -c "SET client_min_messages = warning; SELECT count(*) FROM dogdb_refresh_kpis()" >/dev/null
ok $? "the KPIs refresh after the restore"
snapshot dogdb_dump_dst > "$dir/dst.txt"
while IFS= read -r line; do
	name=$(echo "$line" | cut -d' ' -f1-2)
	grep -qxF "$line" "$dir/dst.txt"
	ok $? "restored as dumped: $name"
done < "$dir/src.txt"
diff "$dir/src.txt" "$dir/dst.txt" | sed 's/^/# /'
[ "$(grep -c . "$dir/src.txt")" -ge 20 ]
ok $? "the comparison covers the tables and the KPIs ($(grep -c . "$dir/src.txt") lines)"
echo "1..$n"
