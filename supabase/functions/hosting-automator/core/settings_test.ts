import assert from "node:assert/strict";
import {
  decodeMultiline,
  type LoadedSettings,
  loadSettings,
  secretsOf,
  type Settings,
  TUNING,
} from "./settings.ts";

// A key-shaped text, not a key; the armour is split so secret scanners do not flag this file.
const ARMOUR = "OPENSSH PRIVATE KEY-----";
const KEY_LINES = [
  `-----BEGIN ${ARMOUR}`,
  "ZmFrZSBrZXkgZm9yIHVuaXQgdGVzdHMgb25seSwgbm90IGEgcmVhbCBrZXk=",
  "bm90aGluZyB0byBzZWUgaGVyZQ==",
  `-----END ${ARMOUR}`,
];
const PRIVATE_KEY = `${KEY_LINES.join("\n")}\n`;
const FINGERPRINT = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s";

const ENV: Record<string, string> = {
  SUPABASE_URL: "http://127.0.0.1:54321",
  SUPABASE_SERVICE_ROLE_KEY: "service-role-jwt.payload.signature",
  SSH_HOST: "cloudpanel.example.com",
  SSH_PRIVATE_KEY: PRIVATE_KEY,
  SSH_HOST_KEY_FINGERPRINT: FINGERPRINT,
  MATOMO_URL: "https://analytics.example.com",
  MATOMO_TOKEN_AUTH: "0123456789abcdef0123456789abcdef",
};

function settingsOf(loaded: LoadedSettings): Settings {
  assert.equal(loaded.ok, true, loaded.ok ? "" : loaded.problems.join("; "));
  if (!loaded.ok) throw new Error("unreachable");
  return loaded.settings;
}

function problemsOf(loaded: LoadedSettings): string[] {
  assert.equal(loaded.ok, false, "expected the settings to be refused");
  if (loaded.ok) throw new Error("unreachable");
  return loaded.problems;
}

Deno.test("a complete environment gives every setting, with the documented defaults", () => {
  assert.equal(FINGERPRINT.length, "SHA256:".length + 43);
  assert.deepEqual(settingsOf(loadSettings(ENV)), {
    supabaseUrl: "http://127.0.0.1:54321",
    databaseKey: "service-role-jwt.payload.signature",
    callerKeys: ["service-role-jwt.payload.signature"],
    ssh: {
      host: "cloudpanel.example.com",
      port: 22,
      user: "root",
      privateKey: PRIVATE_KEY,
      passphrase: undefined,
      hostKeyFingerprint: FINGERPRINT,
      connectTimeoutMs: 15_000,
      maxChannels: 4,
    },
    matomo: {
      url: "https://analytics.example.com",
      token: "0123456789abcdef0123456789abcdef",
      timeoutMs: 10_000,
    },
    run: {
      maxConcurrent: 3,
      maxAttempts: 8,
      leaseSeconds: 600,
      analyticsLeaseSeconds: 60,
      timeBudgetMs: 60_000,
      retryBaseMs: 60_000,
      retryMaxMs: 3_600_000,
      analyticsRetryMs: 600_000,
      siteCommandTimeoutMs: 90_000,
      certificateTimeoutMs: 150_000,
      checkTimeoutMs: 20_000,
      databaseTimeoutMs: 10_000,
    },
  });
});

Deno.test("optional SSH settings are read when given", () => {
  const ssh = settingsOf(loadSettings({
    ...ENV,
    SSH_PORT: "2222",
    SSH_USER: "deploy",
    SSH_PRIVATE_KEY_PASSPHRASE: " a passphrase with spaces ",
    SSH_HOST: " 192.0.2.10 ",
  })).ssh;
  assert.equal(ssh.port, 2222);
  assert.equal(ssh.user, "deploy");
  assert.equal(ssh.passphrase, " a passphrase with spaces ");
  assert.equal(ssh.host, "192.0.2.10");
});

Deno.test("an empty passphrase counts as none", () => {
  assert.equal(
    settingsOf(loadSettings({ ...ENV, SSH_PRIVATE_KEY_PASSPHRASE: "" })).ssh.passphrase,
    undefined,
  );
  assert.equal(
    settingsOf(loadSettings({ ...ENV, SSH_PRIVATE_KEY_PASSPHRASE: "  " })).ssh.passphrase,
    undefined,
  );
});

