-- Removes what fixture.sql created (run when each gateway test finishes).
do $$
declare f record;
begin
  for f in select p.oid::regprocedure as sig from pg_proc p
           join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'public' and p.proname like 'gwtest\_%' loop
    execute format('drop function %s', f.sig);
  end loop;
end $$;
drop table if exists public.gwtest_items;
