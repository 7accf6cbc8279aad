-- pgbench script of test/bench/stripe_pgbench.sh: the PL/pgSQL baseline,
-- one delivery per transaction, each delivery once
SELECT bench_stripe.ingest(payload, header) FROM bench_stripe.deliveries WHERE n = (SELECT nextval('bench_stripe.seq'));
