-- Test fixture for gateway_test.ts: objects named gwtest_* in public, recreated on every run
-- (gateway_test.ts runs cleanup.sql first, so leftovers of an interrupted run go away).
-- The role statements only make sure what local/stack provides exists (no-ops on a real stack).
do $$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end $$;
grant usage on schema public to anon, authenticated, service_role;

create table public.gwtest_items (label text primary key);
grant insert on public.gwtest_items to service_role;

create function public.gwtest_add(a int, b int default 10) returns int
  language sql immutable as $$ select a + b $$;

create function public.gwtest_hello(name text) returns text
  language sql immutable as $$ select 'hello ' || name $$;

create function public.gwtest_doc(doc jsonb) returns jsonb
  language sql immutable as $$ select doc || '{"seen": true}'::jsonb $$;

create function public.gwtest_types(
  p_id uuid, p_n int, p_at timestamptz, p_doc jsonb, p_tags text[]
) returns jsonb language sql immutable as $$
  select jsonb_build_object(
    'id', p_id, 'id_type', pg_typeof(p_id)::text,
    'n_plus_one', p_n + 1,
    'at_epoch', extract(epoch from p_at)::bigint,
    'doc', p_doc, 'doc_type', jsonb_typeof(p_doc),
    'tags', to_jsonb(p_tags), 'tags_type', pg_typeof(p_tags)::text)
$$;

create function public.gwtest_nothing(x int) returns void
  language sql as $$ insert into public.gwtest_items (label) values ('void-' || x) $$;

create function public.gwtest_fail(kind text) returns int language plpgsql as $$
begin
  if kind = 'unique' then
    raise unique_violation using message = 'duplicate site';
  end if;
  raise exception 'boom: %', kind using detail = 'the detail', hint = 'the hint';
end $$;

create function public.gwtest_whoami() returns jsonb language sql stable as $$
  select jsonb_build_object(
    'role', current_user,
    'claims', current_setting('request.jwt.claims', true)::jsonb,
    'claim_role', current_setting('request.jwt.claim.role', true),
    'method', current_setting('request.method', true),
    'path', current_setting('request.path', true),
    'header_x_probe', current_setting('request.headers', true)::jsonb ->> 'x-probe',
    'search_path', current_setting('search_path'),
    'read_only', current_setting('transaction_read_only'))
$$;

create function public.gwtest_secret() returns text
  language sql stable as $$ select 'only for service_role' $$;
revoke execute on function public.gwtest_secret() from public, anon, authenticated;
grant execute on function public.gwtest_secret() to service_role;

create function public.gwtest_overloaded(x int) returns int language sql as $$ select x $$;
create function public.gwtest_overloaded(x text) returns text language sql as $$ select x $$;
