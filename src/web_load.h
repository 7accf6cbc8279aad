/*-------------------------------------------------------------------------
 *
 * web_load.h
 *	  The web event loader's C route, shared by its two files: web_load.c
 *	  (the route's choice, the scan of the staging table and the checks of
 *	  each row) and web_load_write.c (the sorted rows deduplicated, probed
 *	  and written; the rejects quarantined).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_WEB_LOAD_H
#define DOGDB_WEB_LOAD_H

#include "postgres.h"

#include "executor/spi.h"
#include "access/genam.h"
#include "executor/tuptable.h"
#include "storage/itemptr.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/tuplesort.h"

/* the columns of dogdb.web_events, in its order (the sort's and the writer's too) */
#define WL_ANONYMOUS_ID 0
#define WL_EVENT_ID		1
#define WL_OCCURRED_AT	2
#define WL_SESSION_ID	3
#define WL_ACCOUNT_ID	4
#define WL_EVENT_NAME	5
#define WL_PAGE_PATH	6
#define WL_REFERRER		7
#define WL_CLIENT		8
#define WL_CAMPAIGN		9
#define WL_PROPERTIES	10
#define WL_NCOLUMNS		11

/* the temporary table (in pg_temp) of the rejected rows */
#define WL_REJECTS_NAME "dogdb_web_load_rejects"

/* rejected rows are copied to the quarantine's temporary table this many at a time */
#define WL_REJECT_BATCH 10000

struct BulkInsert;
struct keys_hash;

typedef struct WebLoad
{
	Oid			source_id;
	Relation	source;
	Oid			target_id;
	Snapshot	snapshot;		/* the staging table is read under it */
	AttrNumber	src_att[WL_NCOLUMNS];	/* the staging table's attribute of each column */
	Oid			src_type[WL_NCOLUMNS];
	Oid			name_collation; /* the tie-breaks of the winner: event_name's */
	Oid			path_collation; /* and page_path's collation, as the SQL sorts */
	TupleDesc	sortdesc;		/* the columns of dogdb.web_events */
	Tuplesortstate *sort;
	MemoryContext rowcxt;		/* reset per row */
	ItemPointerData rejects[WL_REJECT_BATCH];	/* rejected rows not yet copied */
	int			nrejects;
	SPIPlanPtr	copy_rejects;	/* copies them to the temporary table */
	struct keys_hash *keys;		/* hashes of the keys seen (pass 1); NULL: all sorted */
	MemoryContext keycxt;
	Size		limit;			/* maintenance_work_mem, in bytes */
	/* the writes (web_load_write.c) */
	struct BulkInsert *bulk;
	Relation	rel;			/* dogdb.web_events */
	Relation	pk;				/* its primary key */
	IndexScanDesc probe;		/* NULL when the table was empty */
	MemoryContext scancxt;		/* where the probes run */
	TupleTableSlot *found;
	SnapshotData dirty;
	int64		staged;
	int64		valid;
	int64		rejected;
	int64		loaded;
} WebLoad;

/* web_load_write.c: open the table for writing; is it empty? */
extern void WebLoadBeginWrite(WebLoad *wl);
/* web_load_write.c: write a row whose key no other staged row has, unless stored */
extern void WebLoadWriteRow(WebLoad *wl, Datum *values, bool *nulls);
/* web_load_write.c: the sorted rows deduplicated, probed, written; close */
extern void WebLoadEndWrite(WebLoad *wl);
/* web_load_write.c: copy the batch of rejected rows to the temporary table */
extern void WebLoadCopyRejects(WebLoad *wl);
/* web_load_write.c: quarantine them through the SQL route; checks its counts */
extern void WebLoadQuarantine(WebLoad *wl);

#endif							/* DOGDB_WEB_LOAD_H */
