-- The claim's third window: each user's earliest row people wait for, found by a skip scan over
-- users (two index probes per user with such rows; at most 64 users per claim, from a random
-- starting point). Without it a newcomer's first row sat behind any 256 earlier-due rows of other users (three users at the
-- 100-row cap fill both windows), and waited until their backlog shrank below the window.
create index if not exists fly_preview_apps_wanted_user_idx
  on public.fly_preview_apps (user_id, next_attempt_at)
  where attempts = 0 and (observed_generation < generation or status = 'initializing');
