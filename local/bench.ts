// Benchmark (issue 8): the product's own cost per site on the local stack, through the real path
// (trigger → pg_net → gateway → edge runtime → SSH to a real sshd → clpctl stand-in, Matomo
// stand-in → database), with the stand-ins' own time taken out, against the issue's targets and
// the bare-ssh2 floor measured in the same run. Run by local/bench, which gives it a stack of its own.

// @ts-types="@types/ssh2"
import { Client } from "ssh2";
import postgres from "postgres";
import type { Buffer as _NodeTypes } from "node:buffer"; // loads the node types ssh2's rely on
import {
  type ClpctlCall,
  type GatewayLine,
  parseCalls,
  parseGateway,
  parseJsonLines,
  type Stats,
  stats,
  table,
  type Verdict,
  verdict,
} from "./bench_stats.ts";

const need = (name: string) => {
  const value = Deno.env.get(name);
  if (!value) throw new Error(`${name} is not set: run local/bench, not bench.ts`);
  return value;
};
const stackDir = need("HA_STACK_DIR");
const sql = postgres(need("HA_DB_URL"), { max: 4, onnotice: () => {} });
const control = `${need("HA_CLOUDPANEL_DIR")}/control`;
const matomoControl = need("HA_MATOMO_CONTROL_URL");
const functionPath = "/functions/v1/hosting-automator";
const functionUrl = `${need("SUPABASE_URL")}${functionPath}`;
const functionsEnv = `${stackDir}/functions.env`;
const logs = `${stackDir}/logs`;
const benchStarted = performance.now();
const CLOCK_TICK_MS = 10; // getconf CLK_TCK = 100 on Linux x86-64

// Fixed delays of the burst (issue 8 §1.2).
const SITE_DELAY_MS = 1_000;
const CERTIFICATE_DELAY_MS = 3_000;
const MATOMO_DELAY_MS = 500;
const BURST = 24;
const SEQUENTIAL = 30;
const COLD = 5;
const UPDATE_ROWS = 1_000;

const say = (line: string) =>
  console.log(`[${((performance.now() - benchStarted) / 1000).toFixed(1)} s] ${line}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const readText = (path: string) => Deno.readTextFile(path).catch(() => "");
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------------------------------------
// The bare-ssh2 floor: the same library, key and sshd, nothing of the product.

function sshOptions() {
  return {
    host: need("SSH_HOST"),
    port: Number(need("SSH_PORT")),
    username: "root",
    privateKey: need("SSH_PRIVATE_KEY").replaceAll("\\n", "\n"),
    readyTimeout: 10_000,
  };
}

/** With TCP_NODELAY, as the product connects: without it every exchange waits on a delayed ACK. */
function bareConnect(): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.on("connect", () => c.setNoDelay(true));
    c.on("ready", () => resolve(c)).on("error", reject).connect(sshOptions());
  });
}

function bareExec(c: Client, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    c.exec(line, (error, stream) => {
      if (error) return reject(error);
      stream.on("close", () => resolve()).on("data", () => {});
      stream.stderr.on("data", () => {});
      stream.end();
    });
  });
}

async function floor() {
  const handshake: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    const c = await bareConnect();
    await bareExec(c, "true");
    handshake.push(performance.now() - started);
    c.end();
  }
  const c = await bareConnect();
  const exec: number[] = [];
  for (let i = 0; i < 30; i++) {
    const started = performance.now();
    await bareExec(c, "true");
    exec.push(performance.now() - started);
  }
  c.end();
  return { connect_handshake_true_ms: stats(handshake.slice(1)), exec_true_ms: stats(exec) };
}

// ---------------------------------------------------------------------------------------------
// The function's instance (a process of the edge-runtime stand-in) and its /proc figures.

const baseEnv = await Deno.readTextFile(functionsEnv);
let instanceCount = 0;

/** Retires the running instance and boots a new one with `overrides`; returns pid and boot time. */
async function newInstance(overrides: Record<string, string> = {}) {
  instanceCount++;
  const extra = Object.entries(overrides).map(([k, v]) => `${k}='${v}'`);
  await Deno.writeTextFile(
    functionsEnv,
    [baseEnv.trimEnd(), `# local/bench instance ${instanceCount}`, ...extra, ""].join("\n"),
  );
  const started = performance.now();
  const answer = await fetch(functionUrl); // a GET: the function answers 405 once it runs
  await answer.body?.cancel();
  const bootMs = performance.now() - started;
  const pid = await workerPid();
  const proc = procStats(pid);
  return { pid, bootMs, cpuAtBoot: proc.cpuMs, rssAtBootMiB: proc.rssMiB };
}

