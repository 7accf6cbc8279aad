/*-------------------------------------------------------------------------
 *
 * stripe_sig.h
 *	  The Stripe-Signature header, without the backend: parsing, the
 *	  timestamp tolerance and the constant-time comparison of signatures.
 *	  The HMAC itself is computed by the caller (the server's own
 *	  pg_hmac_*), so this file and its unit test need no crypto library.
 *
 *	  A header is "t=<unix seconds>,v1=<64 lowercase hex>[,v1=...]", with
 *	  other schemes (v0, ...) ignored.  Elements are split at ',' and at the
 *	  first '='; nothing is trimmed (Stripe's libraries do the same), so
 *	  " v1=..." is an unknown scheme.  Malformed means: longer than
 *	  STRIPE_SIG_MAX_HEADER, no t, several t, t not 1..18 digits, an element
 *	  without '=', more than STRIPE_SIG_MAX_V1 v1 values, or no well-formed
 *	  v1.  A v1 that is not 64 lowercase hex digits is kept as "matches
 *	  nothing".
 *
 *-------------------------------------------------------------------------
 */
#ifndef STRIPE_SIG_H
#define STRIPE_SIG_H

#include <stddef.h>
#include <stdint.h>

#define STRIPE_SIG_MAX_HEADER 4096
#define STRIPE_SIG_MAX_V1 16
#define STRIPE_SIG_MAC_LEN 32		/* HMAC-SHA256 */

typedef struct StripeSigHeader
{
	int64_t		t;				/* the timestamp, seconds since 1970 */
	const char *t_text;			/* its digits as sent: they are signed */
	size_t		t_len;
	int			nv1;			/* well-formed v1 values */
	uint8_t		v1[STRIPE_SIG_MAX_V1][STRIPE_SIG_MAC_LEN];
} StripeSigHeader;

/* 1 if the header is well formed (out filled), 0 if malformed */
extern int	stripe_sig_parse(const char *header, size_t len, StripeSigHeader *out);

/* 1 if |now - t| <= tolerance (seconds; tolerance >= 0), else 0 */
extern int	stripe_sig_time_ok(int64_t t, int64_t now, int64_t tolerance);

/*
 * 1 if mac equals any v1 of the header.  Every v1 is compared in full,
 * in time independent of where (or whether) they differ.
 */
extern int	stripe_sig_match(const StripeSigHeader *h, const uint8_t mac[STRIPE_SIG_MAC_LEN]);

/* constant-time equality of two byte strings of length n */
extern int	stripe_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif							/* STRIPE_SIG_H */
