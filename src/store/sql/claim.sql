-- claim: lease up to $2 due, unleased rows to replica $1 for $3 seconds, people first.
-- Priority 0, started work: a wake (the user opened the preview: one Fly start while the frame
-- waits) and a deploy in progress (status $4 'initializing' at its generation: the re-check of
-- a booting machine), with the retries of both (a row that shows 'initializing' after a failed
-- pass reached Fly with its current spec). Finishing started work first is what gets previews
-- running soonest, and it is what keeps a retry's promised time: a retry is due after rows
-- that queued before it, so in any later priority it waits for all of them.
-- Within priority 0 a failed pass's retry goes first: its message named its time ("retrying
-- automatically at HH:MM:SS"), a re-check or a wake named none.
-- Priority 1: other work someone waits for (a new row, a spec change, a status request), with
-- its retries (attempts > 0, not started on Fly).
-- Priority 2: periodic verification and its retries.
-- Within a priority, round-robin over users: each user's due rows are ranked (priority, due
-- time) and every user's first row goes before anyone's second, so one account's backlog
-- cannot starve another's first preview. Then by due time. A user never has more than $5
-- rows leased at once (counting leases already held), so one account cannot fill every
-- worker and database connection either, whatever priority its rows have; one more only for
-- a retry of started work, whose message named its time (the user's own rows in flight do
-- not make it late; a second such retry waits). At most $6 of the
-- rows are not started work: the runtime keeps a share of its free slots for started work
-- that falls due between claims, and runs started work in a reserve of slots beyond its
-- concurrency (src/preview/reconcile.rs, PreviewQueue).
-- The cost is bounded by five windows, never by the number of due rows (each window reads the
-- first rows of one index in due order, so parked rows, due at 'infinity', are never read):
-- - the 64 earliest-due priority-0 rows with no failure yet (fly_preview_apps_urgent_due_idx):
--   a re-check falls due seconds after the rows that queued before it, and without its own
--   window a large burst of new rows kept every re-check out until the last machine was
--   created (a 100k fleet ran nothing for 15 minutes);
-- - the 64 earliest-due retries of work someone waits for (fly_preview_apps_retry_due_idx),
--   for the same reason;
-- - the 64 earliest-due rows people wait for with no failure yet (fly_preview_apps_wanted_due_idx);
-- - the 64 earliest-due rows of any kind (fly_preview_apps_due_idx);
-- - each user's earliest row people wait for (a skip scan over fly_preview_apps_wanted_user_idx:
--   one probe per user with such rows, at most 64 users from a random start), so a newcomer's
--   first row is a candidate however many earlier rows other users have due. A user whose
--   earliest such row is in flight or not due yet gets none from this window.
-- The partial indexes' predicates are written out literally below so the planner uses them.
-- Ranking and round-robin happen within those windows; rows beyond them are reached as the
-- front is worked off (a claim of more rows than the windows hold takes what they hold).
-- $1 owner, $2 limit, $3 lease seconds, $4 the 'initializing' status, $5 per-user cap,
-- $6 most rows of priority 1 or 2 (at most $2)
WITH RECURSIVE urgent AS (
    SELECT id, user_id, next_attempt_at, attempts, status, generation, observed_generation, status_reason
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND attempts = 0
      AND ((status = 'initializing' AND observed_generation = generation) OR status_reason = 'WakeRequested')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT 64
),
retried AS (
    SELECT id, user_id, next_attempt_at, attempts, status, generation, observed_generation, status_reason
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND attempts > 0 AND (observed_generation < generation OR status = 'initializing')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT 64
),
wanted AS (
    SELECT id, user_id, next_attempt_at, attempts, status, generation, observed_generation, status_reason
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND attempts = 0 AND (observed_generation < generation OR status = 'initializing')
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT 64
),
oldest AS (
    SELECT id, user_id, next_attempt_at, attempts, status, generation, observed_generation, status_reason
    FROM public.fly_preview_apps
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    ORDER BY next_attempt_at
    LIMIT 64
),
-- Users with rows people wait for, in user_id order from a random starting point, wrapping
-- around once, at most 64 per claim: every such user is visited when there are at most 64,
-- and a random 64 of them otherwise. Each step lands on the next user's earliest such row
-- (the index is ordered by user, then due time) and carries it along.
start AS (SELECT gen_random_uuid() AS user_id),
users (id, user_id, next_attempt_at, attempts, status, generation, observed_generation,
       status_reason, lease_expires_at, wrapped, n) AS (
    (SELECT f.*, 1
     FROM (
        (SELECT a.id, a.user_id, a.next_attempt_at, a.attempts, a.status, a.generation,
                a.observed_generation, a.status_reason, a.lease_expires_at, false AS wrapped
         FROM public.fly_preview_apps a
         WHERE a.attempts = 0 AND (a.observed_generation < a.generation OR a.status = 'initializing')
           AND a.user_id >= (SELECT user_id FROM start)
         ORDER BY a.user_id, a.next_attempt_at
         LIMIT 1)
        UNION ALL
        (SELECT a.id, a.user_id, a.next_attempt_at, a.attempts, a.status, a.generation,
                a.observed_generation, a.status_reason, a.lease_expires_at, true
         FROM public.fly_preview_apps a
         WHERE a.attempts = 0 AND (a.observed_generation < a.generation OR a.status = 'initializing')
         ORDER BY a.user_id, a.next_attempt_at
         LIMIT 1)
    ) f
     LIMIT 1)
    UNION ALL
    SELECT nxt.*, u.n + 1
    FROM users u
    CROSS JOIN LATERAL (
        SELECT * FROM (
            (SELECT a.id, a.user_id, a.next_attempt_at, a.attempts, a.status, a.generation,
                    a.observed_generation, a.status_reason, a.lease_expires_at, u.wrapped AS wrapped
             FROM public.fly_preview_apps a
             WHERE a.attempts = 0 AND (a.observed_generation < a.generation OR a.status = 'initializing')
               AND a.user_id > u.user_id
             ORDER BY a.user_id, a.next_attempt_at
             LIMIT 1)
            UNION ALL
            (SELECT a.id, a.user_id, a.next_attempt_at, a.attempts, a.status, a.generation,
                    a.observed_generation, a.status_reason, a.lease_expires_at, true
             FROM public.fly_preview_apps a
             WHERE NOT u.wrapped
               AND a.attempts = 0 AND (a.observed_generation < a.generation OR a.status = 'initializing')
             ORDER BY a.user_id, a.next_attempt_at
             LIMIT 1)
        ) candidates
        LIMIT 1
    ) nxt
    WHERE u.n < 64
      AND NOT (nxt.wrapped AND nxt.user_id >= (SELECT user_id FROM start))
),
firsts AS (
    SELECT id, user_id, next_attempt_at, attempts, status, generation, observed_generation, status_reason
    FROM users
    WHERE next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
),
due AS (
    SELECT id,
           user_id,
           next_attempt_at,
           CASE WHEN status_reason = 'WakeRequested' AND attempts = 0 THEN 0
                WHEN status = $4 AND (observed_generation = generation OR attempts > 0) THEN 0
                WHEN observed_generation < generation THEN 1
                ELSE 2 END AS priority,
           -- within started work, a failed pass's retry (its message promised its time:
           -- a failure counted in attempts, or a Fly budget wait, which keeps the count and
           -- writes 'FlyApiError') goes before a re-check or a wake (which promised none)
           attempts = 0 AND status_reason IS DISTINCT FROM 'FlyApiError' AS unpromised
    FROM (SELECT * FROM urgent UNION SELECT * FROM retried UNION SELECT * FROM wanted
          UNION SELECT * FROM oldest UNION SELECT * FROM firsts) AS window_rows
),
leased AS (
    SELECT user_id, count(*) AS n
    FROM public.fly_preview_apps
    WHERE lease_owner IS NOT NULL
      AND lease_expires_at > now()
    GROUP BY user_id
),
ranked AS (
    SELECT id,
           user_id,
           priority,
           next_attempt_at,
           unpromised,
           row_number() OVER (PARTITION BY user_id
                              ORDER BY priority, priority = 0 AND unpromised, next_attempt_at, id)
               AS turn
    FROM due
),
picked AS (
    -- The first $2 candidates in claim order, at most $6 of them not started work: the rest
    -- of the limit is kept for started work that falls due before the next claim.
    SELECT c.id
    FROM (
        SELECT t.id,
               t.priority,
               row_number() OVER (ORDER BY t.priority, t.later, t.turn, t.next_attempt_at, t.id) AS k
        FROM (
            SELECT r.id, r.priority, r.turn, r.next_attempt_at,
                   r.priority = 0 AND r.unpromised AS later
            FROM ranked r
            LEFT JOIN leased l USING (user_id)
            WHERE r.turn + coalesce(l.n, 0)
                  <= $5 + CASE WHEN r.priority = 0 AND NOT r.unpromised THEN 1 ELSE 0 END
            ORDER BY r.priority, r.priority = 0 AND r.unpromised, r.turn, r.next_attempt_at, r.id
            LIMIT $2
        ) t
    ) c
    WHERE c.priority = 0 OR c.k <= $6
),
locked AS (
    -- Re-checked under the row lock: a concurrent claimer's committed lease is seen here.
    SELECT id
    FROM public.fly_preview_apps
    WHERE id IN (SELECT id FROM picked)
      AND next_attempt_at <= now()
      AND (lease_expires_at IS NULL OR lease_expires_at < now())
    FOR UPDATE SKIP LOCKED
)
UPDATE public.fly_preview_apps
SET lease_owner = $1,
    lease_expires_at = now() + make_interval(secs => $3)
WHERE id IN (SELECT id FROM locked)
  AND {by_controller}
RETURNING {row_cols}
