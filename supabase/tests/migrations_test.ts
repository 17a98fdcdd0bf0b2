// The migrations, applied with `supabase db push --db-url` as on a hosted project, to a fresh
// database and to one whose public.sites already exists with only the Website Factory's columns.
// Needs the local stack's Postgres (HA_DB_URL) and the pinned Supabase CLI on PATH.

import assert from "node:assert/strict";
import postgres from "postgres";
import { stackSetting, stackTest } from "./stack_env.ts";

const root = new URL("../../", import.meta.url).pathname;

function urlFor(database: string): string {
  const url = new URL(stackSetting("HA_DB_URL"));
  url.pathname = `/${database}`;
  return url.toString();
}

async function withDatabase(fn: (sql: ReturnType<typeof postgres>, url: string) => Promise<void>) {
  const name = `ha_migrations_${crypto.randomUUID().slice(0, 8)}`;
  const admin = postgres(urlFor("postgres"), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const sql = postgres(urlFor(name), { max: 1, onnotice: () => {} });
  try {
    // What every Supabase project has before its first migration (roles, extensions schema, Vault).
    await sql.file(`${root}local/standins/postgres/bootstrap.sql`);
    await fn(sql, urlFor(name));
  } finally {
    await sql.end();
    await admin.unsafe(`drop database ${name} with (force)`);
    await admin.end();
  }
}

async function dbPush(url: string, cwd = root): Promise<string> {
  const output = await new Deno.Command("supabase", {
    args: ["db", "push", "--db-url", `${url}?sslmode=disable`, "--yes"],
    cwd,
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, `supabase db push failed:\n${text}`);
  return text;
}

const COLUMNS = [
  ["id", "uuid"],
  ["domain", "text"],
  ["status_dns", "text"],
  ["status_hosting", "text"],
  ["hosting_doc_root", "text"],
  ["matomo_site_id", "integer"],
  ["hosting_site_user", "text"],
  ["hosting_error", "text"],
  ["hosting_attempts", "integer"],
  ["hosting_lease_until", "timestamp with time zone"],
  ["hosting_next_attempt_at", "timestamp with time zone"],
  ["hosting_updated_at", "timestamp with time zone"],
];

async function assertProductSchema(sql: ReturnType<typeof postgres>) {
  const columns = await sql<{ column_name: string; data_type: string }[]>`
    select column_name, data_type from information_schema.columns
    where table_schema = 'public' and table_name = 'sites'`;
  const have = new Map(columns.map((c) => [c.column_name, c.data_type]));
  for (const [name, type] of COLUMNS) assert.equal(have.get(name), type, `sites.${name}`);
  const [objects] = await sql`
    select to_regclass('public.hosting_events') is not null as events,
           to_regclass('public.hosting_metrics') is not null as metrics,
           (select count(*) from pg_trigger where tgrelid = 'public.sites'::regclass
              and tgname in ('hosting_automator_dispatch_insert', 'hosting_automator_dispatch_update',
                             'hosting_on_reset'))::int as triggers,
           (select count(*) from pg_proc where proname in ('hosting_claim', 'hosting_finish',
              'hosting_automator_sweep', 'hosting_retry', 'hosting_record_event', 'hosting_peek'))::int
             as functions`;
  assert.deepEqual({ ...objects }, { events: true, metrics: true, triggers: 3, functions: 6 });
}

stackTest({
  needs: ["HA_DB_URL"],
  name: "the migrations apply with supabase db push to a fresh database, twice",
  sanitizeResources: false,
  async fn() {
    await withDatabase(async (sql, url) => {
      await dbPush(url);
      await assertProductSchema(sql);
      const [{ status_hosting, hosting_attempts }] = await sql`
        insert into public.sites (domain) values ('fresh.example.com')
        returning status_hosting, hosting_attempts`;
      assert.equal(status_hosting, "pending");
      assert.equal(hosting_attempts, 0);
      assert.match(await dbPush(url), /up to date/i, "a second push has nothing to do");
    });
  },
});

stackTest({
  needs: ["HA_DB_URL"],
  name: "the migrations complete an existing sites table and keep its rows",
  sanitizeResources: false,
  async fn() {
    await withDatabase(async (sql, url) => {
      await sql.unsafe(`
        create table public.sites (
          id uuid primary key default gen_random_uuid(),
          domain text not null unique,
          status_dns text,
          status_hosting text
        );
        insert into public.sites (domain, status_dns, status_hosting) values
          ('kept-active.example.com', 'active', 'active'),
          ('kept-null.example.com', 'pending', null);`);
      await dbPush(url);
      await assertProductSchema(sql);
      const rows = await sql`
        select domain, status_dns, status_hosting, hosting_attempts from public.sites order by domain`;
      assert.deepEqual(rows.map((r) => ({ ...r })), [
        {
          domain: "kept-active.example.com",
          status_dns: "active",
          status_hosting: "active",
          hosting_attempts: 0,
        },
        {
          domain: "kept-null.example.com",
          status_dns: "pending",
          status_hosting: "pending",
          hosting_attempts: 0,
        },
      ]);
      const [{ uniques }] = await sql`
        select count(*)::int as uniques from pg_index
        where indrelid = 'public.sites'::regclass and indisunique and indnatts = 1
          and indkey[0] = (select attnum from pg_attribute
                           where attrelid = 'public.sites'::regclass and attname = 'domain')`;
      assert.equal(uniques, 1, "the existing unique constraint on domain is kept, not doubled");
      await assert.rejects(
        sql`update public.sites set status_hosting = 'done' where domain = 'kept-null.example.com'`,
        /sites_status_hosting_check/,
      );
    });
  },
});

stackTest({
  needs: ["HA_DB_URL"],
  name: "a one-server installation upgrades to several servers with db push and nothing else",
  sanitizeResources: false,
  async fn() {
    await withDatabase(async (sql, url) => {
      // The installation as it was: every migration before hosting_servers, and its sites.
      const before = await Deno.makeTempDir({ prefix: "ha-upgrade-" });
      try {
        await Deno.mkdir(`${before}/supabase/migrations`, { recursive: true });
        for await (const entry of Deno.readDir(`${root}supabase/migrations`)) {
          if (entry.name < "20261201120000") {
            await Deno.copyFile(
              `${root}supabase/migrations/${entry.name}`,
              `${before}/supabase/migrations/${entry.name}`,
            );
          }
        }
        await dbPush(url, before);
      } finally {
        await Deno.remove(before, { recursive: true });
      }
      await sql`
        insert into public.sites (domain, status_dns, status_hosting, hosting_doc_root,
                                  matomo_site_id)
        values ('live.example.com', 'active', 'active', '/home/live/htdocs/live.example.com', 7),
               ('due.example.com', 'active', 'pending', null, null)`;

      assert.doesNotMatch(await dbPush(url), /up to date/i, "the new migration is applied");
      const rows = await sql`
        select domain, status_hosting, hosting_server, hosting_doc_root from public.sites
        order by domain`;
      assert.deepEqual(rows.map((r) => ({ ...r })), [
        {
          domain: "due.example.com",
          status_hosting: "pending",
          hosting_server: null,
          hosting_doc_root: null,
        },
        {
          domain: "live.example.com",
          status_hosting: "active",
          hosting_server: null,
          hosting_doc_root: "/home/live/htdocs/live.example.com",
        },
      ]);
      // A function deployed before the upgrade calls the claim as it always did: the due site is
      // still claimed for its one server (SSH_HOST).
      const [{ claim }] = await sql`
        select public.hosting_claim(p_limit => 5, p_ssh_target => 'ssh:root@cp.example.com:22',
          p_ssh_credential => 'sha256:0011223344556677', p_matomo_target => 'matomo:https://m',
          p_matomo_credential => 'sha256:8899aabbccddeeff') as claim`;
      assert.deepEqual(
        claim.claimed.map((job: { domain: string; server: unknown }) => [job.domain, job.server]),
        [["due.example.com", null]],
      );
      const [{ placed }] = await sql`
        insert into public.sites (domain) values ('new.example.com') returning hosting_server as placed`;
      assert.equal(placed, null, "with no listed server a new site still belongs to SSH_HOST");
    });
  },
});
