// Integration: the SSH adapter against a real OpenSSH server (the local CloudPanel stand-in,
// `local/standins/cloudpanel/up`). Without its env.d/cloudpanel.env in the environment, skipped.

import assert from "node:assert/strict";
import type { RemoteCommand } from "../core/cloudpanel.ts";
import { isHostingError } from "../core/errors.ts";
import { decodeMultiline } from "../core/settings.ts";
// @ts-types="@types/ssh2"
import { Server } from "ssh2";
import {
  createSshConnections,
  createSshShell,
  fingerprintOf,
  privateKeyProblem,
  type SshOptions,
} from "./ssh.ts";
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

test("channels the server refuses above its MaxSessions (4) are tried again, never lost", async () => {
  // maxChannels above the server's limit: the fifth and sixth channel are refused while four run.
  const shell = createSshShell({ ...server(), maxChannels: 6 });
  try {
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) => shell.run(cmd(`sleep 0.3; echo ${i}`), 5_000)),
    );
    assert.deepEqual(results.map((r) => [r.code, r.stdout.trim()]), [
      [0, "0"],
      [0, "1"],
      [0, "2"],
      [0, "3"],
      [0, "4"],
      [0, "5"],
    ]);
  } finally {
    await shell.close();
  }
});

test("commands on an open connection do not stall on delayed ACKs (TCP_NODELAY)", async () => {
  const shell = createSshShell(server());
  try {
    await shell.run(cmd("true"), 5_000);
    const started = performance.now();
    for (let i = 0; i < 10; i++) await shell.run(cmd("true"), 5_000);
    // ~5 ms each with TCP_NODELAY; ~90 ms each when Nagle meets the server's delayed ACKs.
    const elapsed = performance.now() - started;
    assert.ok(elapsed < 400, `10 commands took ${Math.round(elapsed)} ms`);
  } finally {
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

// ---------------------------------------------------------------------------------------------
// Warm connections. A TCP relay in front of the sshd counts the connections (logins) and plays
// the server dropping them.

class Relay {
  readonly #listener: Deno.TcpListener;
  readonly #pairs = new Set<Deno.Conn[]>();
  readonly #pumps = new Set<Promise<void>>();
  readonly #accepting: Promise<void>;
  /** Where new connections go (the sshd, or another server). */
  target: number;
  /** TCP connections accepted so far. */
  accepted = 0;
  /** Drop the connection instead of forwarding the client's next packet. */
  dropOnNextClientData = false;

  constructor(target: number) {
    this.target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  /** TCP connections open through the relay. */
  get open(): number {
    return this.#pairs.size;
  }

  async #accept() {
    for await (const client of this.#listener) {
      this.accepted++;
      let upstream: Deno.Conn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.target });
      } catch {
        client.close();
        continue;
      }
      const pair = [client, upstream];
      this.#pairs.add(pair);
      for (const [from, to] of [[client, upstream], [upstream, client]]) {
        const pump = this.#pump(from, to, from === client, pair);
        this.#pumps.add(pump);
        pump.finally(() => this.#pumps.delete(pump));
      }
    }
  }

  async #pump(from: Deno.Conn, to: Deno.Conn, fromClient: boolean, pair: Deno.Conn[]) {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (fromClient && this.dropOnNextClientData) {
          this.dropOnNextClientData = false;
          break;
        }
        let written = 0;
        while (written < n) written += await to.write(buffer.subarray(written, n));
      }
    } catch { /* the other side closed */ }
    this.#close(pair);
  }

  #close(pair: Deno.Conn[]) {
    if (!this.#pairs.delete(pair)) return;
    for (const conn of pair) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  /** The server side drops every connection (as an sshd restart or a NAT timeout would). */
  dropAll() {
    for (const pair of [...this.#pairs]) this.#close(pair);
  }

  async stop() {
    this.dropAll();
    this.#listener.close();
    await this.#accepting.catch(() => {});
    await Promise.allSettled([...this.#pumps]);
  }
}

async function until(what: string, condition: () => boolean, ms = 3_000) {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function lineCount(path: string): Promise<number> {
  const text = await Deno.readTextFile(path).catch(() => "");
  return text.split("\n").filter((line) => line !== "").length;
}

test("two runs one after another reuse one connection: one login", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  try {
    const options = { ...server(), port: relay.port };
    const seen: string[] = [];
    for (let run = 0; run < 2; run++) {
      const shell = connections.shell(options);
      seen.push((await shell.run(cmd("echo $SSH_CONNECTION"), 5_000)).stdout);
      await shell.close();
    }
    assert.equal(relay.accepted, 1);
    assert.equal(seen[0], seen[1]);
    assert.equal(connections.openConnections(), 1);
  } finally {
    await connections.close();
    await relay.stop();
  }
});

test("connections are kept per host:port:user: two users, two connections", async () => {
  const connections = createSshConnections();
  try {
    const asRoot = connections.shell(server());
    const asDeploy = connections.shell({ ...server(), user: "deploy" });
    assert.equal((await asRoot.run(cmd("id -un"), 5_000)).stdout, "root\n");
    assert.equal((await asDeploy.run(cmd("id -un"), 5_000)).stdout, "deploy\n");
    assert.equal((await asRoot.run(cmd("id -un"), 5_000)).stdout, "root\n");
    assert.equal(connections.openConnections(), 2);
  } finally {
    await connections.close();
  }
});

test("a connection the server dropped is reopened by the next command", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    assert.equal((await shell.run(cmd("echo one"), 5_000)).stdout, "one\n");
    relay.dropAll();
    await until("the client to notice the drop", () => connections.openConnections() === 0);
    assert.equal((await shell.run(cmd("echo two"), 5_000)).stdout, "two\n");
    assert.equal(relay.accepted, 2);
  } finally {
    await connections.close();
    await relay.stop();
  }
});

test("a command whose channel never opened because the connection died runs once, on a fresh connection", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  const marker = `/tmp/ha-ssh-retry-${crypto.randomUUID()}`;
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    await shell.run(cmd("true"), 5_000);
    // The connection dies just as the channel-open request leaves: the server never sees it.
    relay.dropOnNextClientData = true;
    const result = await shell.run(cmd(`echo ran >> ${marker}; echo ok`), 5_000);
    assert.equal(result.stdout, "ok\n");
    assert.equal(relay.accepted, 2);
    assert.equal(await lineCount(marker), 1);
  } finally {
    await Deno.remove(marker).catch(() => {});
    await connections.close();
    await relay.stop();
  }
});

