/*
 * fuzz_stripe_header.c
 *	  libFuzzer harness for the Stripe cores (built with ASan and UBSan by
 *	  "make fuzz"): the Stripe-Signature header parser and the event reader.
 *
 * The input is read both as a header and as an event body.  Properties: no
 * crash, no read outside the input; a parsed header has 1..16 v1 values
 * and its t text inside the input and made of digits; an event either
 * reads (then its MRR is never negative) or reports an error path that
 * starts with "$".
 */
#include "stripe_core.h"
#include "stripe_sig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static StripeEvent ev;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size copy, so ASan sees any read past the end */
	char	   *buf = malloc(size ? size : 1);
	StripeSigHeader h;
	uint8_t		mac[STRIPE_SIG_MAC_LEN] = {0};

	memcpy(buf, data, size);
	if (stripe_sig_parse(buf, size, &h))
	{
		size_t		i;

		if (h.nv1 < 1 || h.nv1 > STRIPE_SIG_MAX_V1 || h.t_len < 1 || h.t_len > 18 ||
			h.t_text < buf || h.t_text + h.t_len > buf + size)
			abort();
		for (i = 0; i < h.t_len; i++)
			if (h.t_text[i] < '0' || h.t_text[i] > '9')
				abort();
		(void) stripe_sig_match(&h, mac);
		(void) stripe_sig_time_ok(h.t, 1700000000, 300);
	}
	if (stripe_event_parse(buf, size, &ev) == STRIPE_PARSE_OK)
	{
		if (ev.kind == STRIPE_SUBSCRIPTION && stripe_subscription_mrr(&ev, ev.created) < 0)
			abort();
	}
	else if (ev.error_path[0] != '$')
		abort();
	free(buf);
	return 0;
}
