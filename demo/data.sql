-- Deterministic data: skewed like real help desks (a few big accounts, most
-- tickets closed, a small open queue).
SELECT setseed(0.42);

INSERT INTO accounts
SELECT g,
       'user' || g || '@' || (ARRAY['example.com', 'mail.test', 'corp.example'])[1 + g % 3],
       (ARRAY['free', 'free', 'free', 'pro', 'enterprise'])[1 + g % 5],
       (ARRAY['DE', 'FR', 'US', 'US', 'GB', 'IN', 'BR'])[1 + g % 7],
       now() - (g % 1000) * interval '1 day',
       now() - (g % 90) * interval '1 day'
FROM generate_series(1, 60000) g;

INSERT INTO agents SELECT g, 'agent ' || g, (ARRAY['billing', 'tech', 'sales'])[1 + g % 3]
FROM generate_series(1, 200) g;

INSERT INTO tickets
SELECT g,
       1 + (floor(60000 * power(random(), 3)))::bigint,          -- power law: big accounts file more
       CASE WHEN random() < 0.9 THEN 1 + (random() * 199)::int END,
       CASE WHEN random() < 0.02 THEN 'open' WHEN random() < 0.05 THEN 'pending' ELSE 'closed' END,
       1 + (random() * 4)::int,
       'subject ' || g,
       now() - random() * interval '720 days',
       now() - random() * interval '30 days'
FROM generate_series(1, 250000) g;

SELECT setval(pg_get_serial_sequence('tickets', 'id'), 250000);

INSERT INTO ticket_events (ticket_id, kind, created_at, body)
SELECT 1 + (random() * 249999)::bigint,
       (ARRAY['comment', 'status', 'assign', 'view'])[1 + (random() * 3)::int],
       now() - random() * interval '720 days',
       repeat('x', 40)
FROM generate_series(1, 300000) g;

VACUUM ANALYZE;
