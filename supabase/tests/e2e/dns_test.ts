// The DNS check before Let's Encrypt on the local stack: the function asks the DoH stand-in
// (local/standins/dns) where the certificate's names point, compares them with the server's
// address (127.0.0.1), and asks CloudPanel for a certificate only when they point here or when the
// resolver cannot tell. Counted in the clpctl call log, not only in the final state.

import assert from "node:assert/strict";
import {
  cleanUp,
  clpctlCalls,
  dnsQueriesFor,
  dnsRecords,
  e2e,
  events,
  insertSite,
  uniqueDomain,
  waitFor,
} from "./stack.ts";

const CERTIFICATE = "lets-encrypt:install:certificate 0";
const count = (items: string[], wanted: string) => items.filter((i) => i === wanted).length;
const certificateCalls = async (domain: string) =>
  (await clpctlCalls(domain)).filter((c) => c.startsWith("lets-encrypt:install:certificate"));

e2e(
  "records pointing elsewhere: DNS_NOT_READY with the address seen and no certificate call; " +
    "fixed, one sweep later the site is active with exactly one certificate",
  async (sql) => {
    const domain = uniqueDomain("dns-elsewhere");
    await dnsRecords(domain, { addresses: ["192.0.2.44"] });
    const id = await insertSite(sql, domain);
    try {
      const waiting = await waitFor(
        sql,
        id,
        (r) => r.status_hosting === "pending" && r.hosting_error !== null,
      );
      assert.match(waiting.hosting_error!, /^DNS_NOT_READY: /);
      assert.match(
        waiting.hosting_error!,
        new RegExp(`${domain.replaceAll(".", "\\.")} → 192\\.0\\.2\\.44`),
      );
      assert.ok(
        waiting.hosting_next_attempt_at! > new Date(),
        "backoff: the next attempt is later",
      );
      assert.deepEqual(await clpctlCalls(domain), ["site:add:static 0"]);
      assert.deepEqual(await certificateCalls(domain), []);
      assert.deepEqual(await dnsQueriesFor(domain), [
        `${domain} A 192.0.2.44`,
        `${domain} AAAA -`,
      ]);
      assert.ok((await events(sql, id)).includes("certificate:error:DNS_NOT_READY"));

      await dnsRecords(domain, { addresses: ["127.0.0.1"] });
      await sql`update public.sites set hosting_next_attempt_at = now() where id = ${id}`;
      await sql`select public.hosting_automator_sweep()`;
      const row = await waitFor(sql, id, (r) => r.status_hosting === "active");
      assert.equal(row.hosting_error, null);
      const calls = await clpctlCalls(domain);
      assert.equal(count(calls, CERTIFICATE), 1, calls.join());
      assert.equal(calls.length, 2, `site:add:static once, the certificate once: ${calls.join()}`);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

e2e(
  "a name that does not exist yet (NXDOMAIN) is DNS_NOT_READY too, Let's Encrypt not asked",
  async (sql) => {
    const domain = uniqueDomain("dns-absent");
    await dnsRecords(domain, { absent: true });
    const id = await insertSite(sql, domain);
    try {
      const waiting = await waitFor(
        sql,
        id,
        (r) => r.status_hosting === "pending" && r.hosting_error !== null,
      );
      assert.match(waiting.hosting_error!, /^DNS_NOT_READY: .*no A\/AAAA record/);
      assert.deepEqual(await certificateCalls(domain), []);
    } finally {
      await cleanUp(sql, [{ id, domain }]);
    }
  },
);

for (const fault of ["unavailable", "hang"] as const) {
  e2e(
    `the resolver ${fault === "hang" ? "hanging" : "unavailable"}: a DNS_UNCHECKED warning, ` +
      "then the certificate as before, and the site active",
    async (sql) => {
      const domain = uniqueDomain(`dns-${fault}`);
      await dnsRecords(domain, { fault });
      const id = await insertSite(sql, domain);
      try {
        const row = await waitFor(sql, id, (r) => ["active", "failed"].includes(r.status_hosting));
        assert.equal(row.status_hosting, "active", row.hosting_error ?? "");
        const trail = await events(sql, id);
        const warning = trail.indexOf("certificate:warning:DNS_UNCHECKED");
        assert.ok(warning >= 0, trail.join());
        assert.ok(trail.indexOf("certificate:ok:CERTIFICATE_INSTALLED") > warning, trail.join());
        assert.equal(count(await clpctlCalls(domain), CERTIFICATE), 1);
      } finally {
        await cleanUp(sql, [{ id, domain }]);
      }
    },
  );
}
