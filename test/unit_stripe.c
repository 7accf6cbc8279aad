/*
 * unit_stripe.c
 *	  Unit tests of the Stripe cores outside the server: the signature
 *	  header parser, the tolerance check, the constant-time comparison
 *	  (stripe_sig.c), the event reader, ranks and MRR (stripe_core.c).
 *	  TAP output, run by "make unit" through prove.
 */
#include "stripe_core.h"
#include "stripe_sig.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static int
parses(const char *h)
{
	StripeSigHeader out;

	return stripe_sig_parse(h, strlen(h), &out);
}

static void
test_header(void)
{
	StripeSigHeader h;
	uint8_t		a[32];
	uint8_t		b[32];
	char		big[STRIPE_SIG_MAX_HEADER + 64];
	int			i;

	memset(a, 0xaa, 32);
	memset(b, 0xbb, 32);
	ok(stripe_sig_parse("t=1700000000,v1=" HEX_A, strlen("t=1700000000,v1=" HEX_A), &h) == 1 &&
	   h.t == 1700000000 && h.nv1 == 1 && h.t_len == 10 && memcmp(h.t_text, "1700000000", 10) == 0,
	   "a plain header parses");
	ok(stripe_sig_match(&h, a) && !stripe_sig_match(&h, b), "its v1 matches that MAC only");
	ok(stripe_sig_parse("t=5,v1=" HEX_B ",v1=" HEX_A ",v0=" HEX_B, strlen("t=5,v1=" HEX_B ",v1=" HEX_A ",v0=" HEX_B), &h) &&
	   h.nv1 == 2 && stripe_sig_match(&h, a) && stripe_sig_match(&h, b), "several v1 (rotation): any matches");
	ok(stripe_sig_parse("v0=" HEX_A ",t=5,v1=" HEX_B ",x=y", strlen("v0=" HEX_A ",t=5,v1=" HEX_B ",x=y"), &h) &&
	   !stripe_sig_match(&h, a), "v0 and unknown schemes are ignored, in any position");
	ok(!parses("v1=" HEX_A), "no t: malformed");
	ok(!parses("t=1,t=2,v1=" HEX_A), "several t: malformed");
	ok(!parses("t=abc,v1=" HEX_A), "non-numeric t: malformed");
	ok(!parses("t=-5,v1=" HEX_A), "negative t: malformed");
	ok(!parses("t=,v1=" HEX_A), "empty t: malformed");
	ok(!parses("t=1234567890123456789,v1=" HEX_A), "t of 19 digits: malformed");
	ok(!parses("t=1"), "no v1: malformed");
	ok(!parses("t=1,v0=" HEX_A), "only v0: malformed");
	ok(!parses("t=1, v1=" HEX_A), "a space before v1: no v1, malformed");
	ok(!parses("t=1 ,v1=" HEX_A), "a space after t: malformed");
	ok(!parses(" t=1,v1=" HEX_A), "a leading space: no t, malformed");
	ok(!parses("t=1,v1=" HEX_A ","), "a trailing comma: malformed");
	ok(!parses("t=1,,v1=" HEX_A), "an empty element: malformed");
	ok(!parses("t=1,v1"), "an element without '=': malformed");
	ok(!parses(""), "empty header: malformed");
	ok(!parses("t=1,v1=" "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
	   "upper-case hex is no v1: malformed");
	ok(!parses("t=1,v1=abc"), "a short v1 only: malformed");
	ok(parses("t=1,v1=abc,v1=" HEX_A), "a short v1 beside a good one: parses");
	ok(!parses("t=1,v1=" HEX_A "a"), "a long v1 only: malformed");
	ok(stripe_sig_parse("t=1,v1=" HEX_A "\0junk", strlen("t=1,v1=" HEX_A) + 5, &h) == 0,
	   "a NUL inside the header: malformed");

	strcpy(big, "t=1");
	for (i = 0; i < STRIPE_SIG_MAX_V1; i++)
		strcat(big, ",v1=" HEX_A);
	ok(parses(big), "16 v1 values parse");
	strcat(big, ",v1=" HEX_A);
	ok(!parses(big), "17 v1 values: malformed");
	memset(big, 'x', sizeof(big));
	memcpy(big, "t=1,v1=" HEX_A ",x=", strlen("t=1,v1=" HEX_A ",x="));
	ok(stripe_sig_parse(big, STRIPE_SIG_MAX_HEADER, &h) == 1, "a header of the maximum length parses");
	ok(stripe_sig_parse(big, STRIPE_SIG_MAX_HEADER + 1, &h) == 0, "one byte longer: malformed");
}

static void
test_time_and_compare(void)
{
	uint8_t		x[32] = {0};
	uint8_t		y[32] = {0};

	ok(stripe_sig_time_ok(1000, 1300, 300), "300 s in the past: within tolerance");
	ok(!stripe_sig_time_ok(1000, 1301, 300), "301 s in the past: too old");
	ok(stripe_sig_time_ok(1300, 1000, 300), "300 s in the future: within tolerance");
	ok(!stripe_sig_time_ok(1301, 1000, 300), "301 s in the future: refused");
	ok(stripe_sig_time_ok(1000, 1000, 0) && !stripe_sig_time_ok(1000, 1001, 0), "tolerance 0: exact only");
	ok(!stripe_sig_time_ok(1000, 1000, -1), "negative tolerance: nothing");
	ok(stripe_ct_equal(x, y, 32), "equal bytes compare equal");
	y[31] = 1;
	ok(!stripe_ct_equal(x, y, 32), "a difference in the last byte is found");
	y[31] = 0;
	y[0] = 0x80;
	ok(!stripe_ct_equal(x, y, 32), "a difference in the first byte is found");
}

static const char *sub_event =
"{\"id\":\"evt_1\",\"type\":\"customer.subscription.updated\",\"created\":1614556800,"
"\"data\":{\"object\":{\"id\":\"sub_1\",\"customer\":\"cus_1\",\"status\":\"active\",\"created\":1612137600,"
"\"items\":{\"object\":\"list\",\"data\":["
"{\"quantity\":3,\"price\":{\"id\":\"price_m\",\"unit_amount\":1000,\"currency\":\"usd\","
"\"recurring\":{\"interval\":\"month\",\"interval_count\":1}}},"
"{\"quantity\":1,\"price\":{\"id\":\"price_y\",\"unit_amount\":12000,\"currency\":\"usd\","
"\"recurring\":{\"interval\":\"year\",\"interval_count\":1}}}]},"
"\"discount\":{\"coupon\":{\"percent_off\":25,\"amount_off\":null},\"end\":null}}}}";

static const char *other_event =
"{\"id\":\"evt_9\",\"type\":\"payout.paid\",\"created\":1,\"data\":{\"object\":{}}}";

static int
parse_error(const char *json, StripeParseStatus want, const char *path)
{
	StripeEvent *ev = malloc(sizeof(StripeEvent));
	StripeParseStatus st = stripe_event_parse(json, strlen(json), ev);
	int			good = st == want && strcmp(ev->error_path, path) == 0;

	if (!good)
		printf("# status %d path %s error %s\n", st, ev->error_path, ev->error);
	free(ev);
	return good;
}

static void
test_events(void)
{
	StripeEvent *ev = malloc(sizeof(StripeEvent));
	int			rank;
	char	   *big;

	ok(stripe_event_parse(sub_event, strlen(sub_event), ev) == STRIPE_PARSE_OK &&
	   ev->kind == STRIPE_SUBSCRIPTION && ev->rank == 2 && ev->nitems == 2 &&
	   strcmp(ev->object_id, "sub_1") == 0 && strcmp(ev->customer, "cus_1") == 0 &&
	   strcmp(ev->currency, "usd") == 0 && ev->created == 1614556800, "a subscription event reads");
	ok(ev->mrr_cents == 3000, "MRR: (3 x 10.00 + 120.00 / 12) less 25% = 30.00");
	strcpy(ev->status, "trialing");
	ok(stripe_subscription_mrr(ev, ev->created) == 0, "a trialing subscription has no MRR");
	strcpy(ev->status, "past_due");
	ev->discount_end = ev->created;
	ok(stripe_subscription_mrr(ev, ev->created) == 4000, "past_due counts; an ended discount does not");
	ev->has_discount = true;
	ev->discount_end = 0;
	ev->percent_off = 0;
	ev->amount_off = 500;
	ok(stripe_subscription_mrr(ev, ev->created) == 3500, "amount off per period of the first item");
	ev->amount_off = 100000;
	ok(stripe_subscription_mrr(ev, ev->created) == 0, "MRR never goes below 0");
	ev->has_discount = false;
	ev->nitems = 1;
	strcpy(ev->items[0].interval, "week");
	ev->items[0].quantity = 1;
	ok(stripe_subscription_mrr(ev, 0) == 4333, "weekly 10.00 = 43.33 a month");
	strcpy(ev->items[0].interval, "day");
	ok(stripe_subscription_mrr(ev, 0) == 30417, "daily 10.00 = 304.17 a month");
	strcpy(ev->items[0].interval, "month");
	ev->items[0].interval_count = 3;
	ok(stripe_subscription_mrr(ev, 0) == 333, "quarterly 10.00 = 3.33 a month");

	ok(stripe_event_kind("customer.subscription.deleted", &rank) == STRIPE_SUBSCRIPTION && rank == 3,
	   "deleted ranks 3");
	ok(stripe_event_kind("invoice.paid", &rank) == STRIPE_INVOICE && rank == 3 &&
	   stripe_event_kind("invoice.finalized", &rank) == STRIPE_INVOICE && rank == 1,
	   "paid ranks above finalized");
	ok(stripe_event_kind("charge.dispute.created", &rank) == STRIPE_OTHER && rank == 0,
	   "unmodeled types are OTHER");
	ok(stripe_event_parse(other_event, strlen(other_event), ev) == STRIPE_PARSE_OK && ev->kind == STRIPE_OTHER, "an unmodeled event with a valid envelope reads");

	ok(parse_error("{", STRIPE_PARSE_INVALID, "$"), "truncated JSON: invalid at $");
	ok(parse_error("[]", STRIPE_PARSE_INVALID, "$"), "an array: invalid at $");
	ok(parse_error("{\"type\":\"x\",\"created\":1,\"data\":{\"object\":{}}}", STRIPE_PARSE_INVALID, "$.id"),
	   "no id: invalid at $.id");
	ok(parse_error("{\"id\":\"e\",\"id\":\"f\",\"type\":\"x\",\"created\":1,\"data\":{\"object\":{}}}",
				   STRIPE_PARSE_INVALID, "$"), "a duplicate key: invalid");
	ok(parse_error("{\"id\":\"e\",\"type\":\"x\",\"created\":\"1\",\"data\":{\"object\":{}}}",
				   STRIPE_PARSE_INVALID, "$.created"), "created as a string: invalid at $.created");
	ok(parse_error("{\"id\":\"e\",\"type\":\"x\",\"created\":1,\"data\":{}}", STRIPE_PARSE_INVALID, "$.data.object"),
	   "no data.object: invalid there");
	ok(parse_error("{\"id\":\"e\",\"type\":\"charge.succeeded\",\"created\":1,\"data\":{\"object\":{\"id\":\"ch\","
				   "\"status\":\"succeeded\",\"currency\":\"usd\",\"created\":1}}}",
				   STRIPE_PARSE_INVALID, "$.data.object.amount"), "a charge without amount: invalid there");
	ok(parse_error("{\"id\":\"e\",\"type\":\"customer.created\",\"created\":1,\"data\":{\"object\":{\"id\":\"cus\","
				   "\"metadata\":{\"account_id\":\"12x\"}}}}",
				   STRIPE_PARSE_INVALID, "$.data.object.metadata.account_id"), "a bad account_id: invalid there");
	ok(parse_error("{\"id\":\"e\",\"type\":\"customer.subscription.created\",\"created\":1,\"data\":{\"object\":{"
				   "\"id\":\"s\",\"customer\":\"c\",\"status\":\"active\",\"created\":1,\"items\":{\"data\":[{\"price\":"
				   "{\"id\":\"p\",\"unit_amount\":1,\"currency\":\"usd\",\"recurring\":{\"interval\":\"fortnight\"}}}]}}}}",
				   STRIPE_PARSE_INVALID, "$.data.object.items.data[0].price.recurring.interval"),
	   "an unknown interval: invalid at its path");
	big = malloc(STRIPE_MAX_PAYLOAD + 2);
	memset(big, ' ', STRIPE_MAX_PAYLOAD + 1);
	big[STRIPE_MAX_PAYLOAD + 1] = '\0';
	ok(parse_error(big, STRIPE_PARSE_LIMIT, "$"), "over 1 MB: the limit");
	free(big);
	free(ev);
}

int
main(void)
{
	test_header();
	test_time_and_compare();
	test_events();
	return done_testing();
}