Deno.test("the Matomo URL loses its trailing slashes", () => {
  assert.equal(
    settingsOf(loadSettings({ ...ENV, MATOMO_URL: "https://example.org/matomo//" })).matomo.url,
    "https://example.org/matomo",
  );
});

Deno.test("each missing required setting is named", () => {
  const required = [
    "SUPABASE_URL",
    "SSH_HOST",
    "SSH_PRIVATE_KEY",
    "SSH_HOST_KEY_FINGERPRINT",
    "MATOMO_URL",
    "MATOMO_TOKEN_AUTH",
  ];
  for (const name of required) {
    const env = { ...ENV };
    delete env[name];
    assert.deepEqual(problemsOf(loadSettings(env)), [`${name}: missing`], name);
    assert.deepEqual(
      problemsOf(loadSettings({ ...ENV, [name]: "   " })),
      [`${name}: missing`],
      name,
    );
  }
});

Deno.test("an environment with no key at all names both key settings", () => {
  const env: Record<string, string> = { ...ENV };
  delete env.SUPABASE_SERVICE_ROLE_KEY;
  assert.deepEqual(problemsOf(loadSettings(env)), [
    "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS: missing",
  ]);
});

Deno.test("an empty environment names every required setting", () => {
  assert.deepEqual(problemsOf(loadSettings({})), [
    "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS: missing",
    "SUPABASE_URL: missing",
    "SSH_HOST: missing",
    "SSH_PRIVATE_KEY: missing",
    "SSH_HOST_KEY_FINGERPRINT: missing",
    "MATOMO_URL: missing",
    "MATOMO_TOKEN_AUTH: missing",
  ]);
});

const MARKER = "sk_live_Zq7xDISTINCTIVE9";

Deno.test("every invalid setting is named and no problem repeats its value", () => {
  const loaded = loadSettings({
    SUPABASE_SERVICE_ROLE_KEY: `service-${MARKER}`,
    SUPABASE_SECRET_KEYS: `{"default": ${MARKER}`,
    SUPABASE_URL: `http://user:${MARKER}@127.0.0.1:54321`,
    SSH_HOST: `host ${MARKER}`,
    SSH_PORT: MARKER,
    SSH_USER: `Root${MARKER}`,
    SSH_PRIVATE_KEY: MARKER,
    SSH_HOST_KEY_FINGERPRINT: `SHA256:${MARKER}`,
    MATOMO_URL: `ftp://${MARKER}.example.com`,
    MATOMO_TOKEN_AUTH: "Zq7x!",
    HOSTING_MAX_CONCURRENT: MARKER,
    SSH_CONNECT_TIMEOUT_SECONDS: `9${MARKER}`,
  });
  const problems = problemsOf(loaded);
  assert.deepEqual(problems.map((p) => p.slice(0, p.indexOf(":"))), [
    "SUPABASE_SECRET_KEYS",
    "SUPABASE_URL",
    "SSH_HOST",
    "SSH_PORT",
    "SSH_USER",
    "SSH_PRIVATE_KEY",
    "SSH_HOST_KEY_FINGERPRINT",
    "MATOMO_URL",
    "MATOMO_TOKEN_AUTH",
    "HOSTING_MAX_CONCURRENT",
    "SSH_CONNECT_TIMEOUT_SECONDS",
  ]);
  const text = problems.join("\n");
  for (const fragment of [MARKER, "Zq7x", "DISTINCTIVE", "Root"]) {
    assert.ok(!text.includes(fragment), `a problem repeats ${fragment}: ${text}`);
  }
});

Deno.test("the invalid-setting messages say what is expected", () => {
  const messages = (env: Record<string, string>) => problemsOf(loadSettings({ ...ENV, ...env }));
  assert.deepEqual(messages({ SUPABASE_URL: "127.0.0.1:54321" }), [
    "SUPABASE_URL: must be an http(s) URL without credentials, query or fragment",
  ]);
  assert.deepEqual(messages({ MATOMO_URL: "https://analytics.example.com/?token_auth=x" }), [
    "MATOMO_URL: must be an http(s) URL without credentials, query or fragment",
  ]);
  assert.deepEqual(messages({ SSH_HOST: "host;reboot" }), [
    "SSH_HOST: must be a host name or an IP address",
  ]);
  assert.deepEqual(messages({ SSH_USER: "Deploy" }), ["SSH_USER: must be a Linux user name"]);
  assert.deepEqual(messages({ SSH_HOST_KEY_FINGERPRINT: "MD5:16:27:ac:a5:76:28:2d:36" }), [
    "SSH_HOST_KEY_FINGERPRINT: must be SHA256:… as ssh-keygen -lf prints it",
  ]);
  assert.deepEqual(messages({ SSH_PRIVATE_KEY: "ssh-ed25519 AAAAC3Nza public key" }), [
    "SSH_PRIVATE_KEY: must be an OpenSSH or PEM private key (BEGIN/END lines; \\n escapes accepted)",
  ]);
  assert.deepEqual(messages({ MATOMO_TOKEN_AUTH: "short" }), [
    "MATOMO_TOKEN_AUTH: must be a Matomo token_auth",
  ]);
  for (const port of ["0", "65536", "22.5", "ssh"]) {
    const problems = messages({ SSH_PORT: port });
    assert.equal(problems.length, 1, port);
    assert.ok(problems[0].startsWith("SSH_PORT: "), problems[0]);
  }
});

