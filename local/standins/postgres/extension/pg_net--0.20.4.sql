\echo Use "CREATE EXTENSION pg_net" to load this file. \quit

-- Stand-in for pg_net (supabase/pg_net 0.20.x), the SQL half. Replaces: the pg_net extension, which
-- is not packaged for Debian. Follows docs/supabase.md#pg_net: the same schema `net`, unlogged
-- queue and response tables, the same function signatures and defaults (timeout 5000 ms), the
-- same Content-Type check and message, params url-encoded onto the url, the body stored as UTF8
-- bytea, requests sent only after COMMIT, and its privileges (usage and table rights to PUBLIC,
-- the http_* functions executable by PUBLIC, SECURITY INVOKER).
-- Differs: the C parts are plpgsql here. net.wake() is pg_notify('pg_net_wake') — NOTIFY is
-- delivered only at COMMIT, so "sent only after commit" holds exactly as in pg_net — and the
-- worker is local/standins/postgres/worker.ts, a client connection named 'pg_net <version> worker'
-- (not a background worker), which net.check_worker_is_up() looks for. The url is checked and
-- normalised by a regular expression, not libcurl's URL parser (same message for a malformed url).
-- net.worker_restart() reloads the configuration and asks the worker (by NOTIFY, so at commit) to
-- reconnect. Like pg_net, the objects always live in schema net, whatever WITH SCHEMA says.

create schema if not exists net;

create domain net.http_method as text
  check (value ilike 'get' or value ilike 'post' or value ilike 'delete');

-- Requests waiting for the worker. Inserting here directly does not wake it (as in pg_net).
create unlogged table net.http_request_queue (
  id bigserial,
  method net.http_method not null,
  url text not null,
  headers jsonb,
  body bytea,
  timeout_milliseconds int not null
);

-- One row per finished request, same id as the request; removed after pg_net.ttl.
create unlogged table net._http_response (
  id bigint,
  status_code integer,
  content_type text,
  headers jsonb,
  content text,
  timed_out bool,
  error_msg text,
  created timestamptz not null default now()
);

create index on net._http_response (created);

create type net.request_status as enum ('PENDING', 'SUCCESS', 'ERROR');

create type net.http_response as (
  status_code integer,
  headers jsonb,
  body text
);

create type net.http_response_result as (
  status net.request_status,
  message text,
  response net.http_response
);

-- Percent-encodes every byte of the UTF8 text except the unreserved ones (as curl_escape does).
create function net._urlencode_string(string varchar)
returns text
language sql
immutable
strict
as $fn$
  select coalesce(
    string_agg(
      case
        when b between 48 and 57 or b between 65 and 90 or b between 97 and 122
          or b in (45, 46, 95, 126) then chr(b)
        else '%' || upper(lpad(to_hex(b), 2, '0'))
      end,
      '' order by i
    ),
    ''
  )
  from (
    select i, get_byte(convert_to(string, 'UTF8'), i) as b
    from generate_series(0, octet_length(convert_to(string, 'UTF8')) - 1) as i
  ) as bytes
$fn$;

-- Appends already-encoded `key=value` items to the url's query and normalises the url the way
-- libcurl's URL API prints it (lower-case scheme, "/" for an empty path, fragment kept last).
create function net._encode_url_with_params_array(url text, params_array text[])
returns text
language plpgsql
immutable
as $fn$
declare
  parts text[];
  query text;
  param text;
