// After the other end-to-end suites (this file sorts after them): nothing the product wrote or
// sent anywhere holds a secret — logs, events, errors, answers recorded by pg_net, pg_net's queue,
// the URLs the stand-ins received, the clpctl call log.

import assert from "node:assert/strict";
import { decodeMultiline } from "../../functions/hosting-automator/core/settings.ts";
import {
  cleanUp,
  cloudpanelFault,
  e2e,
  functionEnv,
  insertSite,
  setting,
  uniqueDomain,
  waitFor,
} from "./stack.ts";

/** Each secret of the function's settings, and the pieces of the private key that could leak. */
async function secrets(): Promise<Array<[string, string]>> {
  const env = await functionEnv();
  const key = decodeMultiline(env.SSH_PRIVATE_KEY);
  const keyLines = key.split("\n").filter((line) => line.length >= 16 && !line.startsWith("-----"));
  const found: Array<[string, string]> = [
    ["service-role key", env.SUPABASE_SERVICE_ROLE_KEY],
    ["secret key", JSON.parse(env.SUPABASE_SECRET_KEYS).default],
    ["Matomo token", env.MATOMO_TOKEN_AUTH],
    ...keyLines.map((line, i) => [`private key line ${i + 1}`, line] as [string, string]),
  ];
  if (env.SSH_PRIVATE_KEY_PASSPHRASE) found.push(["passphrase", env.SSH_PRIVATE_KEY_PASSPHRASE]);
  return found.filter(([, value]) => value && value.length > 0);
}

async function readOr(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

e2e("no log line, event, error, answer, URL or pg_net row holds a secret", async (sql) => {
  // One more site that fails on the way, so its errors are still in the table when we look.
  const domain = uniqueDomain("secrets");
  await cloudpanelFault(domain, "cert", "unauthorized");
  const id = await insertSite(sql, domain);
  try {
    await waitFor(sql, id, (r) => r.hosting_error !== null);
    await lookEverywhere(sql);
  } finally {
    await cleanUp(sql, [{ id, domain }]);
  }
});

async function lookEverywhere(sql: Parameters<Parameters<typeof e2e>[1]>[0]) {
  const stack = setting("HA_STACK_DIR");
  const places: Record<string, string> = {
    "function log": await readOr(`${stack}/logs/functions.log`),
    "gateway log": await readOr(`${stack}/logs/gateway.log`),
    "Matomo stand-in log": await readOr(`${stack}/logs/matomo.log`),
    "clpctl calls.log": await readOr(`${setting("HA_CLOUDPANEL_DIR")}/control/calls.log`),
    "Matomo request log": JSON.stringify(
      await (await fetch(`${setting("HA_MATOMO_CONTROL_URL")}/requests`)).json(),
    ),
  };
  const rows = await sql<{ place: string; text: string }[]>`
    select 'hosting_events' as place, coalesce(string_agg(message, E'\n'), '') as text
    from public.hosting_events
    union all
    select 'sites.hosting_error', coalesce(string_agg(hosting_error, E'\n'), '') from public.sites
    union all
    select 'net._http_response', coalesce(string_agg(coalesce(content, '') || ' ' ||
      coalesce(headers::text, '') || ' ' || coalesce(error_msg, ''), E'\n'), '')
    from net._http_response
    union all
    select 'net.http_request_queue', coalesce(string_agg(url || ' ' || headers::text || ' ' ||
      convert_from(body, 'UTF8'), E'\n'), '') from net.http_request_queue`;
  for (const row of rows) places[row.place] = row.text;
  assert.ok(places["function log"].length > 10_000, "the suites before this one wrote a log");
  // Every place is really read: a renamed log would otherwise be an empty place that always passes.
  // (pg_net's queue is empty once everything is sent: it may be.)
  for (const [place, text] of Object.entries(places)) {
    if (place !== "net.http_request_queue") assert.ok(text.length > 0, `${place} is empty`);
  }
  assert.ok(places["hosting_events"].includes("Domain could not be validated"), "and events");

  for (const [name, value] of await secrets()) {
    for (const [place, text] of Object.entries(places)) {
      assert.ok(!text.includes(value), `the ${name} appears in the ${place}`);
    }
  }
  // Generated site user passwords are never known to anyone: only *** may follow the option.
  for (const [place, text] of Object.entries(places)) {
    assert.doesNotMatch(text, /siteUserPassword[=" ]+(?!\*\*\*)[A-Za-z0-9\-_.@%+=]{8,}/, place);
  }
  // pg_net's queue and responses are readable by other roles: only the dispatch token goes there.
  const [{ tokens }] = await sql<{ tokens: string[] }[]>`
    select coalesce(array_agg(distinct headers ->> 'apikey'), '{}') as tokens
    from net.http_request_queue`;
  for (const token of tokens) assert.equal(token, setting("HA_DISPATCH_TOKEN"));
}
