// bootstrap.sql in a database of its own: idempotent, and what a fresh Supabase project has.

import assert from "node:assert/strict";
import { connectStackDb, dbTest, stackDbUrl } from "./test_helpers.ts";

dbTest(
  "bootstrap.sql runs twice in a new database and leaves new public tables ungranted",
  async () => {
    const admin = await connectStackDb();
    const database = `ha_bootstrap_test_${crypto.randomUUID().slice(0, 8)}`;
    await admin.unsafe(`create database ${database}`);
    try {
      const url = new URL(stackDbUrl());
      url.pathname = `/${database}`;
      const db = await connectStackDb(url.href);
      try {
        const script = await Deno.readTextFile(new URL("./bootstrap.sql", import.meta.url));
        await db.unsafe(script).simple();
        await db.unsafe(script).simple();

        const roles = await db`
        select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles
        where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')
        order by rolname`;
        assert.deepEqual(roles.map((role) => ({ ...role })), [
          { rolname: "anon", rolcanlogin: false, rolinherit: false, rolbypassrls: false },
          { rolname: "authenticated", rolcanlogin: false, rolinherit: false, rolbypassrls: false },
          { rolname: "authenticator", rolcanlogin: true, rolinherit: false, rolbypassrls: false },
          { rolname: "service_role", rolcanlogin: false, rolinherit: false, rolbypassrls: true },
        ]);
        const [membership] = await db`
        select pg_has_role('authenticator', 'anon', 'member') as anon,
               pg_has_role('authenticator', 'authenticated', 'member') as authenticated,
               pg_has_role('authenticator', 'service_role', 'member') as service_role`;
        assert.deepEqual(Object.entries(membership).filter(([, member]) => !member), []);

        const extensions = await db`
        select extname, extnamespace::regnamespace::text as schema from pg_extension
        where extname in ('uuid-ossp', 'pgcrypto', 'supabase_vault') order by extname`;
        assert.deepEqual(extensions.map((row) => ({ ...row })), [
          { extname: "pgcrypto", schema: "extensions" },
          { extname: "supabase_vault", schema: "vault" },
          { extname: "uuid-ossp", schema: "extensions" },
        ]);

        await db`create table public.bootstrap_probe (id int)`;
        const [grants] = await db`
        select has_table_privilege('anon', 'public.bootstrap_probe', 'select') as anon,
               has_table_privilege('authenticated', 'public.bootstrap_probe', 'select') as authenticated,
               has_table_privilege('service_role', 'public.bootstrap_probe', 'select') as service_role,
               has_schema_privilege('anon', 'public', 'usage') as anon_public,
               has_schema_privilege('service_role', 'extensions', 'usage') as service_extensions`;
        assert.deepEqual({ ...grants }, {
          anon: false,
          authenticated: false,
          service_role: false,
          anon_public: true,
          service_extensions: true,
        });

        const [{ id }] = await db`select vault.create_secret('in another database') as id`;
        const [{ secret }] = await db`
        select decrypted_secret as secret from vault.decrypted_secrets where id = ${id}`;
        assert.equal(secret, "in another database");
      } finally {
        await db.end({ timeout: 5 });
      }
    } finally {
      await admin.unsafe(`drop database if exists ${database} with (force)`);
      await admin.end({ timeout: 5 });
    }
  },
);
