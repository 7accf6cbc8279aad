/*-------------------------------------------------------------------------
 *
 * stripe_hmac.c
 *	  HMAC-SHA256 of a Stripe delivery ("<t>.<payload>") with one secret.
 *
 * Design note.  The server's pg_hmac (OpenSSL underneath) costs 7-8 µs of
 * CPU per delivery in a backend, against about 1.5 µs for the hashing
 * itself: every call creates an OpenSSL context, looks the digest up in
 * OpenSSL's provider tables, hashes the key into the inner and outer pads
 * and registers the context with the resource owner.  With OpenSSL 3 the
 * backend instead keeps, per secret, an HMAC context already keyed (the
 * pads hashed) and copies it for each delivery.  The contexts live for the
 * backend (a few, keyed by the secret's bytes, the oldest replaced), are
 * OpenSSL's own memory and never escape an ereport: nothing between copy
 * and free can throw.  If OpenSSL fails, or without OpenSSL 3, the server's
 * pg_hmac computes it.  Never a hand-rolled SHA-256.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hmac.h"

#ifdef USE_OPENSSL
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#define STRIPE_KEYED_CONTEXTS
#endif
#endif

#include "stripe.h"
#include "stripe_sig.h"

/* the server's pg_hmac: HMAC-SHA256(secret, t "." payload) */
static void
ServerHmac(const char *secret, size_t slen, const char *t, size_t tlen,
		   const char *payload, size_t plen, uint8 *mac)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	if (pg_hmac_init(ctx, (const uint8 *) secret, slen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) t, tlen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) ".", 1) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) payload, plen) < 0 ||
		pg_hmac_final(ctx, mac, STRIPE_SIG_MAC_LEN) < 0)
	{
		const char *err = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA256: %s", err);
	}
	pg_hmac_free(ctx);
}

#ifdef STRIPE_KEYED_CONTEXTS

#define KEYED_SLOTS 4

typedef struct KeyedContext
{
	unsigned char *secret;		/* malloc'd copy, NULL if the slot is free */
	size_t		len;
	EVP_MAC_CTX *ctx;			/* keyed, never updated itself */
} KeyedContext;

static EVP_MAC *hmac_alg;
static KeyedContext keyed[KEYED_SLOTS];
static int	next_victim;

/* the keyed context of a secret (made on first use); NULL if OpenSSL failed */
static EVP_MAC_CTX *
KeyedContextFor(const char *secret, size_t slen)
{
	KeyedContext *k;
	OSSL_PARAM	params[2];

	for (int i = 0; i < KEYED_SLOTS; i++)
		if (keyed[i].secret != NULL && keyed[i].len == slen &&
			CRYPTO_memcmp(keyed[i].secret, secret, slen) == 0)
			return keyed[i].ctx;
	if (hmac_alg == NULL && (hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL)
		return NULL;
	k = &keyed[next_victim];
	next_victim = (next_victim + 1) % KEYED_SLOTS;
	if (k->secret != NULL)
	{
		OPENSSL_cleanse(k->secret, k->len);
		free(k->secret);
		EVP_MAC_CTX_free(k->ctx);
		k->secret = NULL;
	}
	k->ctx = EVP_MAC_CTX_new(hmac_alg);
	k->secret = malloc(slen > 0 ? slen : 1);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (k->ctx == NULL || k->secret == NULL ||
		EVP_MAC_init(k->ctx, (const unsigned char *) secret, slen, params) != 1)
	{
		EVP_MAC_CTX_free(k->ctx);
		free(k->secret);
		k->ctx = NULL;
		k->secret = NULL;
		return NULL;
	}
	memcpy(k->secret, secret, slen);
	k->len = slen;
	return k->ctx;
}

/* with a copy of the secret's keyed context; false if OpenSSL failed */
static bool
KeyedHmac(const char *secret, size_t slen, const char *t, size_t tlen,
		  const char *payload, size_t plen, uint8 *mac)
{
	EVP_MAC_CTX *keyed_ctx = KeyedContextFor(secret, slen);
	EVP_MAC_CTX *ctx;
	size_t		outlen = 0;
	bool		ok;

	if (keyed_ctx == NULL || (ctx = EVP_MAC_CTX_dup(keyed_ctx)) == NULL)
		return false;
	ok = EVP_MAC_update(ctx, (const unsigned char *) t, tlen) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) ".", 1) == 1 &&
		EVP_MAC_update(ctx, (const unsigned char *) payload, plen) == 1 &&
		EVP_MAC_final(ctx, mac, &outlen, STRIPE_SIG_MAC_LEN) == 1 &&
		outlen == STRIPE_SIG_MAC_LEN;
	EVP_MAC_CTX_free(ctx);
	return ok;
}
#endif							/* STRIPE_KEYED_CONTEXTS */

void
StripeHmac(const char *secret, size_t slen, const char *t, size_t tlen,
		   const char *payload, size_t plen, uint8 *mac)
{
#ifdef STRIPE_KEYED_CONTEXTS
	if (KeyedHmac(secret, slen, t, tlen, payload, plen, mac))
		return;
	ERR_clear_error();
#endif
	ServerHmac(secret, slen, t, tlen, payload, plen, mac);
}
