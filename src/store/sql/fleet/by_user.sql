-- Each user's previews, and their machines by the state last seen on Fly (state null: no machine).
select user_id,
       case when fly_machine_id is null then null else machine_state end as machine_state,
       count(*)
  from public.fly_preview_apps
 group by 1, 2
