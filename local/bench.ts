// Benchmark: how long the product itself takes per site, on the local stack, through the real path
// (trigger → pg_net → gateway → edge runtime → SSH → clpctl stand-in, Matomo stand-in → database).
// The stand-ins answer at once, or after a set delay per clpctl call that plays CloudPanel's and
// Let's Encrypt's own time; what is left over is the product's overhead. Run by local/bench.

import postgres from "postgres";

const sql = postgres(Deno.env.get("HA_DB_URL")!, { max: 4, onnotice: () => {} });
const control = `${Deno.env.get("HA_CLOUDPANEL_DIR")}/control`;
const burst = Number(Deno.args[0] ?? 20);
const delayMs = Number(Deno.args[1] ?? 2000);

const ms = (a: Date, b: Date) => b.getTime() - a.getTime();
function stats(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(sorted.length, 1);
  return { n: sorted.length, mean: Math.round(mean), p50: at(0.5), p95: at(0.95), max: at(1) };
}

async function waitActive(ids: string[], timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [{ done, failed }] = await sql`
      select count(*) filter (where status_hosting = 'active')::int as done,
             count(*) filter (where status_hosting = 'failed')::int as failed
      from public.sites where id = any(${ids}::uuid[])`;
    if (failed > 0) throw new Error(`${failed} site(s) failed`);
    if (done === ids.length) return;
    if (Date.now() > until) throw new Error(`only ${done} of ${ids.length} active in time`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** One scenario: `count` sites get DNS active together; per-site figures from the events. */
async function scenario(label: string, count: number, clpctlDelayMs: number) {
  if (clpctlDelayMs > 0) await Deno.writeTextFile(`${control}/delay_ms`, `${clpctlDelayMs}\n`);
  else await Deno.remove(`${control}/delay_ms`).catch(() => {});
  const tag = crypto.randomUUID().slice(0, 6);
  const domains = Array.from({ length: count }, (_, i) => `bench-${tag}-${i}.example.net`);
  const rows = await sql<{ id: string }[]>`
    insert into public.sites ${sql(domains.map((domain) => ({ domain, status_dns: "pending" })))}
    returning id`;
  const ids = rows.map((r) => r.id);
  const started = new Date();
  await sql`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;
  await waitActive(ids, 60_000 + count * (2 * clpctlDelayMs + 5_000));
  const wall = Date.now() - started.getTime();

  const perSite = await sql<
    {
      claimed: Date;
      finished: Date;
      claim_to_active: number;
      site: number;
      certificate: number;
      analytics: number;
    }[]
  >`
    select min(created_at) filter (where step = 'claim') as claimed,
           max(created_at) filter (where step = 'finish') as finished,
           max(duration_ms) filter (where step = 'finish' and code = 'ACTIVE') as claim_to_active,
           max(duration_ms) filter (where step = 'site') as site,
           max(duration_ms) filter (where step = 'certificate') as certificate,
           max(duration_ms) filter (where step = 'analytics') as analytics
    from public.hosting_events where site_id = any(${ids}::uuid[]) group by site_id`;
  const clpctlTime = 2 * clpctlDelayMs; // site:add:static + lets-encrypt:install:certificate
  return {
    scenario: label,
    sites: count,
    clpctl_delay_ms: clpctlDelayMs,
    wall_ms: wall,
    dns_active_to_claim_ms: stats(perSite.map((s) => ms(started, s.claimed))),
    dns_active_to_active_ms: stats(perSite.map((s) => ms(started, s.finished))),
    claim_to_active_ms: stats(perSite.map((s) => s.claim_to_active)),
    overhead_beyond_clpctl_ms: stats(perSite.map((s) => s.claim_to_active - clpctlTime)),
    step_site_ms: stats(perSite.map((s) => s.site)),
    step_certificate_ms: stats(perSite.map((s) => s.certificate)),
    step_analytics_ms: stats(perSite.map((s) => s.analytics)),
  };
}

try {
  const results = [
    await scenario("one site, instant CloudPanel", 1, 0),
    await scenario(`one site, CloudPanel ${delayMs} ms per command`, 1, delayMs),
    await scenario(`burst of ${burst}, instant CloudPanel`, burst, 0),
    await scenario(`burst of ${burst}, CloudPanel ${delayMs} ms per command`, burst, delayMs),
  ];
  for (const r of results) {
    console.log(`\n${r.scenario}: ${r.sites} site(s) active in ${r.wall_ms} ms`);
    for (
      const key of Object.keys(r).filter((k) =>
        k.endsWith("_ms") && k !== "wall_ms" && k !== "clpctl_delay_ms"
      )
    ) {
      const s = r[key as keyof typeof r] as ReturnType<typeof stats>;
      console.log(
        `  ${key.padEnd(28)} mean ${String(s.mean).padStart(6)}  p50 ${
          String(s.p50).padStart(6)
        }  p95 ${String(s.p95).padStart(6)}  max ${String(s.max).padStart(6)}`,
      );
    }
  }
  const [metrics] = await sql`select * from public.hosting_metrics`;
  console.log("\nhosting_metrics:", JSON.stringify(metrics));
  await Deno.mkdir(new URL("../.reports", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL("../.reports/bench.json", import.meta.url),
    JSON.stringify({ at: new Date().toISOString(), results, metrics }, null, 2),
  );
} finally {
  await Deno.remove(`${control}/delay_ms`).catch(() => {});
  await sql.end();
}
