import assert from "node:assert/strict";
import { addStaticSite, docRootCheck, installCertificate, serverState } from "./cloudpanel.ts";
import { addSiteRequest, describeRequest, lookupRequest } from "./matomo.ts";
import { CANDIDATES, planRemoval, planSite } from "./plan.ts";
import { PROVISION_STEPS } from "./steps.ts";
import { deriveSiteUser, siteUserCandidates } from "./site_user.ts";

const ID = "3f0c1a2b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const MATOMO = "https://analytics.example.com";

Deno.test("a provisioning plan lists the real run's commands, built by the same builders", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.equal(plan.work, "provision");
  assert.equal(plan.site_user, "example_com");
  assert.equal(plan.site_user, deriveSiteUser("example.com"));
  assert.equal(plan.doc_root, "/home/example_com/htdocs/example.com");
  assert.equal(plan.error, null);
  assert.equal(CANDIDATES, 5);
  const candidates = siteUserCandidates("example.com", CANDIDATES);
  assert.deepEqual(plan.commands, [
    `${serverState("example.com", candidates, "root").shown}   # always: what the server has`,
    `${addStaticSite("example.com", "example_com", "a-real-password-1", "root").shown}` +
    "   # only if it has no site for the domain (under the first free candidate user)",
    `${docRootCheck("/home/example_com/htdocs/example.com", "root").shown}` +
    "   # only if the site already exists (adopted)",
    `${installCertificate("example.com", "root").shown}` +
    "   # unless a Let's Encrypt certificate valid for 30 more days is served",
  ]);
});

Deno.test("the plan's probe asks about the same five candidate users the run would", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.ok(
    plan.commands[0].includes(
      "getent passwd 'example_com' 'example_com-2' 'example_com-3' 'example_com-4' " +
        "'example_com-5'",
    ),
    plan.commands[0],
  );
});

Deno.test("a plan shows the site user password as *** and nothing else in its place", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.ok(
    plan.commands[1].startsWith(
      "clpctl site:add:static --domainName='example.com' --siteUser='example_com' " +
        "--siteUserPassword=***   # ",
    ),
    plan.commands[1],
  );
  assert.ok(!plan.commands.join("\n").includes("a-real-password"));
});

Deno.test("a plan for a non-root SSH user runs every command through sudo -n", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "deploy",
    MATOMO,
  );
  assert.equal(plan.commands.length, 4);
  assert.ok(plan.commands[0].startsWith("{ sudo -n sqlite3 "), plan.commands[0]);
  assert.ok(plan.commands[0].includes("{ sudo -n getent passwd "), plan.commands[0]);
  for (const command of plan.commands.slice(1)) {
    assert.ok(command.startsWith("sudo -n "), command);
  }
});

Deno.test("a plan lists the Matomo lookup and the conditional addSite, token masked", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  const token = "0123456789abcdef0123456789abcdef";
  assert.deepEqual(plan.matomo_calls, [
    {
      ...describeRequest(lookupRequest(MATOMO, token, "example.com")),
      when: "unless the site has its id; beside the SSH steps",
    },
    {
      ...describeRequest(addSiteRequest(MATOMO, token, "example.com")),
      when: "only if the look-up finds no site",
    },
  ]);
  assert.equal(plan.matomo_calls[0].body, "token_auth=***&url=https://example.com");
});

Deno.test("an invalid domain gives the INVALID_DOMAIN error and no commands or calls", () => {
  const plan = planSite(
    { site_id: ID, domain: "Bad Domain;reboot", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.equal(plan.error?.code, "INVALID_DOMAIN");
  assert.match(plan.error?.message ?? "", /^not a valid host name: /);
  assert.deepEqual(plan.commands, []);
  assert.deepEqual(plan.matomo_calls, []);
  assert.equal(plan.site_user, null);
  assert.equal(plan.doc_root, null);
});

Deno.test("analytics-only work plans the Matomo calls and no server command", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "analytics", matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.equal(plan.work, "analytics");
  assert.deepEqual(plan.commands, []);
  assert.equal(plan.site_user, null);
  assert.equal(plan.matomo_calls.length, 2);
});

Deno.test("a site that already has a Matomo id plans no Matomo call", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: 7 },
    "root",
    MATOMO,
  );
  assert.deepEqual(plan.matomo_calls, []);
  assert.equal(plan.commands.length, 4);
});

Deno.test("a site with no due work is planned as a full provisioning", () => {
  const plan = planSite(
    { site_id: ID, domain: "shop.example.com", due: null, matomo_site_id: null },
    "root",
    MATOMO,
  );
  assert.equal(plan.work, "provision");
  assert.equal(plan.site_id, ID);
  assert.equal(plan.domain, "shop.example.com");
  assert.equal(plan.commands.length, 4);
});

Deno.test("a removal plan is site:delete --force, and deleteSite only when asked and known", () => {
  const site = {
    site_id: ID,
    domain: "example.com",
    due: "remove" as const,
    matomo_site_id: 9,
    delete_analytics: true,
  };
  const plan = planSite(site, "deploy", MATOMO);
  assert.equal(plan.work, "remove");
  assert.equal(plan.commands.length, 1);
  assert.match(
    plan.commands[0],
    /^sudo -n clpctl site:delete --domainName='example\.com' --force /,
  );
  assert.equal(plan.matomo_calls.length, 1);
  assert.equal(plan.matomo_calls[0].body, "token_auth=***&idSite=9");
  assert.deepEqual(planRemoval(site, false, "root", MATOMO).matomo_calls, []);
  assert.deepEqual(
    planRemoval({ ...site, matomo_site_id: null }, true, "root", MATOMO).matomo_calls,
    [],
  );
  assert.equal(
    planRemoval({ ...site, domain: "no spaces.com" }, true, "root", MATOMO).error?.code,
    "INVALID_DOMAIN",
  );
});

Deno.test("the plan lists exactly the step list's actions, in its order", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
  );
  const whens = PROVISION_STEPS.flatMap((step) => step.ssh.map((a) => a.when));
  assert.deepEqual(plan.commands.map((line) => line.split("   # ")[1]), whens);
  assert.deepEqual(
    plan.matomo_calls.map((call) => call.when),
    PROVISION_STEPS.flatMap((step) => step.matomo.map((a) => a.when)),
  );
});

Deno.test("with the DNS check on, a plan lists the A and AAAA queries it would make first", () => {
  const plan = planSite(
    { site_id: ID, domain: "example.com", due: "provision", matomo_site_id: null },
    "root",
    MATOMO,
    "https://cloudflare-dns.com/dns-query",
  );
  assert.deepEqual(plan.dns_queries.map((q) => `${q.type} ${q.name} ${q.url}`), [
    "A example.com https://cloudflare-dns.com/dns-query?name=example.com&type=A",
    "AAAA example.com https://cloudflare-dns.com/dns-query?name=example.com&type=AAAA",
    "A www.example.com https://cloudflare-dns.com/dns-query?name=www.example.com&type=A",
    "AAAA www.example.com https://cloudflare-dns.com/dns-query?name=www.example.com&type=AAAA",
  ]);
  assert.match(plan.dns_queries[0].when, /^before the certificate is requested/);
});

Deno.test("with the DNS check off, or for analytics alone, a plan lists no DNS query", () => {
  const site = {
    site_id: ID,
    domain: "example.com",
    due: "provision" as const,
    matomo_site_id: null,
  };
  assert.deepEqual(planSite(site, "root", MATOMO).dns_queries, []);
  assert.deepEqual(
    planSite({ ...site, due: "analytics" }, "root", MATOMO, "https://dns.example/q").dns_queries,
    [],
  );
});
