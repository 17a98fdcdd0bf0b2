// Several servers, end to end: two sshd-based CloudPanel stand-ins (A and B) listed in
// public.hosting_servers, the served function woken by the trigger as in production. Server B
// accepts only its own key, which the function has as SSH_PRIVATE_KEY__CLOUDPANEL_B; A is reached
// with SSH_PRIVATE_KEY. Counts what reached each server, not only the final rows.

import assert from "node:assert/strict";
import {
  cleanUp,
  cloudpanelFault,
  clpctlCalls,
  dnsRecords,
  e2e,
  inventory,
  type Server,
  setting,
  type Sql,
  sshConnections,
  uniqueDomain,
} from "./stack.ts";

/** Polls `done` until it holds, or fails naming `what`. */
async function eventually(done: () => Promise<boolean>, timeoutMs: number, what: string) {
  const until = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > until) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

interface Listed {
  name: string;
  on: Server;
  capacity: number;
  maxConcurrent?: number;
  accepts?: boolean;
  ipv4?: string;
  fingerprint?: string;
}

/** Lists servers for one test (none may be left from another). */
async function listServers(sql: Sql, servers: Listed[]) {
  for (const s of servers) {
    const port = Number(setting(s.on === "a" ? "SSH_PORT" : "HA_SSH_B_PORT"));
    const fingerprint = s.fingerprint ??
      setting(s.on === "a" ? "SSH_HOST_KEY_FINGERPRINT" : "HA_SSH_B_HOST_KEY_FINGERPRINT");
    await sql`
      insert into public.hosting_servers (name, ssh_host, ssh_port, ssh_user, host_key_fingerprint,
                                          max_concurrent, capacity, accepts_new_sites, public_ipv4)
      values (${s.name}, '127.0.0.1', ${port}, 'root', ${fingerprint}, ${s.maxConcurrent ?? 3},
              ${s.capacity}, ${s.accepts ?? true}, ${s.ipv4 ?? null})`;
  }
}

/** Each listed server's stand-in, by name. */
const STANDIN: Record<string, Server> = {
  "cloudpanel-a": "a",
  "cloudpanel-b": "b",
  "cloudpanel-full": "a",
};

/** Removes the sites from the server each was placed on, the rows, and the servers. */
async function cleanUpServers(sql: Sql, ids: string[]) {
  const rows = await sql<{ id: string; domain: string; hosting_server: string | null }[]>`
    select id, domain, hosting_server from public.sites where id = any(${ids}::uuid[])`;
  for (const server of ["a", "b"] as const) {
    await cleanUp(
      sql,
      rows.filter((r) => STANDIN[r.hosting_server ?? ""] === server),
      server,
    );
  }
  await sql`delete from public.sites where id = any(${ids}::uuid[])`;
  await sql`delete from public.hosting_servers`;
}

/** Inserts sites in one statement (DNS not active yet), optionally pinned; returns their ids. */
async function insertSites(sql: Sql, domains: string[], pinned: string | null = null) {
  const rows = await sql<{ id: string }[]>`
    insert into public.sites (domain, hosting_server)
    select d, ${pinned}::text from unnest(${domains}::text[]) with ordinality as t(d, n) order by n
    returning id`;
  return rows.map((r) => r.id);
}

async function waitAllFinal(sql: Sql, ids: string[], timeoutMs = 60_000) {
  await eventually(
    async () => {
      const [{ open }] = await sql<{ open: number }[]>`
        select count(*)::int as open from public.sites
        where id = any(${ids}::uuid[]) and status_hosting not in ('active', 'failed')`;
      return open === 0;
    },
    timeoutMs,
    "every site final",
  );
}

const siteAdds = async (domain: string, server: Server) =>
  (await clpctlCalls(domain, server)).filter((c) => c.startsWith("site:add:static")).length;

