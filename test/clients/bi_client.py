"""The documented reads through psycopg2 (and pyodbc with psqlODBC when
given a second argument), printed as TAP lines without numbers:
test/scripts/bi_clients.sh runs it as a dogdb_reader login.
    python3 bi_client.py 'host=127.0.0.1 port=... dbname=... user=... password=...' [odbc]"""
import decimal
import sys


def ok(cond, what):
    print(("ok - " if cond else "not ok - ") + what)


def reads(cur, name, param):
    p = "%s" if param == "pyformat" else "?"
    cur.execute("SELECT * FROM dogdb_kpi_retention(%s, %s, %s)" % (p, p, p), ("2021-01-01", "2021-03-01", "Tier"))
    ok(len(cur.fetchall()) > 0, name + ": dogdb_kpi_retention with group_by 'Tier'")
    cur.execute("SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')")
    rows = cur.fetchall()
    ok(len(rows) > 0 and isinstance(rows[0][4], decimal.Decimal), name + ": dogdb_kpi_usage, avg_sessions a Decimal")
    cur.execute("SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-03-01', 'tier')")
    ok(len(cur.fetchall()) > 0, name + ": dogdb_kpi_revenue")
    cur.execute("SELECT * FROM dogdb.kpi_monthly WHERE is_complete ORDER BY month")
    ok(len(cur.fetchall()) > 0, name + ": dogdb.kpi_monthly")
    cur.execute("SELECT * FROM dogdb_check_data_quality()")
    ok(len(cur.fetchall()) > 0, name + ": dogdb_check_data_quality")
    cur.execute("SELECT * FROM dogdb_mrr_movements('2021-01-01', '2021-12-01')")
    cur.fetchall()
    ok(True, name + ": dogdb_mrr_movements")


conninfo = sys.argv[1]
import psycopg2
with psycopg2.connect(conninfo) as conn:
    cur = conn.cursor()
    reads(cur, "psycopg2", "pyformat")
    conn.rollback()
    try:
        cur.execute("SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01', 'region')")
        ok(False, "psycopg2: an unknown group_by is refused")
    except psycopg2.Error as e:
        ok(e.pgcode == "22023" and "group_by must be 'company_size', 'tier' or 'all'" in str(e),
           "psycopg2: an unknown group_by is refused with the allowed values in the message")
if len(sys.argv) > 2:
    import pyodbc
    kv = dict(x.split("=", 1) for x in conninfo.split())
    conn = pyodbc.connect("DRIVER={PostgreSQL Unicode};SERVER=%s;PORT=%s;DATABASE=%s;UID=%s;PWD=%s"
                          % (kv["host"], kv["port"], kv["dbname"], kv["user"], kv["password"]), autocommit=True)
    cur = conn.cursor()
    reads(cur, "ODBC", "qmark")
    try:
        cur.execute("SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01', 'region')")
        ok(False, "ODBC: an unknown group_by is refused")
    except pyodbc.Error as e:
        # ODBC passes the primary message on, not the hint
        ok("group_by must be 'company_size', 'tier' or 'all'" in str(e),
           "ODBC: an unknown group_by is refused with the allowed values in the message")
    views = [r.table_name for r in cur.tables(schema="dogdb", tableType="VIEW")]
    ok("kpi_monthly" in views, "ODBC: SQLTables lists the view dogdb.kpi_monthly")
    conn.close()
