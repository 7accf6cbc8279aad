// The documented reads as a BI tool's JDBC driver makes them (pgJDBC, as
// Metabase, Tableau and DBeaver use it), printed as TAP lines without
// numbers: test/scripts/bi_clients.sh runs it as a dogdb_reader login.
//   java -cp postgresql.jar:. BiClient 'jdbc:postgresql://127.0.0.1:PORT/DB' USER PASSWORD
import java.math.BigDecimal;
import java.sql.*;
import java.util.Properties;

public class BiClient {
	static void ok(boolean cond, String what) {
		System.out.println((cond ? "ok - " : "not ok - ") + what);
	}

	static int count(ResultSet rs) throws SQLException {
		int n = 0;
		while (rs.next())
			n++;
		rs.close();
		return n;
	}

	public static void main(String[] args) throws Exception {
		Properties p = new Properties();
		p.setProperty("user", args[1]);
		p.setProperty("password", args[2]);
		try (Connection c = DriverManager.getConnection(args[0], p)) {
			// parameters as text: a cast in the SQL, or stringtype=unspecified
			try (PreparedStatement s = c.prepareStatement(
					"SELECT * FROM dogdb_kpi_retention(?::date, ?::date, ?)")) {
				s.setString(1, "2021-01-01");
				s.setString(2, "2021-03-01");
				s.setString(3, "Tier");
				ok(count(s.executeQuery()) > 0, "JDBC: dogdb_kpi_retention with ?::date parameters and group_by 'Tier'");
			}
			try (PreparedStatement s = c.prepareStatement("SELECT * FROM dogdb_kpi_usage(?, ?, ?)")) {
				s.setDate(1, Date.valueOf("2021-01-01"));
				s.setDate(2, Date.valueOf("2021-02-01"));
				s.setString(3, "company_size");
				ResultSet rs = s.executeQuery();
				boolean any = rs.next();
				BigDecimal avg = any ? rs.getBigDecimal("avg_sessions") : null;
				ok(any && avg != null && avg.scale() == 2, "JDBC: dogdb_kpi_usage with setDate, avg_sessions a BigDecimal of scale 2");
				rs.close();
			}
			try (Statement s = c.createStatement()) {
				ok(count(s.executeQuery("SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-03-01', 'tier')")) > 0,
				   "JDBC: dogdb_kpi_revenue");
				ok(count(s.executeQuery("SELECT * FROM dogdb_kpi_last_refresh()")) == 4, "JDBC: dogdb_kpi_last_refresh (retention, revenue, support, usage)");
				ResultSet rs = s.executeQuery("SELECT month_label, revenue, is_complete FROM dogdb.kpi_monthly ORDER BY month");
				boolean any = rs.next();
				ok(any && rs.getString(1).matches("\\d{4}-\\d{2}") && rs.getBigDecimal(2).scale() == 2,
				   "JDBC: dogdb.kpi_monthly, the YYYY-MM label and revenue in currency units");
				rs.close();
				ok(count(s.executeQuery("SELECT data_through FROM dogdb.kpi_data_through")) == 1, "JDBC: dogdb.kpi_data_through");
				try {
					s.executeQuery("SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01', 'region')");
					ok(false, "JDBC: an unknown group_by is refused");
				} catch (SQLException e) {
					ok("22023".equals(e.getSQLState()) && e.getMessage().contains("group_by must be 'company_size', 'tier' or 'all'"),
					   "JDBC: an unknown group_by is refused with the allowed values in the message");
				}
			}
			// what a query builder browses: tables and views, with their remarks
			DatabaseMetaData md = c.getMetaData();
			ResultSet t = md.getTables(null, "dogdb", "kpi_monthly", new String[] {"TABLE", "VIEW"});
			boolean found = t.next();
			ok(found && "VIEW".equals(t.getString("TABLE_TYPE")), "JDBC: getTables({TABLE, VIEW}) finds dogdb.kpi_monthly");
			ok(found && t.getString("REMARKS") != null && !t.getString("REMARKS").isEmpty(), "JDBC: with its REMARKS");
			t.close();
			int tables = 0, noRemarks = 0;
			t = md.getTables(null, "dogdb", "%", new String[] {"TABLE", "VIEW"});
			while (t.next()) {
				tables++;
				if (t.getString("REMARKS") == null || t.getString("REMARKS").isEmpty())
					noRemarks++;
			}
			t.close();
			ok(tables >= 20 && noRemarks == 0, "JDBC: " + tables + " tables and views of dogdb, every one with REMARKS");
			ResultSet col = md.getColumns(null, "dogdb", "kpi_monthly", "%");
			int cols = 0, colNoRemarks = 0;
			boolean avgOk = false;
			while (col.next()) {
				cols++;
				if (col.getString("REMARKS") == null || col.getString("REMARKS").isEmpty())
					colNoRemarks++;
				if ("avg_sessions".equals(col.getString("COLUMN_NAME")))
					avgOk = col.getInt("DATA_TYPE") == Types.NUMERIC && col.getInt("COLUMN_SIZE") == 10
						&& col.getInt("DECIMAL_DIGITS") == 2;
			}
			col.close();
			ok(cols == 12 && colNoRemarks == 0, "JDBC: getColumns of kpi_monthly: 12 columns, every one with REMARKS");
			ok(avgOk, "JDBC: avg_sessions is NUMERIC(10,2)");
		}
		// stringtype=unspecified: setString for a date parameter
		try (Connection c = DriverManager.getConnection(args[0] + "?stringtype=unspecified", p);
			 PreparedStatement s = c.prepareStatement("SELECT * FROM dogdb_kpi_retention(?, ?)")) {
			s.setString(1, "2021-01-01");
			s.setString(2, "2021-02-01");
			ok(count(s.executeQuery()) > 0, "JDBC: stringtype=unspecified lets setString pass a date");
		}
	}
}