async function workerPid(): Promise<number> {
  const text = await readText(`${logs}/edge-runtime.log`);
  const pids = [...text.matchAll(/worker hosting-automator \(pid (\d+)\) listening/g)];
  if (pids.length === 0) throw new Error("no hosting-automator worker in edge-runtime.log");
  return Number(pids[pids.length - 1][1]);
}

function procStats(pid: number) {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuMs = (Number(fields[11]) + Number(fields[12])) * CLOCK_TICK_MS; // utime + stime
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
  return { cpuMs, peakRssMiB: kib("VmHWM") / 1024, rssMiB: kib("VmRSS") / 1024 };
}

// ---------------------------------------------------------------------------------------------
// Sites, events, and the stand-ins' own time.

interface Site {
  id: string;
  domain: string;
}

async function newSites(count: number, label: string): Promise<Site[]> {
  const tag = crypto.randomUUID().slice(0, 6);
  const domains = Array.from({ length: count }, (_, i) => `b${tag}-${label}-${i}.example.net`);
  const rows: Site[] = [];
  for (let i = 0; i < domains.length; i += 500) {
    const chunk = domains.slice(i, i + 500).map((domain) => ({ domain, status_dns: "pending" }));
    rows.push(...await sql<Site[]>`insert into public.sites ${sql(chunk)} returning id, domain`);
  }
  return rows;
}

/** Turns DNS active in one statement; the DB clock just before its commit, in epoch ms. */
async function activate(sites: Site[]): Promise<number> {
  const [{ at }] = await sql<{ at: Date }[]>`
    with done as (
      update public.sites set status_dns = 'active' where id = any(${
    sites.map((s) => s.id)
  }::uuid[])
      returning 1)
    select clock_timestamp() as at from done limit 1`;
  return at.getTime();
}

async function waitSettled(sites: Site[], timeoutMs: number, pollMs = 10) {
  const ids = sites.map((s) => s.id);
  const until = Date.now() + timeoutMs;
  for (;;) {
    const [{ active, failed }] = await sql`
      select count(*) filter (where status_hosting = 'active')::int as active,
             count(*) filter (where status_hosting = 'failed')::int as failed
      from public.sites where id = any(${ids}::uuid[])`;
    if (failed > 0) throw new Error(`${failed} site(s) failed: see hosting_events`);
    if (active === ids.length) return;
    if (Date.now() > until) throw new Error(`only ${active} of ${ids.length} active in time`);
    await sleep(pollMs);
  }
}

interface SiteEvents {
  site_id: string;
  claim_at: number;
  finish_at: number;
  site_ms: number;
  certificate_ms: number;
  analytics_ms: number;
}

async function events(sites: Site[]): Promise<Map<string, SiteEvents>> {
  const rows = await sql<
    {
      site_id: string;
      claim_at: Date;
      finish_at: Date;
      site_ms: number;
      certificate_ms: number;
      analytics_ms: number;
    }[]
  >`
    select site_id,
           max(created_at) filter (where step = 'claim') as claim_at,
           max(created_at) filter (where step = 'finish' and code = 'ACTIVE') as finish_at,
           sum(duration_ms) filter (where step = 'site')::float8 as site_ms,
           sum(duration_ms) filter (where step = 'certificate')::float8 as certificate_ms,
           sum(duration_ms) filter (where step = 'analytics')::float8 as analytics_ms
    from public.hosting_events where site_id = any(${sites.map((s) => s.id)}::uuid[])
    group by site_id`;
  return new Map(rows.map((r) => [r.site_id, {
    ...r,
    claim_at: r.claim_at.getTime(),
    finish_at: r.finish_at.getTime(),
  }]));
}

