// The stack's second CloudPanel server, B (local/standins/cloudpanel/up b): a server of its own
// (host key, client key, inventory, faults, log), reached by the helpers of stack.ts with "b".

import assert from "node:assert/strict";
import { deriveSiteUser } from "../../functions/hosting-automator/core/site_user.ts";
import {
  cleanUp,
  cloudpanelFault,
  clpctlCalls,
  e2e,
  functionWith,
  insertSite,
  inventory,
  onServer,
  serverHasDirectory,
  site,
  sshLogins,
  sshSettings,
  uniqueDomain,
  withoutDispatch,
} from "./stack.ts";

e2e("server B is a CloudPanel server of its own: keys, inventory, faults and log", async (sql) => {
  const a = sshSettings();
  const b = sshSettings("b");
  assert.notEqual(b.SSH_PORT, a.SSH_PORT);
  assert.notEqual(b.SSH_HOST_KEY_FINGERPRINT, a.SSH_HOST_KEY_FINGERPRINT, "its own host key");
  assert.notEqual(b.SSH_PRIVATE_KEY, a.SSH_PRIVATE_KEY, "its own client key");

  const domain = uniqueDomain("server-b");
  const user = deriveSiteUser(domain);
  const fn = await functionWith(b);
  let id = "";
  try {
    // A fault switched on B reaches B only; the function pointed at B retries and then succeeds.
    await cloudpanelFault(domain, "psl_unreachable", "once", "b");
    const logins = await sshLogins("b");
    await withoutDispatch(sql, async () => {
      id = await insertSite(sql, domain);
      const first = await fn.call({ site_id: id, wait: true });
      assert.equal(first.body.results[0].status, "pending", JSON.stringify(first.body));
      await sql`update public.sites set hosting_next_attempt_at = now() where id = ${id}`;
      await sql`delete from public.hosting_health`;
      const second = await fn.call({ site_id: id, wait: true });
      assert.equal(second.body.results[0].status, "active", JSON.stringify(second.body));
    });
    await fn.settle();
    const row = await site(sql, id);
    assert.equal(row.hosting_doc_root, `/home/${user}/htdocs/${domain}`);
    assert.deepEqual(await inventory(domain, "b"), [`${domain} ${user}`]);
    assert.deepEqual(await inventory(domain), [], "server A has no such site");
    assert.ok(await serverHasDirectory(row.hosting_doc_root!, "b"));
    assert.equal(await serverHasDirectory(row.hosting_doc_root!), false);
    assert.deepEqual(await clpctlCalls(domain), [], "no clpctl call reached server A");
    assert.deepEqual((await clpctlCalls(domain, "b")).filter((c) => c.startsWith("site:")), [
      "site:add:static 1",
      "site:add:static 0",
    ]);
    assert.ok(await sshLogins("b") > logins, "B's sshd logged the logins");
    assert.equal((await onServer(`id -un ${user}`, "b")).stdout.trim(), user);
    assert.notEqual((await onServer(`id -un ${user}`)).code, 0, "no such user on server A");
  } finally {
    await cleanUp(sql, [{ id, domain }], "b");
  }
  assert.deepEqual(await inventory(domain, "b"), [], "cleanUp removed it from server B");
});