test("a command that had started when the connection dropped is SSH_CONNECTION_LOST, not sent again", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  const marker = `/tmp/ha-ssh-started-${crypto.randomUUID()}`;
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    const running = failure(shell.run(cmd(`echo ran >> ${marker}; sleep 2`), 5_000));
    await until("the command to start", () => {
      try {
        return Deno.statSync(marker).size > 0;
      } catch {
        return false;
      }
    });
    relay.dropAll();
    assert.equal((await running).code, "SSH_CONNECTION_LOST");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(relay.accepted, 1, "the command was sent again on a new connection");
    assert.equal(await lineCount(marker), 1);
  } finally {
    await Deno.remove(marker).catch(() => {});
    await connections.close();
    await relay.stop();
  }
});

test("a connection with no command for the idle time is closed, and the next run opens one", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections({ idleMs: 300 });
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    await shell.run(cmd("sleep 0.4"), 5_000); // running longer than the idle time is not idle
    await shell.close();
    assert.equal(connections.openConnections(), 1);
    const idleFrom = performance.now();
    await until("the idle connection to close", () => relay.open === 0, 2_000);
    const closedAfter = performance.now() - idleFrom;
    assert.ok(closedAfter >= 250 && closedAfter < 1_000, `closed after ${closedAfter} ms`);
    assert.equal(connections.openConnections(), 0);
    assert.equal(
      (await connections.shell({ ...server(), port: relay.port }).run(cmd("true"), 5_000)).code,
      0,
    );
    assert.equal(relay.accepted, 2);
  } finally {
    await connections.close();
    await relay.stop();
  }
});

test("close() lets a running command finish, then closes the connection", async () => {
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    const running = shell.run(cmd("sleep 0.3; echo done"), 5_000);
    await until("the connection", () => relay.open === 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closing = connections.close();
    assert.equal((await running).stdout, "done\n");
    await closing;
    assert.equal(connections.openConnections(), 0);
    await until("the relay to see the close", () => relay.open === 0);
  } finally {
    await connections.close();
    await relay.stop();
  }
});

test("a new connection verifies the host key again: another key on reconnect is HOST_KEY_MISMATCH", async () => {
  const dir = await Deno.makeTempDir();
  const relay = new Relay(server().port);
  const connections = createSshConnections();
  // A second SSH server with a host key of its own, where the relay sends the next connection.
  const keygen = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-f", `${dir}/host`],
  }).output();
  assert.ok(keygen.success);
  const impostorKey = await Deno.readTextFile(`${dir}/host`);
  const impostor = new Server({ hostKeys: [impostorKey] }, (client) => {
    client.on("error", () => {});
    client.on("authentication", (ctx) => ctx.reject());
  });
  await new Promise<void>((resolve) => impostor.listen(0, "127.0.0.1", resolve));
  try {
    const shell = connections.shell({ ...server(), port: relay.port });
    assert.equal((await shell.run(cmd("echo first"), 5_000)).stdout, "first\n");
    relay.target = (impostor.address() as { port: number }).port;
    relay.dropAll();
    await until("the client to notice the drop", () => connections.openConnections() === 0);
    const before = calls();
    const error = await failure(
      shell.run({ verb: "site:add:static", line: "clpctl --version", shown: "" }, 5_000),
    );
    assert.equal(error.code, "HOST_KEY_MISMATCH");
    const presented = (await Deno.readTextFile(`${dir}/host.pub`)).split(" ")[1];
    const { Buffer } = await import("node:buffer");
    assert.ok(error.message.includes(fingerprintOf(Buffer.from(presented, "base64"))));
    assert.equal(calls(), before, "clpctl was called");
  } finally {
    await connections.close();
    await relay.stop();
    await new Promise((resolve) => impostor.close(resolve));
    await Deno.remove(dir, { recursive: true });
  }
});
