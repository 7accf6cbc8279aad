/*-------------------------------------------------------------------------
 *
 * import_license.h
 *	  The streamed license step of the legacy import, shared by its two
 *	  files: import_license.c (set-up, scan and judgement: steps 1 to 4 of
 *	  its design note) and import_license_write.c (the writes: steps 5, 6).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_IMPORT_LICENSE_H
#define DOGDB_IMPORT_LICENSE_H

#include "postgres.h"

#include "access/genam.h"
#include "common/hashfn.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/rel.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "import.h"
#include "license_parse.h"

/* a valid row: the best so far of its license id */
typedef struct Candidate
{
	ItemPointerData tid;		/* the source row */
	bool		updated_null;
	int64		account_id;
	TimestampTz created_at;
	TimestampTz updated_at;
	char	   *source_key;		/* its reject key, if computed (step 3) */
	uint32		len[LICENSE_NFIELDS];
	char		data[FLEXIBLE_ARRAY_MEMBER];	/* license_id, role, status */
} Candidate;

#define CAND_FIELD(c, f) \
	((c)->data + ((f) > 0 ? (c)->len[0] : 0) + ((f) > 1 ? (c)->len[1] : 0))

typedef struct CandidateEntry
{
	Candidate  *cand;
	uint32		hash;
	char		status;
} CandidateEntry;

#define SH_PREFIX cands
#define SH_ELEMENT_TYPE CandidateEntry
#define SH_KEY_TYPE Candidate *
#define SH_KEY cand
#define SH_HASH_KEY(tb, key) hash_bytes((const unsigned char *) (key)->data, (int) (key)->len[0])
#define SH_EQUAL(tb, a, b) ((a)->len[0] == (b)->len[0] && memcmp((a)->data, (b)->data, (a)->len[0]) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* what a referenced account is */
#define ACCOUNT_MISSING 0
#define ACCOUNT_OTHERS	1		/* to be locked FOR KEY SHARE */
#define ACCOUNT_OURS	2		/* created by this transaction: no lock */
#define ACCOUNT_LOCKED	3

typedef struct AccountEntry
{
	int64		account_id;
	char		status;
	char		state;
} AccountEntry;

#define SH_PREFIX accts
#define SH_ELEMENT_TYPE AccountEntry
#define SH_KEY_TYPE int64
#define SH_KEY account_id
#define SH_HASH_KEY(tb, key) murmurhash32((uint32) (key) ^ (uint32) ((uint64) (key) >> 32))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* a row to quarantine */
typedef struct Reject
{
	ItemPointerData tid;
	char	   *reason;
	char	   *source_key;		/* NULL: computed when written */
} Reject;

/* occurrences of a row hash among the rows keyed so far */
typedef struct Occurrence
{
	char		hash[32];
	int64		n;
} Occurrence;

#define SOURCE_KEY_MAX 64		/* longer keys in the quarantine match no row */

typedef struct LicenseStep
{
	MemoryContext cxt;			/* everything kept; bounded */
	MemoryContext rowcxt;		/* reset per row */
	MemoryContext scancxt;		/* the index scans' (btgettuple keeps allocations) */
	Size		limit;
	Snapshot	snapshot;
	Relation	source;
	AttrNumber	src_att[4];		/* account_id, license_data, created_at, updated_at */
	Oid			account_type;
	FmgrInfo	to_jsonb;
	Relation	accounts;
	Relation	accounts_pk;
	IndexScanDesc account_scan;
	TupleTableSlot *account_slot;
	accts_hash *accts;
	Relation	licenses;
	Relation	license_idx;
	IndexScanDesc license_scan; /* NULL when dogdb.licenses is empty */
	TupleTableSlot *license_slot;
	AttrNumber	lic_att[3];		/* account_id, role, status of licenses */
	HTAB	   *old_keys;		/* keys quarantined before; NULL if none */
	HTAB	   *occurrences;
	cands_hash *cands;
	char	   *arena;			/* candidates are carved from here */
	Size		arena_left;
	Reject	   *rejects;
	int64		nrejects;
	int64		maxrejects;
} LicenseStep;

/* the reject key's row hash: md5 of the source row in slot as jsonb (also returned) */
extern void ImportLicenseRowHash(LicenseStep *st, TupleTableSlot *slot, char *hash, Jsonb **json);
/* the reject key of the row in slot: its hash and occurrence number (in st->cxt) */
extern char *ImportLicenseSourceKey(LicenseStep *st, TupleTableSlot *slot, Jsonb **json);

/* step 5: write the winners; returns how many */
extern int64 ImportLicenseWriteWinners(LicenseStep *st, BulkInsert *bulk);
/* step 6: quarantine the rejects */
extern void ImportLicenseWriteRejects(LicenseStep *st);

#endif							/* DOGDB_IMPORT_LICENSE_H */
