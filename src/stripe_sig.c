/*-------------------------------------------------------------------------
 *
 * stripe_sig.c
 *	  Parsing the Stripe-Signature header and comparing signatures in
 *	  constant time (see stripe_sig.h).  No backend headers: unit-tested
 *	  and fuzzed outside the server.
 *
 *-------------------------------------------------------------------------
 */
#include "stripe_sig.h"

#include <string.h>

/* value of a lowercase hex digit, or -1 */
static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 1 if s[0..len) is 64 lowercase hex digits (decoded into mac) */
static int
DecodeSignature(const char *s, size_t len, uint8_t *mac)
{
	size_t		i;

	if (len != 2 * STRIPE_SIG_MAC_LEN)
		return 0;
	for (i = 0; i < STRIPE_SIG_MAC_LEN; i++)
	{
		int			hi = HexValue(s[2 * i]);
		int			lo = HexValue(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return 0;
		mac[i] = (uint8_t) (hi << 4 | lo);
	}
	return 1;
}

int
stripe_sig_parse(const char *header, size_t len, StripeSigHeader *out)
{
	const char *p = header;
	const char *end = header + len;
	int			nt = 0;
	int			nv1_seen = 0;

	memset(out, 0, sizeof(*out));
	if (header == NULL || len == 0 || len > STRIPE_SIG_MAX_HEADER)
		return 0;
	while (p <= end)
	{
		const char *comma = memchr(p, ',', (size_t) (end - p));
		const char *elem_end = comma ? comma : end;
		const char *eq = memchr(p, '=', (size_t) (elem_end - p));
		size_t		klen;
		const char *val;
		size_t		vlen;

		if (eq == NULL)
			return 0;			/* an element without '=' (also: empty) */
		klen = (size_t) (eq - p);
		val = eq + 1;
		vlen = (size_t) (elem_end - val);
		if (klen == 1 && p[0] == 't')
		{
			int64_t		t = 0;
			size_t		i;

			if (++nt > 1 || vlen == 0 || vlen > 18)
				return 0;
			for (i = 0; i < vlen; i++)
			{
				if (val[i] < '0' || val[i] > '9')
					return 0;
				t = t * 10 + (val[i] - '0');
			}
			out->t = t;
			out->t_text = val;
			out->t_len = vlen;
		}
		else if (klen == 2 && p[0] == 'v' && p[1] == '1')
		{
			if (++nv1_seen > STRIPE_SIG_MAX_V1)
				return 0;
			if (DecodeSignature(val, vlen, out->v1[out->nv1]))
				out->nv1++;
		}
		/* other schemes (v0, ...) are ignored */
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	return nt == 1 && out->nv1 > 0;
}

int
stripe_sig_time_ok(int64_t t, int64_t now, int64_t tolerance)
{
	int64_t		diff;

	if (tolerance < 0)
		return 0;
	/* t and now are both far inside int64: no overflow */
	diff = now - t;
	return diff <= tolerance && -diff <= tolerance;
}

int
stripe_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t acc = 0;
	size_t		i;

	for (i = 0; i < n; i++)
		acc |= a[i] ^ b[i];
	return acc == 0;
}

int
stripe_sig_match(const StripeSigHeader *h, const uint8_t mac[STRIPE_SIG_MAC_LEN])
{
	int			found = 0;
	int			i;

	for (i = 0; i < h->nv1; i++)
		found |= stripe_ct_equal(h->v1[i], mac, STRIPE_SIG_MAC_LEN);
	return found;
}