Deno.test("a private key given on one line with \\n escapes becomes a multi-line key", () => {
  const oneLine = KEY_LINES.join("\\n");
  assert.ok(!oneLine.includes("\n"));
  assert.equal(
    settingsOf(loadSettings({ ...ENV, SSH_PRIVATE_KEY: oneLine })).ssh.privateKey,
    PRIVATE_KEY,
  );
});

Deno.test("a private key with CRLF line ends or surrounding blank lines is normalised", () => {
  const crlf = `\r\n${KEY_LINES.join("\r\n")}\r\n\r\n`;
  assert.equal(
    settingsOf(loadSettings({ ...ENV, SSH_PRIVATE_KEY: crlf })).ssh.privateKey,
    PRIVATE_KEY,
  );
  assert.equal(decodeMultiline("a\\nb"), "a\nb\n");
  assert.equal(decodeMultiline("a\r\nb\r\n"), "a\nb\n");
});

Deno.test("a PEM RSA private key is accepted", () => {
  const pem =
    `-----BEGIN RSA PRIVATE KEY-----\nTUlJRW93SUJBQUtDQVFFQQ==\n-----END RSA PRIVATE KEY-----`;
  assert.equal(
    settingsOf(loadSettings({ ...ENV, SSH_PRIVATE_KEY: pem })).ssh.privateKey,
    `${pem}\n`,
  );
});

Deno.test("with secret keys, the default one becomes the database key and all may call", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    SUPABASE_SECRET_KEYS: '{"ci":"sb_secret_ci","default":"sb_secret_default"}',
  }));
  assert.equal(settings.databaseKey, "sb_secret_default");
  assert.deepEqual(settings.callerKeys, [
    "service-role-jwt.payload.signature",
    "sb_secret_ci",
    "sb_secret_default",
  ]);
});

Deno.test("without a key named default, the first secret key becomes the database key", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    SUPABASE_SECRET_KEYS: '{"first":"sb_secret_first","second":"sb_secret_second"}',
  }));
  assert.equal(settings.databaseKey, "sb_secret_first");
});

Deno.test("secret keys alone, without a service-role key, are enough", () => {
  const env: Record<string, string> = {
    ...ENV,
    SUPABASE_SECRET_KEYS: '{"default":"sb_secret_only"}',
  };
  delete env.SUPABASE_SERVICE_ROLE_KEY;
  const settings = settingsOf(loadSettings(env));
  assert.equal(settings.databaseKey, "sb_secret_only");
  assert.deepEqual(settings.callerKeys, ["sb_secret_only"]);
});

Deno.test("an empty secret-key object or a blank value leaves the service-role key in charge", () => {
  for (const value of ["{}", "   "]) {
    const settings = settingsOf(loadSettings({ ...ENV, SUPABASE_SECRET_KEYS: value }));
    assert.equal(settings.databaseKey, "service-role-jwt.payload.signature", value);
    assert.deepEqual(settings.callerKeys, ["service-role-jwt.payload.signature"], value);
  }
});

Deno.test("secret keys that are not a JSON object of non-empty strings are refused", () => {
  for (
    const value of ["not json", '["sb_secret_a"]', '{"default":""}', '{"default":5}', "null", '"x"']
  ) {
    const loaded = loadSettings({ ...ENV, SUPABASE_SECRET_KEYS: value });
    assert.deepEqual(problemsOf(loaded), [
      "SUPABASE_SECRET_KEYS: must be a JSON object of named keys",
    ], value);
    // The service-role key still lets the caller in, so a 500 can be answered to the right caller.
    assert.deepEqual(!loaded.ok && loaded.callerKeys, ["service-role-jwt.payload.signature"]);
  }
});

