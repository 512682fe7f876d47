-- A preview's variables (the web app's public.fly_preview_env), with the secret ones' values
-- from the controller's schema, by name.
select e.name, coalesce(e.value, s.value, '') as value, e.secret
  from public.fly_preview_env e
  left join fly_preview_controller.env_secrets s
    on s.user_id = e.user_id and s.project_id = e.project_id and s.name = e.name
 where e.user_id = $1 and e.project_id = $2
 order by e.name
