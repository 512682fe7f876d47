-- status_detail: the controller's technical detail behind status / error_message (the Fly
-- error as the API gave it: HTTP status, fly-request-id, API message) for operators and
-- support. error_message keeps only what a user can act on.
--
-- Privileges: like every controller column, signed-in users may read it on their own rows
-- (the table-wide SELECT of 20261125000004_security.sql, filtered by RLS) and may neither
-- insert nor update it (no column grant); anon has no privilege on the table at all.
alter table public.fly_preview_apps add column if not exists status_detail text;

comment on column public.fly_preview_apps.status_detail is
  'controller-owned: technical detail of the last status (Fly request id, HTTP status, API message)';

-- A requester's insert never carries a detail (privileged writers included).
create or replace function public.fly_preview_apps_on_insert_detail() returns trigger
  language plpgsql set search_path = ''
  as $$
begin
  if not public.fly_preview_apps_by_controller() then
    new.status_detail := null;
  end if;
  return new;
end $$;

drop trigger if exists fly_preview_apps_11_insert_detail on public.fly_preview_apps;
create trigger fly_preview_apps_11_insert_detail before insert on public.fly_preview_apps
  for each row execute function public.fly_preview_apps_on_insert_detail();

-- Like the table's other functions (20261127000100_supabase_seam.sql): nobody but the owner
-- calls it directly (a trigger needs no EXECUTE privilege when it fires).
revoke execute on function public.fly_preview_apps_on_insert_detail() from public, anon, authenticated;
