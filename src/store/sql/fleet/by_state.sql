-- The rows' machines by the state last seen on Fly (a row without a machine has none). Reads
-- only fly_preview_apps_machine_state_idx (rows with a machine).
select machine_state, count(*)
  from public.fly_preview_apps
 where fly_machine_id is not null and machine_state is not null
 group by machine_state
