-- Idle expiry reaches previews in `error` (src/preview/expiry.rs): a settled row in error that
-- may hold a Fly app of ours (its machine exited or never became healthy, Fly refused its
-- configuration) is due when it expires, like a running preview, and its pass deletes the app
-- and writes status 'stopped', reason 'Expired'; opening it (or status 'pending') deploys it
-- again (the open trigger of 20261208000100_idle_expiry.sql, unchanged). Rows in error that
-- hold nothing on Fly stay due never: refused for the quota, invalid, a name owned by another
-- org, or never given an app (`fly_app_created` false).
--
-- Rows that failed before this migration wait for no time ('infinity'): they get the expiry
-- of the default TTL (7 days after their last open or deploy request, whichever is later);
-- the controller decides again with its configured PREVIEW_IDLE_TTL when they come due. A row
-- already past it is due at once. No index is added: the claim's windows and next_due read
-- fly_preview_apps_due_idx from its front (rows due now), so rows due days ahead are never
-- read, as for running previews.
update public.fly_preview_apps
   set next_attempt_at = greatest(requested_at, coalesce(opened_at, requested_at))
                         + interval '7 days'
 where status = 'error' and desired_state = 'running' and observed_generation = generation
   and fly_app_created
   and coalesce(status_reason, '') not in ('QuotaExceeded', 'InvalidSpec', 'NameOwnedElsewhere')
   and next_attempt_at = 'infinity'::timestamptz;
