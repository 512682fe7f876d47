-- The daemon's periodic statements read nothing in proportion to rows that wait for a change
-- (quota-refused rows parked at `next_attempt_at = 'infinity'`, stopped rows, invalid rows):
-- 1. Rows by status, for the status gauge, come from counts kept by triggers in the
--    controller's schema (fly_preview_controller.status_counts()), not from a count of the
--    table. Every write appends a delta (one per status an INSERT or DELETE statement touches,
--    two per row whose status an UPDATE changes) to status_deltas; the reader folds the
--    deltas into status_totals (one row per status) and empties status_deltas, so a read
--    costs the status changes since the last one, and at rest nothing.
-- 2. The cost gauges' machines by state read only the rows with a machine (a partial index).
-- 3. The sync lane's sweep reads only the rows it may sync (running, started, `revision` ahead)
--    in its order (src/store/sql/sync_candidates.sql writes this predicate out literally).
-- Drift's mark_due looks each sighting up by the unique app-name index (SQL only).

create table if not exists fly_preview_controller.status_totals (
  status text primary key,
  n bigint not null
);
create table if not exists fly_preview_controller.status_deltas (
  id bigint generated always as identity primary key,
  status text not null,
  n bigint not null
);
alter table fly_preview_controller.status_totals enable row level security;
alter table fly_preview_controller.status_deltas enable row level security;
revoke all on fly_preview_controller.status_totals from public, anon, authenticated;
revoke all on fly_preview_controller.status_deltas from public, anon, authenticated;

-- Rows by status (statuses without rows left out), exact as of the caller's snapshot. Whoever
-- gets the fold lock moves the deltas it sees into the totals; a concurrent caller adds them up.
create or replace function fly_preview_controller.status_counts()
  returns table (status text, n bigint)
  language plpgsql security definer set search_path = ''
  as $$
begin
  if pg_catalog.pg_try_advisory_xact_lock(1718646127, 1) then
    return query
    with folded as (
      delete from fly_preview_controller.status_deltas d returning d.status, d.n
    ), sums as (
      select f.status, sum(f.n)::bigint as n from folded f group by f.status
    ), moved as (
      insert into fly_preview_controller.status_totals as t (status, n)
      select s.status, s.n from sums s
      on conflict on constraint status_totals_pkey do update set n = t.n + excluded.n
      returning t.status, t.n
    )
    select m.status, m.n from moved m where m.n <> 0
    union all
    select t.status, t.n from fly_preview_controller.status_totals t
     where t.n <> 0 and not exists (select 1 from moved m where m.status = t.status);
  else
    return query
    select u.status, sum(u.n)::bigint
      from (select t.status, t.n from fly_preview_controller.status_totals t
            union all
            select d.status, d.n from fly_preview_controller.status_deltas d) u
     group by u.status having sum(u.n) <> 0;
  end if;
end $$;
revoke execute on function fly_preview_controller.status_counts() from public, anon, authenticated;
-- The controller's own role (deploy/sql/controller-role.sql grants the same on a new install).
do $$
begin
  if exists (select 1 from pg_catalog.pg_roles where rolname = 'fly_preview_reconciler') then
    grant execute on function fly_preview_controller.status_counts() to fly_preview_reconciler;
  end if;
end $$;

create or replace function public.fly_preview_apps_count_rows() returns trigger
  language plpgsql security definer set search_path = ''
  as $$
begin
  if tg_op = 'UPDATE' then
    insert into fly_preview_controller.status_deltas (status, n)
    values (old.status, -1), (new.status, 1);
  elsif tg_op = 'INSERT' then
    insert into fly_preview_controller.status_deltas (status, n)
    select r.status, count(*) from new_rows r group by r.status;
  elsif tg_op = 'DELETE' then
    insert into fly_preview_controller.status_deltas (status, n)
    select r.status, -count(*) from old_rows r group by r.status;
  else
    delete from fly_preview_controller.status_deltas;
    delete from fly_preview_controller.status_totals;
  end if;
  return null;
end $$;
revoke execute on function public.fly_preview_apps_count_rows() from public, anon, authenticated;

drop trigger if exists fly_preview_apps_85_count_insert on public.fly_preview_apps;
create trigger fly_preview_apps_85_count_insert after insert on public.fly_preview_apps
  referencing new table as new_rows
  for each statement execute function public.fly_preview_apps_count_rows();
drop trigger if exists fly_preview_apps_85_count_delete on public.fly_preview_apps;
create trigger fly_preview_apps_85_count_delete after delete on public.fly_preview_apps
  referencing old table as old_rows
  for each statement execute function public.fly_preview_apps_count_rows();
-- Not `update of status`: a BEFORE trigger that translates a request also changes it.
drop trigger if exists fly_preview_apps_85_count_update on public.fly_preview_apps;
create trigger fly_preview_apps_85_count_update after update on public.fly_preview_apps
  for each row when (old.status is distinct from new.status)
  execute function public.fly_preview_apps_count_rows();
drop trigger if exists fly_preview_apps_85_count_truncate on public.fly_preview_apps;
create trigger fly_preview_apps_85_count_truncate after truncate on public.fly_preview_apps
  for each statement execute function public.fly_preview_apps_count_rows();

-- The triggers above hold off every write until this transaction ends, so the count is exact.
delete from fly_preview_controller.status_deltas;
delete from fly_preview_controller.status_totals;
insert into fly_preview_controller.status_totals (status, n)
select status, count(*) from public.fly_preview_apps group by status;

-- Machines by state (src/store/sql/fleet/by_state.sql).
create index if not exists fly_preview_apps_machine_state_idx
  on public.fly_preview_apps (machine_state)
  where fly_machine_id is not null and machine_state is not null;

-- Rows the sync lane may sync, in its order (src/store/sql/sync_candidates.sql).
create index if not exists fly_preview_apps_sync_ready_idx
  on public.fly_preview_apps (updated_at)
  where revision is distinct from served_revision and revision is not null
    and status = 'running' and machine_state = 'started' and generation = observed_generation;