interface MatomoRequest {
  at: string;
  apiMethod: string | null;
  duration_ms: number | null;
}

async function matomoRequests(): Promise<Array<MatomoRequest & { t: number }>> {
  const answer = await fetch(`${matomoControl}/requests`);
  const entries = await answer.json() as MatomoRequest[];
  return entries.map((e) => ({ ...e, t: Date.parse(e.at) }));
}

async function matomoFault(body: Record<string, unknown>) {
  const answer = await fetch(`${matomoControl}/fault`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!answer.ok) throw new Error(`matomo fault: ${answer.status} ${await answer.text()}`);
}

interface Logs {
  calls: ClpctlCall[];
  gateway: GatewayLine[];
  fn: Array<Record<string, unknown> & { at: number }>;
  matomo: Array<MatomoRequest & { t: number }>;
}

async function readLogs(): Promise<Logs> {
  return {
    calls: parseCalls(await readText(`${control}/calls.log`)),
    gateway: parseGateway(await readText(`${logs}/gateway.log`)),
    fn: parseJsonLines(await readText(`${logs}/functions.log`)),
    matomo: await matomoRequests(),
  };
}

// ---------------------------------------------------------------------------------------------
// One site at a time: overhead and its split.

interface SiteFigures {
  cold: boolean;
  total_ms: number;
  own_clpctl_ms: number;
  own_matomo_ms: number;
  overhead_ms: number;
  trigger_to_request_ms: number;
  request_to_claim_ms: number;
  ssh_connect_ms: number;
  remote_round_trips_ms: number;
  execs: number;
  matomo_client_ms: number;
  database_calls_ms: number;
  other_ms: number;
}

function figuresOf(site: Site, t0: number, ev: SiteEvents, all: Logs, cold: boolean): SiteFigures {
  const request = all.gateway.find((l) =>
    l.method === "POST" && l.path === functionPath && l.arrived >= t0 - 2
  );
  if (!request) throw new Error(`no request for ${site.domain} in the gateway log`);
  const inRun = (at: number) => at >= request.arrived && at <= ev.finish_at + 5;
  const connects = all.fn.filter((r) => r.event === "ssh_connected" && inRun(r.at));
  const execs = all.fn.filter((r) => r.event === "ssh_exec" && inRun(r.at));
  const own = all.calls.filter((c) => c.domain === site.domain);
  const ownClpctl = sum(own.map((c) => c.durationMs));
  // Each command's round trip beyond its own run time; the doc-root check is not clpctl (≈ 0).
  const ownByVerb = new Map(own.map((c) => [c.verb, c.durationMs]));
  const roundTrips = sum(
    execs.map((e) => (e.duration_ms as number) - (ownByVerb.get(e.verb as string) ?? 0)),
  );
  const matomo = all.matomo.filter((m) => m.t >= ev.claim_at && m.t <= ev.finish_at);
  const ownMatomo = sum(matomo.map((m) => m.duration_ms ?? 0));
  const database = all.gateway.filter((l) =>
    l.path.startsWith("/rest/v1/") && l.arrived >= ev.claim_at && l.arrived <= ev.finish_at
  );
  const total = ev.finish_at - t0;
  const overhead = total - ownClpctl - ownMatomo;
  const split = {
    trigger_to_request_ms: request.arrived - t0,
    request_to_claim_ms: ev.claim_at - request.arrived,
    ssh_connect_ms: sum(connects.map((r) => r.duration_ms as number)),
    remote_round_trips_ms: roundTrips,
    matomo_client_ms: ev.analytics_ms - ownMatomo,
    database_calls_ms: sum(database.map((l) => l.durationMs)),
  };
  return {
    cold,
    total_ms: total,
    own_clpctl_ms: ownClpctl,
    own_matomo_ms: ownMatomo,
    overhead_ms: overhead,
    ...split,
    execs: execs.length,
    other_ms: overhead - sum(Object.values(split)),
  };
}

