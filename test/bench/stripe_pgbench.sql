-- pgbench script of test/bench/stripe_pgbench.sh: one Stripe delivery per
-- transaction, each delivery once (the sequence hands them out in order)
SELECT dogdb_ingest_stripe_event(payload, header) FROM bench_stripe.deliveries WHERE n = (SELECT nextval('bench_stripe.seq'));