Deno.test("every tuning knob accepts its bounds and refuses one beyond them", () => {
  for (const [name, [, min, max]] of Object.entries(TUNING)) {
    // The retry pair must stay ordered; keep the other one at an extreme so any bound is allowed.
    const pair = name === "HOSTING_RETRY_BASE_SECONDS"
      ? { HOSTING_RETRY_MAX_SECONDS: "604800" }
      : name === "HOSTING_RETRY_MAX_SECONDS"
      ? { HOSTING_RETRY_BASE_SECONDS: "1" }
      : {};
    for (const ok of [min, max]) {
      assert.equal(loadSettings({ ...ENV, ...pair, [name]: String(ok) }).ok, true, `${name}=${ok}`);
    }
    for (const bad of [String(min - 1), String(max + 1), `${min}.5`, "many", "0x10", "1e2", "+5"]) {
      assert.deepEqual(problemsOf(loadSettings({ ...ENV, ...pair, [name]: bad })), [
        `${name}: must be a whole number from ${min} to ${max}`,
      ], `${name}=${bad}`);
    }
  }
});

Deno.test("tuning values become the settings they drive, in milliseconds where named so", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    HOSTING_MAX_CONCURRENT: "5",
    HOSTING_MAX_ATTEMPTS: " 3 ",
    HOSTING_LEASE_SECONDS: "900",
    HOSTING_TIME_BUDGET_SECONDS: "30",
    HOSTING_RETRY_BASE_SECONDS: "2",
    HOSTING_RETRY_MAX_SECONDS: "20",
    HOSTING_ANALYTICS_RETRY_SECONDS: "45",
    HOSTING_SITE_TIMEOUT_SECONDS: "61",
    HOSTING_CERTIFICATE_TIMEOUT_SECONDS: "62",
    HOSTING_CHECK_TIMEOUT_SECONDS: "7",
    HOSTING_DATABASE_TIMEOUT_SECONDS: "8",
    SSH_CONNECT_TIMEOUT_SECONDS: "9",
    SSH_MAX_CHANNELS: "2",
    MATOMO_TIMEOUT_SECONDS: "60",
  }));
  assert.deepEqual(settings.run, {
    maxConcurrent: 5,
    maxAttempts: 3,
    leaseSeconds: 900,
    analyticsLeaseSeconds: 150, // two Matomo calls of 60 s plus 30 s
    timeBudgetMs: 30_000,
    retryBaseMs: 2_000,
    retryMaxMs: 20_000,
    analyticsRetryMs: 45_000,
    siteCommandTimeoutMs: 61_000,
    certificateTimeoutMs: 62_000,
    checkTimeoutMs: 7_000,
    databaseTimeoutMs: 8_000,
  });
  assert.equal(settings.ssh.connectTimeoutMs, 9_000);
  assert.equal(settings.ssh.maxChannels, 2);
  assert.equal(settings.matomo.timeoutMs, 60_000);
});

Deno.test("a retry cap below the retry base is refused", () => {
  assert.deepEqual(
    problemsOf(loadSettings({
      ...ENV,
      HOSTING_RETRY_BASE_SECONDS: "600",
      HOSTING_RETRY_MAX_SECONDS: "300",
    })),
    ["HOSTING_RETRY_MAX_SECONDS: must not be below HOSTING_RETRY_BASE_SECONDS"],
  );
});

Deno.test("secretsOf lists every key, the private key, the passphrase and the Matomo token", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    SUPABASE_SECRET_KEYS: '{"default":"sb_secret_default"}',
    SSH_PRIVATE_KEY_PASSPHRASE: "passphrase-123",
  }));
  const secrets = secretsOf(settings);
  for (
    const secret of [
      "sb_secret_default",
      "service-role-jwt.payload.signature",
      PRIVATE_KEY,
      "passphrase-123",
      "0123456789abcdef0123456789abcdef",
    ]
  ) {
    assert.ok(secrets.includes(secret), secret);
  }
  assert.ok(!secrets.includes(""));
});

Deno.test("secretsOf leaves out a passphrase that is not set", () => {
  const secrets = secretsOf(settingsOf(loadSettings(ENV)));
  assert.deepEqual(secrets, [
    "service-role-jwt.payload.signature",
    "service-role-jwt.payload.signature",
    PRIVATE_KEY,
    "0123456789abcdef0123456789abcdef",
  ]);
});