async function oneSite(cold: boolean): Promise<{ site: Site; t0: number; cold: boolean }> {
  const [site] = await newSites(1, cold ? "cold" : "warm");
  const t0 = await activate([site]);
  await waitSettled([site], 30_000);
  // The run's lane asks for one more due site after its last; let that claim find nothing, so the
  // next site is claimed by its own request (one site at a time, nothing overlapping).
  await sleep(150);
  return { site, t0, cold };
}

async function sequential() {
  const runs: Array<{ site: Site; t0: number; cold: boolean }> = [];
  const instances: Array<ReturnType<typeof procStats> & { bootMs: number; bootRss: number }> = [];
  const coldCpu: number[] = [];
  for (let i = 0; i < COLD; i++) {
    const instance = await newInstance();
    runs.push(await oneSite(true));
    await sleep(50); // the run's last claim and its log lines
    const after = procStats(instance.pid);
    coldCpu.push(after.cpuMs - instance.cpuAtBoot);
    instances.push({ ...after, bootMs: instance.bootMs, bootRss: instance.rssAtBootMiB });
  }
  // Warm: the same (last) instance, one site after another.
  const pid = await workerPid();
  const before = procStats(pid);
  for (let i = 0; i < SEQUENTIAL; i++) runs.push(await oneSite(false));
  await sleep(50);
  const after = procStats(pid);
  const all = await readLogs();
  const ev = await events(runs.map((r) => r.site));
  const figures = runs.map((r) => figuresOf(r.site, r.t0, ev.get(r.site.id)!, all, r.cold));
  return {
    figures,
    boot_ms: stats(instances.map((i) => i.bootMs)),
    rss_after_boot_mib: stats(instances.map((i) => i.bootRss)),
    cold_cpu_ms_per_site: stats(coldCpu),
    warm_cpu_ms_per_site: (after.cpuMs - before.cpuMs) / SEQUENTIAL,
    peak_rss_mib: Math.max(after.peakRssMiB, ...instances.map((i) => i.peakRssMiB)),
  };
}

// ---------------------------------------------------------------------------------------------
// Bursts with fixed delays.