begin
  parts := regexp_match(url, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]+)([^?#]*)(\?[^#]*)?(#.*)?$');
  if parts is null then
    raise exception 'URL using bad/illegal format or missing URL';
  end if;

  query := nullif(parts[4], '?');
  foreach param in array coalesce(params_array, '{}'::text[]) loop
    continue when param is null;
    query := case when query is null then '?' || param else query || '&' || param end;
  end loop;

  return lower(parts[1]) || '://' || parts[2] || coalesce(nullif(parts[3], ''), '/')
    || coalesce(query, '') || coalesce(parts[5], '');
end
$fn$;

-- Wakes the worker when the calling transaction commits; a rollback wakes nothing.
create function net.wake()
returns void
language sql
as $fn$
  select pg_notify('pg_net_wake', '')
$fn$;

create function net.check_worker_is_up()
returns void
language plpgsql
as $fn$
begin
  if not exists (
    select from pg_catalog.pg_stat_activity
    where application_name ilike 'pg_net % worker' or backend_type ilike '%pg_net%'
  ) then
    raise exception using
      message = 'the pg_net background worker is not up',
      detail = 'no pg_net worker connection is open (local stand-in: worker.ts)',
      hint = 'start the local stack: local/stack up';
  end if;
end
$fn$;
comment on function net.check_worker_is_up() is
  'raises an exception if the pg_net background worker is not up, otherwise it doesn''t return anything';

create function net.wait_until_running()
returns void
language plpgsql
as $fn$
begin
  loop
    exit when exists (
      select from pg_catalog.pg_stat_activity
      where application_name ilike 'pg_net % worker' or backend_type ilike '%pg_net%'
    );
    perform pg_catalog.pg_sleep(0.05);
  end loop;
end
$fn$;
comment on function net.wait_until_running() is 'waits until the worker is running';

-- Reloads the configuration (pg_net.* settings) and asks the worker to reconnect, which re-reads
-- pg_net.database_name. Definer rights because pg_reload_conf() is superuser-only by default.
create function net.worker_restart()
returns bool
language plpgsql
security definer
set search_path = ''
as $fn$
begin
  perform pg_catalog.pg_notify('pg_net_restart', '');
  return pg_catalog.pg_reload_conf();
end
$fn$;

-- What the three http_* functions share: params url-encoded onto the url, queued, worker woken.
create function net._enqueue(
  method text, url text, params jsonb, headers jsonb, body bytea, timeout_milliseconds int
)
returns bigint
language plpgsql
as $fn$
declare
  request_id bigint;
begin
  insert into net.http_request_queue (method, url, headers, body, timeout_milliseconds)
  values (
    method,
    net._encode_url_with_params_array(
      url,
      (
        select coalesce(array_agg(net._urlencode_string(key) || '=' || net._urlencode_string(value)), '{}')
        from jsonb_each_text(params)
      )
    ),
    headers,
    body,
    timeout_milliseconds
  )
  returning id into request_id;

  perform net.wake();
  return request_id;
end
$fn$;

create function net.http_get(
  url text, params jsonb default '{}'::jsonb, headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000
) returns bigint language sql
as $fn$ select net._enqueue('GET', url, params, headers, null, timeout_milliseconds) $fn$;

create function net.http_post(
  url text,
  body jsonb default '{}'::jsonb,
  params jsonb default '{}'::jsonb,
  headers jsonb default '{"Content-Type": "application/json"}'::jsonb,
  timeout_milliseconds int default 5000
)
returns bigint
language plpgsql
as $fn$
declare
  content_type text;
begin
  select h.value into content_type
  from jsonb_each_text(coalesce(headers, '{}'::jsonb)) as h(key, value)
  where lower(h.key) = 'content-type'
  limit 1;

  if content_type is null then
    headers := coalesce(headers, '{}'::jsonb) || '{"Content-Type": "application/json"}'::jsonb;
  elsif content_type <> 'application/json' then
    raise exception 'Content-Type header must be "application/json"';
  end if;

  return net._enqueue(
    'POST', url, params, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds
  );
end
$fn$;

create function net.http_delete(
  url text, params jsonb default '{}'::jsonb, headers jsonb default '{}'::jsonb,
  timeout_milliseconds int default 5000, body jsonb default null
) returns bigint language sql
as $fn$
  select net._enqueue('DELETE', url, params, headers, convert_to(body::text, 'UTF8'), timeout_milliseconds)
$fn$;

-- Polls every 50 ms until the response row exists.
create function net._await_response(request_id bigint)
returns bool
language plpgsql
as $fn$
begin
  while not exists (select from net._http_response r where r.id = request_id) loop
    perform pg_catalog.pg_sleep(0.05);
  end loop;
  return true;
end
$fn$;

create function net._http_collect_response(request_id bigint, async bool default true)
returns net.http_response_result
language plpgsql
as $fn$
declare
  rec net._http_response;
begin
  if not async then
    perform net._await_response(request_id);
  end if;

  select * into rec from net._http_response r where r.id = request_id;

  if rec.id is null or rec.error_msg is not null then
    return (
      'ERROR',
      coalesce(rec.error_msg, 'request matching request_id not found'),
      null
    )::net.http_response_result;
  end if;

  return (
    'SUCCESS',
    'ok',
    (rec.status_code, rec.headers, rec.content)::net.http_response
  )::net.http_response_result;
end
$fn$;

create function net.http_collect_response(request_id bigint, async bool default true)
returns net.http_response_result
language plpgsql
as $fn$
begin
  raise notice 'The net.http_collect_response function is deprecated.';
  return net._http_collect_response(request_id, async);
end
$fn$;

grant usage on schema net to public;
grant all on all sequences in schema net to public;
grant all on all tables in schema net to public;
