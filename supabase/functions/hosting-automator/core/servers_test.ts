import assert from "node:assert/strict";
import {
  implicitHealth,
  jobServer,
  keyDigests,
  keySetting,
  type ListedServer,
  passphraseSetting,
  serverOfSetting,
  type SshSettings,
} from "./servers.ts";

const SSH: SshSettings = {
  implicit: {
    host: "cp.example.com",
    port: 22,
    user: "root",
    hostKeyFingerprint: "SHA256:n3ExG7bQ5wOkMcn6yM0vP8m2Dk3oH2V1q9nJbI2h5Zc",
    addresses: ["203.0.113.7"],
  },
  privateKey: "default key",
  keys: { "fra-1": { privateKey: "fra key", passphrase: "fra pass" } },
  connectTimeoutMs: 8_000,
  maxChannels: 4,
};

const FRA: ListedServer = {
  name: "fra-1",
  host: "10.0.0.1",
  port: 2222,
  user: "deploy",
  host_key_fingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
  addresses: ["203.0.113.1", "2001:db8::1"],
};

Deno.test("a server's key setting is named after it, and read back to the same server", () => {
  assert.equal(keySetting("fra-1"), "SSH_PRIVATE_KEY__FRA_1");
  assert.equal(passphraseSetting("fra-1"), "SSH_PRIVATE_KEY_PASSPHRASE__FRA_1");
  for (const name of ["fra-1", "nbg", "eu-west-2b"]) {
    assert.deepEqual(serverOfSetting(keySetting(name)), { server: name, part: "key" });
    assert.deepEqual(serverOfSetting(passphraseSetting(name)), {
      server: name,
      part: "passphrase",
    });
  }
});

Deno.test("the default key settings and malformed names are no server's", () => {
  for (
    const setting of [
      "SSH_PRIVATE_KEY",
      "SSH_PRIVATE_KEY_PASSPHRASE",
      "SSH_PRIVATE_KEY__",
      "SSH_PRIVATE_KEY__fra_1",
      "SSH_PRIVATE_KEY__FRA__1",
      "SSH_PRIVATE_KEY_FRA_1",
    ]
  ) {
    assert.equal(serverOfSetting(setting), undefined, setting);
  }
});

Deno.test("a listed server's job connects to its row, with its own key, and pauses server:<name>", () => {
  const server = jobServer(FRA, SSH);
  assert.deepEqual(server?.ssh, {
    host: "10.0.0.1",
    port: 2222,
    user: "deploy",
    hostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    privateKey: "fra key",
    passphrase: "fra pass",
    connectTimeoutMs: 8_000,
    maxChannels: 4,
  });
  assert.equal(server?.name, "fra-1");
  assert.equal(server?.health.target, "server:fra-1");
  assert.deepEqual(server?.addresses, ["203.0.113.1", "2001:db8::1"]);
});

Deno.test("a listed server without an override uses SSH_PRIVATE_KEY; without addresses its DNS check is off", () => {
  const server = jobServer({ ...FRA, name: "nbg", addresses: [] }, SSH);
  assert.equal(server?.ssh.privateKey, "default key");
  assert.equal(server?.ssh.passphrase, undefined);
  assert.equal(server?.addresses, undefined);
  assert.equal(server?.health.credential, keyDigests(SSH)["*"]);
});

Deno.test("a job without a listed server goes to SSH_HOST, or nowhere without it", () => {
  const implicit = jobServer(null, SSH);
  assert.equal(implicit?.name, null);
  assert.equal(implicit?.ssh.host, "cp.example.com");
  assert.deepEqual(implicit?.health, implicitHealth(SSH));
  assert.equal(implicit?.health.target, "ssh:root@cp.example.com:22");
  assert.deepEqual(implicit?.addresses, ["203.0.113.7"]);
  const { implicit: _gone, ...none } = SSH;
  assert.equal(jobServer(null, none), undefined);
  assert.equal(implicitHealth(none), undefined);
});

Deno.test("key digests name each key in use, change with the key, and never contain it", () => {
  const digests = keyDigests(SSH);
  assert.deepEqual(Object.keys(digests), ["*", "fra-1"]);
  assert.notEqual(digests["*"], digests["fra-1"]);
  assert.notEqual(
    keyDigests({ ...SSH, keys: { "fra-1": { privateKey: "new fra key" } } })["fra-1"],
    digests["fra-1"],
  );
  assert.equal(keyDigests(SSH)["fra-1"], jobServer(FRA, SSH)?.health.credential);
  for (const value of Object.values(digests)) {
    assert.match(value, /^sha256:[0-9a-f]{16}$/);
    assert.ok(!value.includes("key"));
  }
  assert.notEqual(
    implicitHealth({ ...SSH, privateKey: "rotated" })?.credential,
    implicitHealth(SSH)?.credential,
    "a new default key lifts the implicit server's pause too",
  );
});