async function burst(concurrency: number) {
  const instance = await newInstance(
    concurrency === 3 ? {} : { HOSTING_MAX_CONCURRENT: String(concurrency) },
  );
  const sites = await newSites(BURST, `burst${concurrency}`);
  await Deno.writeTextFile(
    `${control}/delay_ms`,
    `${CERTIFICATE_DELAY_MS} lets-encrypt:install:certificate\n`,
  );
  for (const site of sites) {
    await Deno.mkdir(`${control}/domains/${site.domain}`, { recursive: true });
    await Deno.writeTextFile(
      `${control}/domains/${site.domain}/delay_ms`,
      `${SITE_DELAY_MS} site:add:static\n`,
    );
  }
  await matomoFault({ mode: "delay", ms: MATOMO_DELAY_MS });
  try {
    const t0 = await activate(sites);
    await waitSettled(sites, 280_000, 50);
    const ev = await events(sites);
    const wall = Math.max(...[...ev.values()].map((e) => e.finish_at)) - t0;
    // The critical path of one site: creation, certificate, and Matomo's addSite; the look-up may
    // overlap the SSH steps, so it is not counted.
    const perSite = SITE_DELAY_MS + CERTIFICATE_DELAY_MS + MATOMO_DELAY_MS;
    const lowerBound = Math.ceil(BURST / concurrency) * perSite;
    const proc = procStats(instance.pid);
    // Stretches with no site in flight (e.g. waiting for the next sweep), from the events.
    const spans = [...ev.values()].map((e) => [e.claim_at, e.finish_at]).sort((x, y) =>
      x[0] - y[0]
    );
    const idle: number[] = [];
    let busyUntil = t0;
    for (const [claim, finish] of spans) {
      if (claim > busyUntil) idle.push(claim - busyUntil);
      busyUntil = Math.max(busyUntil, finish);
    }
    return {
      concurrency,
      sites: BURST,
      wall_ms: wall,
      idle_total_ms: sum(idle),
      idle_longest_ms: Math.max(0, ...idle),
      lower_bound_ms: lowerBound,
      ratio: wall / lowerBound,
      cpu_ms_per_site: (proc.cpuMs - instance.cpuAtBoot) / BURST,
      peak_rss_mib: proc.peakRssMiB,
    };
  } finally {
    await matomoFault({ mode: "none" });
    await Deno.remove(`${control}/delay_ms`).catch(() => {});
    for (const site of sites) {
      await Deno.remove(`${control}/domains/${site.domain}`, { recursive: true }).catch(() => {});
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Cost on the caller: a 1,000-row UPDATE with and without the trigger.

async function callerCost() {
  const instance = await newInstance();
  const sites = await newSites(UPDATE_ROWS, "update");
  const ids = sites.map((s) => s.id);
  // Rolled back, so nothing is dispatched; alternated so drift hits both alike.
  const timed = async (withTrigger: boolean) => {
    let ms = 0;
    let queued = 0;
    await sql.begin(async (tx) => {
      if (!withTrigger) {
        await tx`alter table public.sites disable trigger hosting_automator_dispatch_update`;
      }
      const [{ before }] = await tx`select count(*)::int as before from net.http_request_queue`;
      const started = performance.now();
      await tx`update public.sites set status_dns = 'active' where id = any(${ids}::uuid[])`;
      ms = performance.now() - started;
      const [{ after }] = await tx`select count(*)::int as after from net.http_request_queue`;
      queued = after - before;
      throw new Rollback();
    }).catch((error) => {
      if (!(error instanceof Rollback)) throw error;
    });
    return { ms, queued };
  };
  const withTrigger: number[] = [];
  const without: number[] = [];
  let queuedPerUpdate = 0;
  for (let round = 0; round < 7; round++) {
    const a = await timed(true);
    withTrigger.push(a.ms);
    queuedPerUpdate = a.queued;
    without.push((await timed(false)).ms);
  }
  // Once for real: how many requests reach the function.
  const committedStarted = performance.now();
  const t0 = await activate(sites);
  const committedMs = performance.now() - committedStarted;
  const deadline = Date.now() + 60_000;
  let reached = 0;
  let stableSince = Date.now();
  for (;;) {
    await sleep(250);
    const [{ queued }] = await sql`select count(*)::int as queued from net.http_request_queue`;
    const now = parseGateway(await readText(`${logs}/gateway.log`))
      .filter((l) => l.method === "POST" && l.path === functionPath && l.arrived >= t0 - 2).length;
    if (now !== reached) stableSince = Date.now();
    reached = now;
    if ((queued === 0 && Date.now() - stableSince > 1_500) || Date.now() > deadline) break;
  }
  const proc = procStats(instance.pid);
  return {
    rows: UPDATE_ROWS,
    with_trigger_ms: stats(withTrigger),
    without_trigger_ms: stats(without),
    ratio: stats(withTrigger).median / stats(without).median,
    queued_per_update: queuedPerUpdate,
    committed_update_ms: committedMs,
    requests_reaching_function: reached,
    peak_rss_mib: proc.peakRssMiB,
  };
}

class Rollback extends Error {}

// ---------------------------------------------------------------------------------------------

function summary(values: SiteFigures[]) {
  const keys = Object.keys(values[0]).filter((k) => k.endsWith("_ms")) as Array<
    keyof SiteFigures
  >;
  return Object.fromEntries(keys.map((k) => [k, stats(values.map((v) => v[k] as number))])) as
    & Record<string, Stats>
    & { execs?: never };
}

const info = (figure: string, value: string): Verdict => ({ figure, value, target: "", met: null });

try {
  const machine = {
    cpu: (await readText("/proc/cpuinfo")).match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memory_gib: Math.round(
      Number(/MemTotal:\s+(\d+)/.exec(await readText("/proc/meminfo"))?.[1]) /
        1024 / 1024,
    ),
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
  };
  say("floor: bare ssh2 connect + handshake + true, and exec on an open connection");
  const bare = await floor();
  say(`sequential: ${COLD} cold sites (each on a fresh instance), then ${SEQUENTIAL} warm`);
  const seq = await sequential();
  say(`burst: ${BURST} sites at concurrency 3`);
  const burst3 = await burst(3);
  say(`burst: ${BURST} sites at concurrency 1`);
  const burst1 = await burst(1);
  say(`caller: ${UPDATE_ROWS}-row UPDATE with and without the trigger`);
  const caller = await callerCost();
  const elapsedS = (performance.now() - benchStarted) / 1000;

  const cold = seq.figures.filter((f) => f.cold);
  const warm = seq.figures.filter((f) => !f.cold);
  const coldSplit = summary(cold);
  const warmSplit = summary(warm);
  const execFloor = bare.exec_true_ms.median;
  const connectFloor = bare.connect_handshake_true_ms.median;
  const execsPerSite = stats(warm.map((f) => f.execs)).median;
  const warmFloor = execsPerSite * execFloor;
  const coldFloor = connectFloor + (execsPerSite - 1) * execFloor;
  const peakRss = Math.max(seq.peak_rss_mib, burst3.peak_rss_mib, burst1.peak_rss_mib);

  const rows: Verdict[] = [
    verdict("overhead per site, cold, median", coldSplit.overhead_ms.median, "ms", 400),
    verdict(
      "overhead per site, cold, p95 / median",
      coldSplit.overhead_ms.p95 / coldSplit.overhead_ms.median,
      "×",
      2,
    ),
    verdict("overhead per site, warm, median", warmSplit.overhead_ms.median, "ms", 150),
    verdict(
      "overhead per site, warm, p95 / median",
      warmSplit.overhead_ms.p95 / warmSplit.overhead_ms.median,
      "×",
      2,
    ),
    verdict("warm overhead / bare-ssh2 floor", warmSplit.overhead_ms.median / warmFloor, "×", 3),
    verdict("cold overhead / bare-ssh2 floor", coldSplit.overhead_ms.median / coldFloor, "×", 3),
    verdict(`burst ${BURST}, concurrency 3: wall / lower bound`, burst3.ratio, "×", 1.1, true),
    verdict(`burst ${BURST}, concurrency 1: wall / lower bound`, burst1.ratio, "×", 1.1, true),
    verdict(`${UPDATE_ROWS}-row UPDATE, trigger / no trigger`, caller.ratio, "×", 1.1),
    verdict(
      `${UPDATE_ROWS}-row UPDATE: requests reaching the function`,
      caller.requests_reaching_function,
      "",
      5,
      true,
    ),
    verdict("CPU time per site, warm", seq.warm_cpu_ms_per_site, "ms", 200),
    verdict("CPU time per site, cold (median)", seq.cold_cpu_ms_per_site.median, "ms", 200),
    verdict("function peak memory (VmHWM), sites and bursts", peakRss, "MiB", 150),
    verdict(
      `function peak memory (VmHWM), ${UPDATE_ROWS} requests at once`,
      caller.peak_rss_mib,
      "MiB",
      150,
    ),
    verdict("whole bench", elapsedS, "s", 300),
  ];
  const ms = (v: number) => `${Math.round(v * 10) / 10} ms`;
  const details: Verdict[] = [
    info("floor: connect + handshake + true (median)", ms(connectFloor)),
    info("floor: exec true on an open connection (median)", ms(execFloor)),
    info("SSH commands per site", String(execsPerSite)),
    info("instance boot (GET on a fresh instance, median)", ms(seq.boot_ms.median)),
    info(
      "function RSS right after boot (median)",
      `${Math.round(seq.rss_after_boot_mib.median * 10) / 10} MiB`,
    ),
    ...(["cold", "warm"] as const).flatMap((kind) => {
      const s = kind === "cold" ? coldSplit : warmSplit;
      return [
        info(`${kind}: DNS active → hosting active (median)`, ms(s.total_ms.median)),
        info(
          `${kind}:   stand-ins' own time (clpctl + Matomo)`,
          ms(s.own_clpctl_ms.median + s.own_matomo_ms.median),
        ),
        info(
          `${kind}:   overhead median / p95`,
          `${ms(s.overhead_ms.median)} / ${ms(s.overhead_ms.p95)}`,
        ),
        info(`${kind}:   trigger → request`, ms(s.trigger_to_request_ms.median)),
        info(`${kind}:   request → claim`, ms(s.request_to_claim_ms.median)),
        info(`${kind}:   SSH connect + handshake`, ms(s.ssh_connect_ms.median)),
        info(`${kind}:   remote round trips beyond run time`, ms(s.remote_round_trips_ms.median)),
        info(`${kind}:   Matomo client beyond stand-in time`, ms(s.matomo_client_ms.median)),
        info(`${kind}:   database calls (gateway time)`, ms(s.database_calls_ms.median)),
        info(`${kind}:   rest (function code, scheduling)`, ms(s.other_ms.median)),
      ];
    }),
    info(
      `burst ${BURST} at concurrency 3: wall / bound`,
      `${ms(burst3.wall_ms)} / ${ms(burst3.lower_bound_ms)}`,
    ),
    info(
      `burst ${BURST} at concurrency 1: wall / bound`,
      `${ms(burst1.wall_ms)} / ${ms(burst1.lower_bound_ms)}`,
    ),
    ...[burst3, burst1].map((b) =>
      info(
        `burst at concurrency ${b.concurrency}: no site in flight (total / longest)`,
        `${ms(b.idle_total_ms)} / ${ms(b.idle_longest_ms)}`,
      )
    ),
    info(
      `${UPDATE_ROWS}-row UPDATE with / without trigger (median)`,
      `${ms(caller.with_trigger_ms.median)} / ${ms(caller.without_trigger_ms.median)}`,
    ),
    info(`${UPDATE_ROWS}-row UPDATE: requests queued`, String(caller.queued_per_update)),
    info(`${UPDATE_ROWS}-row UPDATE committed (with trigger)`, ms(caller.committed_update_ms)),
    info(
      "CPU per site in the bursts (c=3 / c=1)",
      `${ms(burst3.cpu_ms_per_site)} / ${ms(burst1.cpu_ms_per_site)}`,
    ),
  ];

  const commit = new TextDecoder().decode(
    (await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stdout: "piped" })
      .output()).stdout,
  ).trim();
  console.log(`\nlocal/bench ${new Date().toISOString()} commit ${commit}`);
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memory_gib} GiB\n`);
  console.log(table(rows));
  console.log(`\n${table(details)}`);
  const report = {
    at: new Date().toISOString(),
    commit,
    machine,
    verdicts: rows,
    floor: bare,
    sequential: {
      cold: coldSplit,
      warm: warmSplit,
      boot_ms: seq.boot_ms,
      cold_cpu_ms_per_site: seq.cold_cpu_ms_per_site,
      warm_cpu_ms_per_site: seq.warm_cpu_ms_per_site,
      peak_rss_mib: seq.peak_rss_mib,
      sites: seq.figures,
    },
    bursts: [burst3, burst1],
    caller,
    elapsed_s: elapsedS,
  };
  await Deno.mkdir(new URL("../.reports", import.meta.url), { recursive: true });
  await Deno.writeTextFile(
    new URL("../.reports/bench.json", import.meta.url),
    JSON.stringify(report, null, 2),
  );
  console.log("\nwritten to .reports/bench.json");
} finally {
  await Deno.writeTextFile(functionsEnv, baseEnv).catch(() => {});
  await sql.end();
}
