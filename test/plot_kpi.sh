#!/bin/sh
# The README's KPI picture (doc/kpi_monthly.png): the demo dataset's active
# and churned accounts per month by tier, read from the view dogdb.kpi_monthly
# (complete months only), drawn with gnuplot (Debian gnuplot-nox).  Runs
# against PGHOST/PGDATABASE, in a database of its own that it drops:
#	test/cluster.sh test/plot_kpi.sh [output.png]
set -eu
out=${1:-doc/kpi_monthly.png}
db=dogdb_plot
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; dropdb --if-exists "$db"' EXIT
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT FROM dogdb_generate_demo_data(500, 12, '2021-01-01', 1);
SELECT FROM dogdb_refresh_kpis();
SQL
psql -X -A -t -F ' ' -d "$db" -v ON_ERROR_STOP=1 >"$tmp/kpi.dat" <<'SQL'
SELECT month_label,
	   coalesce(sum(active_accounts) FILTER (WHERE tier = 'medium'), 0),
	   coalesce(sum(active_accounts) FILTER (WHERE tier = 'enterprise'), 0),
	   sum(churned_accounts)
  FROM dogdb.kpi_monthly WHERE is_complete GROUP BY month_label ORDER BY month_label;
SQL
gnuplot <<GNUPLOT
set terminal pngcairo size 800,360 font ",10" noenhanced
set output "$out"
set title "Demo data: active and churned accounts per month (dogdb.kpi_monthly, complete months)"
set xdata time
set timefmt "%Y-%m"
set format x "%Y-%m"
set xtics rotate by -30
set key outside right
set grid ytics
set ylabel "accounts"
plot "$tmp/kpi.dat" using 1:2 with linespoints title "active, medium", \
	 "" using 1:3 with linespoints title "active, enterprise", \
	 "" using 1:4 with linespoints title "churned (all tiers)"
GNUPLOT
echo "wrote $out"