e2e(
  "placement by free capacity, a full server skipped, a pinned site, each provisioned on its own server",
  async (sql) => {
    const ids: string[] = [];
    try {
      await listServers(sql, [
        { name: "cloudpanel-a", on: "a", capacity: 2 },
        // B publishes an address of its own: the DNS side must point B's sites there first.
        { name: "cloudpanel-b", on: "b", capacity: 3, ipv4: "192.0.2.10" },
        { name: "cloudpanel-full", on: "a", capacity: 0 },
      ]);
      const domains = [1, 2, 3, 4].map((n) => uniqueDomain(`place${n}`));
      ids.push(...await insertSites(sql, domains));
      const pinnedDomain = uniqueDomain("pinned");
      ids.push(...await insertSites(sql, [pinnedDomain], "cloudpanel-full"));

      const targets = await sql<{ domain: string; hosting_server: string; ipv4: string | null }[]>`
      select domain, hosting_server, ipv4 from public.hosting_dns_targets
      where site_id = any(${ids}::uuid[])`;
      const placed = Object.fromEntries(targets.map((t) => [t.domain, t.hosting_server]));
      // b 3 free > a 2; then 2 = 2, a by name; then b 2 > a 1; then 1 = 1, a.
      assert.deepEqual(domains.map((d) => placed[d]), [
        "cloudpanel-b",
        "cloudpanel-a",
        "cloudpanel-b",
        "cloudpanel-a",
      ]);
      assert.equal(placed[pinnedDomain], "cloudpanel-full", "pinned, though it is full");

      // The DNS side publishes what the view says, then marks DNS active (one statement).
      for (const t of targets) if (t.ipv4) await dnsRecords(t.domain, { addresses: [t.ipv4] });
      await sql`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;
      await waitAllFinal(sql, ids);

      const rows = await sql<{ domain: string; status_hosting: string; hosting_error: string }[]>`
      select domain, status_hosting, hosting_error from public.sites where id = any(${ids}::uuid[])`;
      assert.deepEqual(rows.filter((r) => r.status_hosting !== "active"), [], "every site active");
      for (const domain of [...domains, pinnedDomain]) {
        const on = STANDIN[placed[domain]];
        const other: Server = on === "a" ? "b" : "a";
        assert.equal((await inventory(domain, on)).length, 1, `${domain} exists on ${on}`);
        assert.deepEqual(await inventory(domain, other), [], `${domain} not on ${other}`);
        assert.equal(await siteAdds(domain, on), 1, `${domain}: one site:add:static`);
        assert.deepEqual(
          await clpctlCalls(domain, other),
          [],
          `${domain}: nothing reached ${other}`,
        );
      }
      const [full] = await sql<{ sites: number; free_capacity: number }[]>`
      select sites::int, free_capacity::int from public.hosting_server_metrics
      where server = 'cloudpanel-full'`;
      assert.deepEqual({ ...full }, { sites: 1, free_capacity: 0 });

      // Removal runs on the site's own server too.
      const onB = domains.find((d) => placed[d] === "cloudpanel-b") as string;
      await sql`select public.hosting_deprovision(${onB})`;
      await eventually(
        async () => {
          const [row] = await sql<{ status_hosting: string }[]>`
            select status_hosting from public.sites where domain = ${onB}`;
          return row.status_hosting === "removed";
        },
        30_000,
        `${onB} removed`,
      );
      assert.deepEqual(await inventory(onB, "b"), [], "gone from B");
      assert.ok((await clpctlCalls(onB, "b")).some((c) => c.startsWith("site:delete 0")));
      assert.ok(!(await clpctlCalls(onB, "a")).some((c) => c.startsWith("site:delete")));
    } finally {
      await cleanUpServers(sql, ids);
    }
  },
);

e2e(
  "per-server caps hold under a burst: never more than a server's max_concurrent at once",
  async (sql) => {
    const ids: string[] = [];
    try {
      await listServers(sql, [
        { name: "cloudpanel-a", on: "a", capacity: 100, maxConcurrent: 1 },
        { name: "cloudpanel-b", on: "b", capacity: 100, maxConcurrent: 2 },
      ]);
      const onA = [1, 2, 3, 4, 5].map((n) => uniqueDomain(`burst-a${n}`));
      const onB = [1, 2, 3, 4, 5].map((n) => uniqueDomain(`burst-b${n}`));
      ids.push(...await insertSites(sql, onA, "cloudpanel-a"));
      ids.push(...await insertSites(sql, onB, "cloudpanel-b"));
      // Each site takes ≥ 400 ms on its server, so the sampling below sees every overlap.
      for (const d of onA) await cloudpanelFault(d, "delay_ms", "400 site:add:static", "a");
      for (const d of onB) await cloudpanelFault(d, "delay_ms", "400 site:add:static", "b");
      await sql`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;

      // Sample the database's own count per server until all are final.
      const peak: Record<string, number> = {};
      const until = Date.now() + 90_000;
      while (true) {
        const rows = await sql<{ server: string; busy: number; open: number }[]>`
        select hosting_server as server,
               count(*) filter (where status_hosting = 'provisioning'
                                and hosting_lease_until > now())::int as busy,
               count(*) filter (where status_hosting not in ('active', 'failed'))::int as open
        from public.sites where id = any(${ids}::uuid[]) group by 1`;
        for (const r of rows) peak[r.server] = Math.max(peak[r.server] ?? 0, r.busy);
        if (rows.every((r) => r.open === 0)) break;
        assert.ok(Date.now() < until, "the burst drained within 90 s");
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      // Each cap reached and never passed (the global cap, 3, lets both servers fill theirs).
      assert.deepEqual(peak, { "cloudpanel-a": 1, "cloudpanel-b": 2 });
      const [{ active }] = await sql<{ active: number }[]>`
      select count(*)::int as active from public.sites
      where id = any(${ids}::uuid[]) and status_hosting = 'active'`;
      assert.equal(active, 10);
      for (const d of onA) assert.equal(await siteAdds(d, "a"), 1, d);
      for (const d of onB) assert.equal(await siteAdds(d, "b"), 1, d);
    } finally {
      await cleanUpServers(sql, ids);
    }
  },
);

e2e(
  "one server broken (wrong host key) while the other keeps provisioning; the fix resumes it",
  async (sql) => {
    const ids: string[] = [];
    try {
      await listServers(sql, [
        {
          name: "cloudpanel-a",
          on: "a",
          capacity: 100,
          fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        },
        { name: "cloudpanel-b", on: "b", capacity: 100 },
      ]);
      const onA = [1, 2, 3].map((n) => uniqueDomain(`broken-a${n}`));
      const onB = [1, 2, 3].map((n) => uniqueDomain(`healthy-b${n}`));
      const idsA = await insertSites(sql, onA, "cloudpanel-a");
      const idsB = await insertSites(sql, onB, "cloudpanel-b");
      ids.push(...idsA, ...idsB);
      const connectionsBefore = await sshConnections("a");
      await sql`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;

      await waitAllFinal(sql, idsB);
      await eventually(
        async () => {
          const [{ paused }] = await sql<{ paused: boolean }[]>`
          select coalesce(paused_until > now(), false) as paused from public.hosting_servers
          where name = 'cloudpanel-a'`;
          return paused;
        },
        30_000,
        "server A paused",
      );
      const b = await sql<{ status_hosting: string }[]>`
      select status_hosting from public.sites where id = any(${idsB}::uuid[])`;
      assert.deepEqual(b.map((r) => r.status_hosting), ["active", "active", "active"]);
      // The first of A's sites met the wrong key; the others were handed back or never claimed.
      const a = await sql<{ status_hosting: string; hosting_attempts: number; error: string }[]>`
      select status_hosting, hosting_attempts, coalesce(hosting_error, '') as error
      from public.sites where id = any(${idsA}::uuid[])`;
      assert.deepEqual(a.map((r) => [r.status_hosting, r.hosting_attempts]), [
        ["pending", 0],
        ["pending", 0],
        ["pending", 0],
      ], "A's sites wait, no attempt used up");
      assert.ok(a.some((r) => r.error.startsWith("HOST_KEY_MISMATCH")), JSON.stringify(a));
      const [server] = await sql<{ paused: boolean; last_code: string }[]>`
      select paused_until > now() as paused, last_code from public.hosting_servers
      where name = 'cloudpanel-a'`;
      assert.deepEqual({ ...server }, { paused: true, last_code: "HOST_KEY_MISMATCH" });
      for (const d of onA) assert.deepEqual(await clpctlCalls(d, "a"), [], `nothing ran for ${d}`);
      const connections = (await sshConnections("a")) - connectionsBefore;
      assert.ok(connections >= 1 && connections <= 2, `A was tried once per run (${connections})`);
      const [metrics] = await sql<{ paused: boolean; sites_active: number }[]>`
      select paused, sites_active::int from public.hosting_server_metrics where server = 'cloudpanel-a'`;
      assert.deepEqual({ ...metrics }, { paused: true, sites_active: 0 });

      // The operator pins the right key: the pause ends, the waiting sites are due and woken at once.
      await sql`update public.hosting_servers set host_key_fingerprint = ${
        setting("SSH_HOST_KEY_FINGERPRINT")
      } where name = 'cloudpanel-a'`;
      await waitAllFinal(sql, idsA, 30_000);
      const fixed = await sql<{ status_hosting: string }[]>`
      select status_hosting from public.sites where id = any(${idsA}::uuid[])`;
      assert.deepEqual(fixed.map((r) => r.status_hosting), ["active", "active", "active"]);
      for (const d of onA) assert.equal(await siteAdds(d, "a"), 1, d);
      for (const d of [...onA, ...onB]) {
        assert.deepEqual(await inventory(d, d.startsWith("broken") ? "b" : "a"), [], d);
      }
    } finally {
      await cleanUpServers(sql, ids);
    }
  },
);
