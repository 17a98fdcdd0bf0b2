// Integration: the SSH adapter against a real OpenSSH server (the local CloudPanel stand-in,
// `local/standins/cloudpanel/up`). Without its env.d/cloudpanel.env in the environment, skipped.

import assert from "node:assert/strict";
import type { RemoteCommand } from "../core/cloudpanel.ts";
import { isHostingError } from "../core/errors.ts";
import { decodeMultiline } from "../core/settings.ts";
import { createSshShell, privateKeyProblem, type SshOptions } from "./ssh.ts";
import { stackSetting, stackTest } from "../../../tests/stack_env.ts";

// The stack's env.d/cloudpanel.env: the server, and its folder (calls.log).
const SERVER_SETTINGS = [
  "SSH_HOST",
  "SSH_PORT",
  "SSH_PRIVATE_KEY",
  "SSH_HOST_KEY_FINGERPRINT",
  "HA_CLOUDPANEL_DIR",
];

function server(): SshOptions {
  return {
    host: stackSetting("SSH_HOST"),
    port: Number(stackSetting("SSH_PORT")),
    user: "root",
    privateKey: decodeMultiline(stackSetting("SSH_PRIVATE_KEY")),
    hostKeyFingerprint: stackSetting("SSH_HOST_KEY_FINGERPRINT"),
    connectTimeoutMs: 5_000,
    maxChannels: 4,
  };
}

/** Every test here needs the server: without its settings each is skipped, with one line why. */
function test(name: string, fn: () => Promise<void> | void) {
  stackTest({ name, needs: SERVER_SETTINGS, fn });
}

const cmd = (line: string): RemoteCommand => ({ verb: "inventory", line, shown: line });

async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    assert.ok(isHostingError(error), `not a HostingError: ${error}`);
    return error;
  }
  assert.fail("expected a failure");
}

const calls = () => {
  try {
    return Deno.readTextFileSync(`${stackSetting("HA_CLOUDPANEL_DIR")}/control/calls.log`);
  } catch {
    return "";
  }
};

test("a command's exit code, stdout and stderr come back as they are", async () => {
  const shell = createSshShell(server());
  try {
    const result = await shell.run(cmd("echo out; echo err >&2; exit 3"), 5_000);
    assert.deepEqual(result, { code: 3, signal: null, stdout: "out\n", stderr: "err\n" });
  } finally {
    await shell.close();
  }
});

test("all commands of a run share one connection, even when run side by side", async () => {
  const shell = createSshShell({ ...server(), maxChannels: 2 });
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, () => shell.run(cmd("sleep 0.2; echo $SSH_CONNECTION"), 5_000)),
    );
    const connections = new Set(results.map((r) => r.stdout.trim()));
    assert.equal(connections.size, 1, `connections seen: ${[...connections].join(" / ")}`);
    assert.ok(results.every((r) => r.code === 0));
  } finally {
    await shell.close();
  }
});

test("the channel cap holds: never more commands at once than maxChannels", async () => {
  const shell = createSshShell({ ...server(), maxChannels: 2 });
  const marker = `/tmp/ha-ssh-cap-${crypto.randomUUID()}`;
  try {
    // Each command records how many were running when it started.
    const line =
      `mkdir -p ${marker}; touch ${marker}/$$; ls ${marker} | wc -l; sleep 0.3; rm ${marker}/$$`;
    const results = await Promise.all(Array.from({ length: 5 }, () => shell.run(cmd(line), 5_000)));
    const peak = Math.max(...results.map((r) => Number(r.stdout.trim())));
    assert.equal(peak, 2);
  } finally {
    await shell.run(cmd(`rm -rf ${marker}`), 5_000).catch(() => {});
    await shell.close();
  }
});

test("a command past its deadline is COMMAND_TIMEOUT and the connection stays usable", async () => {
  const shell = createSshShell(server());
  try {
    const started = performance.now();
    const error = await failure(shell.run(cmd("sleep 5"), 300));
    assert.equal(error.code, "COMMAND_TIMEOUT");
    assert.ok(performance.now() - started < 2_000);
    assert.equal((await shell.run(cmd("echo still here"), 5_000)).stdout, "still here\n");
  } finally {
    await shell.close();
  }
});

test("a host key other than the pinned one is HOST_KEY_MISMATCH and runs no command", async () => {
  const before = calls();
  const shell = createSshShell({
    ...server(),
    hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  });
  const error = await failure(
    shell.run({ verb: "site:add:static", line: "clpctl --version", shown: "" }, 5_000),
  );
  assert.equal(error.code, "HOST_KEY_MISMATCH");
  assert.match(error.message, new RegExp(server().hostKeyFingerprint.replace(/[+/]/g, "\\$&")));
  assert.equal(calls(), before, "clpctl was called");
  // The failure is remembered: no second connection attempt in the same run.
  assert.equal((await failure(shell.run(cmd("true"), 5_000))).code, "HOST_KEY_MISMATCH");
  await shell.close();
});

test("a key the server does not accept is SSH_AUTH_FAILED", async () => {
  // A fresh, valid key that is not in authorized_keys.
  const dir = await Deno.makeTempDir();
  try {
    const keygen = await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/k`],
    }).output();
    assert.ok(keygen.success);
    const shell = createSshShell({ ...server(), privateKey: await Deno.readTextFile(`${dir}/k`) });
    assert.equal((await failure(shell.run(cmd("true"), 5_000))).code, "SSH_AUTH_FAILED");
    await shell.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("a closed port is SSH_UNREACHABLE", async () => {
  const shell = createSshShell({ ...server(), port: 9 });
  assert.equal((await failure(shell.run(cmd("true"), 5_000))).code, "SSH_UNREACHABLE");
  await shell.close();
});

test("a server that never speaks SSH is SSH_TIMEOUT within the connect deadline", async () => {
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of silent) accepted.push(conn); // accept, then say nothing
  })();
  try {
    const shell = createSshShell({ ...server(), port: silent.addr.port, connectTimeoutMs: 400 });
    const started = performance.now();
    assert.equal((await failure(shell.run(cmd("true"), 5_000))).code, "SSH_TIMEOUT");
    assert.ok(performance.now() - started < 3_000);
    await shell.close();
  } finally {
    for (const conn of accepted) conn.close();
    silent.close();
    await accepting.catch(() => {});
  }
});

test("the configured key loads, and a damaged one is reported before any connection", () => {
  assert.equal(privateKeyProblem(server().privateKey), undefined);
  assert.match(
    privateKeyProblem(
      "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
    )!,
    /cannot be parsed/,
  );
});
