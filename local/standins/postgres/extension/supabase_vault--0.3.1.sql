\echo Use "CREATE EXTENSION supabase_vault" to load this file. \quit

-- Stand-in for Supabase Vault (supabase/vault 0.3.x). Replaces: the supabase_vault extension and
-- the pgsodium it needs, neither packaged for Debian. Follows docs/supabase.md#vault: schema
-- vault, table vault.secrets with the same columns and the unique index on name (when not null),
-- view vault.decrypted_secrets with the same columns plus decrypted_secret, create_secret() and
-- update_secret() with the same signatures and defaults (new_key_id unused, as in 0.3.x), and the
-- hosted grants: postgres (with grant option) and service_role, nothing for anon/authenticated.
-- Differs: `secret` is encrypted with pgcrypto's pgp_sym_encrypt (AES-256, base64 text) under a
-- random key made when the extension is created, kept in vault._stand_in_key (readable only by
-- the superuser, so per database, not per cluster; pg_dump keeps it with the secrets). The real
-- Vault uses libsodium AEAD under a server root key outside the database. `nonce` stays null.
-- create_secret/update_secret are SECURITY DEFINER so that service_role needs no table rights.

create table vault._stand_in_key (
  singleton boolean primary key default true check (singleton),
  key text not null
);
insert into vault._stand_in_key (key)
values (encode(gen_random_bytes(32), 'hex'));
revoke all on vault._stand_in_key from public;

create table vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text,
  description text not null default '',
  secret text not null,
  key_id uuid,
  nonce bytea,
  created_at timestamptz not null default current_timestamp,
  updated_at timestamptz not null default current_timestamp
);
comment on table vault.secrets is
  'Table with encrypted `secret` column for storing sensitive information on disk.';

create unique index secrets_name_idx on vault.secrets using btree (name) where name is not null;

-- pgcrypto lives wherever it was created (extensions on Supabase): bind its schema now.
do $do$
declare
  crypto_schema name := (
    select n.nspname
    from pg_catalog.pg_extension e
    join pg_catalog.pg_namespace n on n.oid = e.extnamespace
    where e.extname = 'pgcrypto'
  );
begin
  execute format($sql$
    create function vault._encrypt(plaintext text)
    returns text
    language sql
    volatile
    security definer
    set search_path = ''
    as $fn$
      select translate(
        encode(
          %1$I.pgp_sym_encrypt(plaintext, (select k.key from vault._stand_in_key k), 'cipher-algo=aes256'),
          'base64'
        ),
        E'\n', ''
      )
    $fn$
  $sql$, crypto_schema);

  execute format($sql$
    create function vault._decrypt(ciphertext text)
    returns text
    language sql
    stable
    security definer
    set search_path = ''
    as $fn$
      select %1$I.pgp_sym_decrypt(decode(ciphertext, 'base64'), (select k.key from vault._stand_in_key k))
    $fn$
  $sql$, crypto_schema);
end
$do$;

create view vault.decrypted_secrets as
select
  s.id,
  s.name,
  s.description,
  s.secret,
  vault._decrypt(s.secret) as decrypted_secret,
  s.key_id,
  s.nonce,
  s.created_at,
  s.updated_at
from vault.secrets s;

create function vault.create_secret(
  new_secret text,
  new_name text = null,
  new_description text = '',
  -- unused, as in Vault 0.3.x
  new_key_id uuid = null
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $fn$
declare
  new_id uuid;
begin
  insert into vault.secrets (secret, name, description)
  values (vault._encrypt(new_secret), new_name, new_description)
  returning id into new_id;
  return new_id;
end
$fn$;

create function vault.update_secret(
  secret_id uuid,
  new_secret text = null,
  new_name text = null,
  new_description text = null,
  -- unused, as in Vault 0.3.x
  new_key_id uuid = null
)
returns void
language plpgsql
security definer
set search_path = ''
as $fn$
begin
  update vault.secrets s
  set
    secret = case when new_secret is null then s.secret else vault._encrypt(new_secret) end,
    name = coalesce(new_name, s.name),
    description = coalesce(new_description, s.description),
    updated_at = now()
  where s.id = secret_id;
end
$fn$;

select pg_catalog.pg_extension_config_dump('vault.secrets', '');
select pg_catalog.pg_extension_config_dump('vault._stand_in_key', '');

revoke all on schema vault from public;
revoke all on function vault._encrypt(text) from public;
revoke all on function vault._decrypt(text) from public;
revoke all on function vault.create_secret(text, text, text, uuid) from public;
revoke all on function vault.update_secret(uuid, text, text, text, uuid) from public;

-- The hosted grants. Roles are cluster-wide and may not exist yet in a bare cluster.
do $do$
declare
  grantee text;
begin
  foreach grantee in array array['postgres', 'service_role'] loop
    continue when not exists (select from pg_catalog.pg_roles where rolname = grantee);
    execute format(
      'grant usage on schema vault to %1$I %2$s;
       grant select, delete on vault.secrets, vault.decrypted_secrets to %1$I %2$s;
       grant execute on function vault._decrypt(text) to %1$I;
       grant execute on function vault.create_secret(text, text, text, uuid) to %1$I %2$s;
       grant execute on function vault.update_secret(uuid, text, text, text, uuid) to %1$I %2$s;',
      grantee,
      case when grantee = 'postgres' then 'with grant option' else '' end
    );
  end loop;
end
$do$;
