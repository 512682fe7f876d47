-- A timeline per preview: public.fly_preview_events, one row per transition or milestone
-- (queued, app created, machine created, machine started, dev server answered, running, sync
-- confirmed, restarted, crash loop, stopped, error, deleted), for the web app to show and for
-- `fly-preview-controller status --app NAME`.
--
-- Who writes: the controller, inside the statement that writes the row's status (no extra
-- round trip; src/store/sql/write_status.sql, sync_served.sql), and this migration's triggers
-- ('queued' when a row is inserted or its generation bumped, 'deleted' when it is deleted).
-- The API roles never write: anon has no privilege at all; a signed-in user (authenticated)
-- may only SELECT the events of their own previews (RLS on user_id).
--
-- Bounded: at most 50 events per preview; each insert prunes the oldest beyond that. The
-- events of a deleted preview go when its teardown finishes (its tombstone is deleted).

create table if not exists public.fly_preview_events (
  id bigint generated always as identity primary key,
  -- The preview row's id (no foreign key: 'deleted' outlives the row until its teardown ends).
  preview_id uuid not null,
  user_id uuid not null,
  at timestamptz not null default pg_catalog.now(),
  kind text not null,
  reason text,
  message text,
  detail jsonb not null default '{}'::jsonb,
  -- The step's elapsed time: since the preview's previous event (or its request).
  elapsed_ms bigint,
  constraint fly_preview_events_kind_check check (kind in (
    'queued', 'app_created', 'machine_created', 'machine_started', 'dev_server_answered',
    'running', 'sync_confirmed', 'restarted', 'crash_loop', 'stopped', 'error', 'deleted')),
  constraint fly_preview_events_message_check check (pg_catalog.length(message) <= 1000),
  constraint fly_preview_events_detail_check check (pg_catalog.octet_length(detail::text) <= 4096)
);

-- "The latest N events of this preview" (and the per-preview prune) read only this index.
create index if not exists fly_preview_events_preview_idx
  on public.fly_preview_events (preview_id, id desc);

alter table public.fly_preview_events enable row level security;
revoke all on public.fly_preview_events from public, anon, authenticated;
grant select on public.fly_preview_events to authenticated;
grant all on public.fly_preview_events to service_role;

drop policy if exists fly_preview_events_select_own on public.fly_preview_events;
create policy fly_preview_events_select_own on public.fly_preview_events
  for select to authenticated using ((select auth.uid()) = user_id);

-- AFTER INSERT: keep the newest 50 events of the preview. Security definer: the inserting
-- role (the controller's, or a deleting user through the 'deleted' trigger) may not delete.
create or replace function public.fly_preview_events_prune() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  delete from public.fly_preview_events e
   where e.preview_id = new.preview_id
     and e.id < (select k.id from public.fly_preview_events k
                  where k.preview_id = new.preview_id
                  order by k.id desc offset 49 limit 1);
  return null;
end $$;

drop trigger if exists fly_preview_events_prune on public.fly_preview_events;
create trigger fly_preview_events_prune after insert on public.fly_preview_events
  for each row execute function public.fly_preview_events_prune();

-- 'queued' (a new row, or a new generation: redeploy, spec change, stop request) and
-- 'deleted', written in the requesting transaction.
create or replace function public.fly_preview_apps_event() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
declare
  r record;
  k text;
begin
  if tg_op = 'DELETE' then
    r := old;
    k := 'deleted';
  else
    r := new;
    k := 'queued';
  end if;
  insert into public.fly_preview_events as e (preview_id, user_id, kind, reason, elapsed_ms)
  values (r.id, r.user_id, k, case when tg_op = 'DELETE' then null else r.status_reason end,
    (select (extract(epoch from (pg_catalog.now() - l.at)) * 1000)::bigint
       from public.fly_preview_events l where l.preview_id = r.id order by l.id desc limit 1));
  return null;
end $$;

drop trigger if exists fly_preview_apps_85_event_insert on public.fly_preview_apps;
create trigger fly_preview_apps_85_event_insert after insert on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_event();
drop trigger if exists fly_preview_apps_85_event_update on public.fly_preview_apps;
create trigger fly_preview_apps_85_event_update after update on public.fly_preview_apps
  for each row when (new.generation is distinct from old.generation)
  execute function public.fly_preview_apps_event();
drop trigger if exists fly_preview_apps_85_event_delete on public.fly_preview_apps;
create trigger fly_preview_apps_85_event_delete after delete on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_event();

-- A finished teardown (its tombstone deleted) takes the preview's timeline with it.
create or replace function public.fly_preview_events_forget() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  delete from public.fly_preview_events e where e.preview_id = old.id;
  return null;
end $$;

drop trigger if exists tombstones_forget_events on fly_preview_controller.tombstones;
create trigger tombstones_forget_events after delete on fly_preview_controller.tombstones
  for each row execute function public.fly_preview_events_forget();

revoke execute on function public.fly_preview_events_prune() from public, anon, authenticated;
revoke execute on function public.fly_preview_apps_event() from public, anon, authenticated;
revoke execute on function public.fly_preview_events_forget() from public, anon, authenticated;
