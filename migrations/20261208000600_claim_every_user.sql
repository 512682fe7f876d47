-- Two more windows for the claim (src/store/sql/claim.sql writes their predicates out
-- literally so the planner uses these partial indexes):
-- 1. Priority-0 work in due order: a booting machine's re-check (a deploy in progress at its
--    generation) and a user's open of a running preview (`WakeRequested`,
--    20261208000100_idle_expiry.sql). A re-check falls due seconds after the rows that queued
--    before it; in the earliest-due windows alone, a large burst of new rows kept every
--    re-check out until the last machine was created (a 100k-row fleet ran nothing for 15
--    minutes), and a wake waited behind any backlog while the user looked at the frame.
-- 2. Each user's earliest row people wait for, found by a skip scan over users (two index
--    probes per user with such rows; at most 64 users per claim, from a random starting point).
--    Without it a newcomer's first row sat behind any 256 earlier-due rows of other users (three
--    users at the 100-row cap fill the due-order windows) until their backlog shrank.
create index if not exists fly_preview_apps_urgent_due_idx
  on public.fly_preview_apps (next_attempt_at)
  where attempts = 0
    and ((status = 'initializing' and observed_generation = generation) or status_reason = 'WakeRequested');

create index if not exists fly_preview_apps_wanted_user_idx
  on public.fly_preview_apps (user_id, next_attempt_at)
  where attempts = 0 and (observed_generation < generation or status = 'initializing');
