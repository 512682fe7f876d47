-- Level-triggered teardown: deleting a row leaves a tombstone in the controller's own schema,
-- and the controller claims tombstones like rows (due time, lease, persisted attempts and
-- backoff) until the row's Fly app is gone. A NOTIFY only wakes it; a daemon that was down
-- when the row was deleted finds the tombstone when it starts.
--
-- The table lives in fly_preview_controller (20261127000100_supabase_seam.sql): PostgREST does
-- not expose that schema and anon/authenticated can use nothing in it. Row-level security is
-- on with no policy for them; the controller's own role gets its policy and grants in
-- deploy/sql/controller-role.sql.

create table if not exists fly_preview_controller.tombstones (
  -- the deleted row's id: the teardown only destroys an app whose machines carry it
  id uuid primary key,
  user_id uuid not null,
  fly_app_name text not null,
  deleted_at timestamptz not null default pg_catalog.now(),
  -- failed teardown attempts so far (the backoff's exponent); an outage does not count
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default pg_catalog.now(),
  lease_owner text,
  lease_expires_at timestamptz,
  -- the last failure, for operators (never a token)
  last_error text
);
alter table fly_preview_controller.tombstones enable row level security;
revoke all on fly_preview_controller.tombstones from public, anon, authenticated;

-- Claims and the next due time walk this index from the front.
create index if not exists tombstones_due_idx
  on fly_preview_controller.tombstones (next_attempt_at);

-- AFTER DELETE: the tombstone, in the deleting transaction (no delete is ever lost).
-- Security definer: the deleting role (a signed-in user, the web app's service role) has no
-- privilege on the controller's schema. A row deleted again under the same id (re-inserted
-- with an explicit id) is due again from scratch.
create or replace function public.fly_preview_apps_tombstone() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  insert into fly_preview_controller.tombstones as t (id, user_id, fly_app_name)
  values (old.id, old.user_id, old.fly_app_name)
  on conflict (id) do update
    set user_id = excluded.user_id,
        fly_app_name = excluded.fly_app_name,
        deleted_at = pg_catalog.now(),
        attempts = 0,
        next_attempt_at = pg_catalog.now(),
        last_error = null;
  return null;
end $$;

drop trigger if exists fly_preview_apps_80_tombstone on public.fly_preview_apps;
create trigger fly_preview_apps_80_tombstone after delete on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_tombstone();

-- Like the table's other functions (20261127000100_supabase_seam.sql): nobody but the owner
-- calls it directly (a trigger needs no EXECUTE privilege when it fires).
revoke execute on function public.fly_preview_apps_tombstone() from public, anon, authenticated;

-- The NOTIFY hint on delete is `{"op":"delete","id":…}`: the tombstone carries the app name,
-- so the payload no longer does. Otherwise unchanged from 20261127000400_sync_on_save.sql.
create or replace function public.fly_preview_apps_notify() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if tg_op = 'DELETE' then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'delete', 'id', old.id)::text);
    return old;
  end if;
  if tg_op = 'INSERT' or new.generation <> old.generation then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', pg_catalog.lower(tg_op), 'id', new.id)::text);
  elsif new.revision is distinct from old.revision then
    perform pg_catalog.pg_notify('fly_preview_apps',
      pg_catalog.json_build_object('op', 'revision', 'id', new.id)::text);
  end if;
  return new;
end $$;
