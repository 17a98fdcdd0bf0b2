import assert from "node:assert/strict";
import {
  decodeMultiline,
  type LoadedSettings,
  loadSettings,
  secretsOf,
  type SettingProblem,
  type Settings,
  siteWorstCaseSeconds,
  stepWorstCaseSeconds,
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
  assert.equal(loaded.ok, true, loaded.ok ? "" : JSON.stringify(loaded.problems));
  if (!loaded.ok) throw new Error("unreachable");
  return loaded.settings;
}

function problemsOf(loaded: LoadedSettings): SettingProblem[] {
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
    dispatchToken: undefined,
    ssh: {
      implicit: {
        host: "cloudpanel.example.com",
        port: 22,
        user: "root",
        hostKeyFingerprint: FINGERPRINT,
      },
      privateKey: PRIVATE_KEY,
      keys: {},
      connectTimeoutMs: 8_000,
      maxChannels: 4,
    },
    matomo: {
      url: "https://analytics.example.com",
      token: "0123456789abcdef0123456789abcdef",
      timeoutMs: 6_000,
    },
    claim: {
      maxConcurrent: 3,
      leaseSeconds: 75,
      maxAttempts: 8,
      analyticsLeaseSeconds: 34, // two Matomo calls of 6 s, three database writes of 4 s, 10 s
    },
    databaseTimeoutMs: 4_000,
    lanes: { maxConcurrent: 3, timeBudgetMs: 10_000 },
    wallClockMs: 150_000,
    retry: { maxAttempts: 8, baseDelayMs: 60_000, maxDelayMs: 3_600_000 },
    analyticsRetry: { baseDelayMs: 60_000, maxDelayMs: 3_600_000, maxAttempts: 10 },
    serverRetry: { baseMs: 60_000, maxMs: 900_000 },
    timeouts: { siteMs: 25_000, certificateMs: 40_000, checkMs: 8_000 },
    dns: { resolverUrl: "https://cloudflare-dns.com/dns-query", timeoutMs: 3_000 },
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
  assert.equal(ssh.implicit?.port, 2222);
  assert.equal(ssh.implicit?.user, "deploy");
  assert.equal(ssh.passphrase, " a passphrase with spaces ");
  assert.equal(ssh.implicit?.host, "192.0.2.10");
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
    "SSH_PRIVATE_KEY",
    "MATOMO_URL",
    "MATOMO_TOKEN_AUTH",
  ];
  for (const name of required) {
    const env = { ...ENV };
    delete env[name];
    assert.deepEqual(problemsOf(loadSettings(env)), [{ setting: name, message: "missing" }], name);
    assert.deepEqual(
      problemsOf(loadSettings({ ...ENV, [name]: "   " })),
      [{ setting: name, message: "missing" }],
      name,
    );
  }
});

Deno.test("an environment with no key at all names both key settings", () => {
  const env: Record<string, string> = { ...ENV };
  delete env.SUPABASE_SERVICE_ROLE_KEY;
  assert.deepEqual(problemsOf(loadSettings(env)), [
    { setting: "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS", message: "missing" },
  ]);
});

Deno.test("an empty environment names every required setting", () => {
  assert.deepEqual(
    problemsOf(loadSettings({})),
    [
      "SUPABASE_SERVICE_ROLE_KEY or SUPABASE_SECRET_KEYS",
      "SUPABASE_URL",
      "SSH_PRIVATE_KEY",
      "MATOMO_URL",
      "MATOMO_TOKEN_AUTH",
    ].map((setting) => ({ setting, message: "missing" })),
  );
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
    HOSTING_DISPATCH_TOKEN: MARKER,
  });
  const problems = problemsOf(loaded);
  assert.deepEqual(problems.map((p) => p.setting), [
    "SUPABASE_SECRET_KEYS",
    "SUPABASE_URL",
    "SSH_HOST",
    "SSH_PORT",
    "SSH_USER",
    "SSH_PRIVATE_KEY",
    "SSH_HOST_KEY_FINGERPRINT",
    "MATOMO_URL",
    "MATOMO_TOKEN_AUTH",
    "HOSTING_DISPATCH_TOKEN",
    "HOSTING_MAX_CONCURRENT",
    "SSH_CONNECT_TIMEOUT_SECONDS",
  ]);
  const text = JSON.stringify(problems);
  for (const fragment of [MARKER, "Zq7x", "DISTINCTIVE", "Root"]) {
    assert.ok(!text.includes(fragment), `a problem repeats ${fragment}: ${text}`);
  }
});

Deno.test("the invalid-setting messages say what is expected", () => {
  const messages = (env: Record<string, string>) => problemsOf(loadSettings({ ...ENV, ...env }));
  const one = (setting: string, message: string) => [{ setting, message }];
  assert.deepEqual(
    messages({ SUPABASE_URL: "127.0.0.1:54321" }),
    one("SUPABASE_URL", "must be an http(s) URL without credentials, query or fragment"),
  );
  assert.deepEqual(
    messages({ MATOMO_URL: "https://analytics.example.com/?token_auth=x" }),
    one("MATOMO_URL", "must be an http(s) URL without credentials, query or fragment"),
  );
  assert.deepEqual(
    messages({ SSH_HOST: "host;reboot" }),
    one("SSH_HOST", "must be a host name or an IP address"),
  );
  assert.deepEqual(messages({ SSH_USER: "Deploy" }), one("SSH_USER", "must be a Linux user name"));
  assert.deepEqual(
    messages({ SSH_HOST_KEY_FINGERPRINT: "MD5:16:27:ac:a5:76:28:2d:36" }),
    one("SSH_HOST_KEY_FINGERPRINT", "must be SHA256:… as ssh-keygen -lf prints it"),
  );
  assert.deepEqual(
    messages({ SSH_PRIVATE_KEY: "ssh-ed25519 AAAAC3Nza public key" }),
    one(
      "SSH_PRIVATE_KEY",
      "must be an OpenSSH or PEM private key (BEGIN/END lines; \\n escapes accepted)",
    ),
  );
  assert.deepEqual(
    messages({ MATOMO_TOKEN_AUTH: "short" }),
    one("MATOMO_TOKEN_AUTH", "must be a Matomo token_auth"),
  );
  assert.deepEqual(
    messages({ HOSTING_DISPATCH_TOKEN: "d".repeat(31) }),
    one("HOSTING_DISPATCH_TOKEN", "must be at least 32 characters"),
  );
  for (const port of ["0", "65536", "22.5", "ssh"]) {
    const problems = messages({ SSH_PORT: port });
    assert.equal(problems.length, 1, port);
    assert.equal(problems[0].setting, "SSH_PORT", port);
  }
});

const DISPATCH = "dispatch-token-0123456789abcdefghij";

Deno.test("the dispatch token is optional and read trimmed when at least 32 characters", () => {
  assert.equal(DISPATCH.length, 35);
  assert.equal(settingsOf(loadSettings(ENV)).dispatchToken, undefined);
  assert.equal(
    settingsOf(loadSettings({ ...ENV, HOSTING_DISPATCH_TOKEN: "   " })).dispatchToken,
    undefined,
  );
  assert.equal(
    settingsOf(loadSettings({ ...ENV, HOSTING_DISPATCH_TOKEN: ` ${DISPATCH} ` })).dispatchToken,
    DISPATCH,
  );
  const exactly32 = "d".repeat(32);
  assert.equal(
    settingsOf(loadSettings({ ...ENV, HOSTING_DISPATCH_TOKEN: exactly32 })).dispatchToken,
    exactly32,
  );
});

Deno.test("refused settings still carry the dispatch token, so its caller can be told apart", () => {
  const loaded = loadSettings({ ...ENV, SSH_PRIVATE_KEY: "", HOSTING_DISPATCH_TOKEN: DISPATCH });
  assert.equal(loaded.ok, false);
  assert.equal(!loaded.ok && loaded.dispatchToken, DISPATCH);
  assert.deepEqual(!loaded.ok && loaded.callerKeys, ["service-role-jwt.payload.signature"]);
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
      { setting: "SUPABASE_SECRET_KEYS", message: "must be a JSON object of named keys" },
    ], value);
    // The service-role key still lets the caller in, so a 500 can be answered to the right caller.
    assert.deepEqual(!loaded.ok && loaded.callerKeys, ["service-role-jwt.payload.signature"]);
  }
});

/** Every other knob where it leaves the most room, so one knob's bound is judged on its own. */
const ROOMY: Record<string, string> = Object.fromEntries(
  Object.entries(TUNING).map(([name, [, min, max]]) => [
    name,
    String(/_MAX_SECONDS$|WALL_CLOCK|LEASE/.test(name) ? max : min),
  ]),
);

Deno.test("every tuning knob accepts its bounds and refuses one beyond them", () => {
  // Every bound fits the whole when the other knobs leave room (ROOMY): no range admits a value
  // that the arithmetic below could never accept.
  const neverFit: Record<string, SettingProblem> = {};
  for (const [name, [, min, max]] of Object.entries(TUNING)) {
    for (const bound of [min, max]) {
      const loaded = loadSettings({ ...ENV, ...ROOMY, [name]: String(bound) });
      const expected = neverFit[`${name}=${bound}`];
      if (expected) assert.deepEqual(problemsOf(loaded), [expected], `${name}=${bound}`);
      else assert.equal(loaded.ok, true, `${name}=${bound}: ${JSON.stringify(loaded)}`);
    }
    for (const bad of [String(min - 1), String(max + 1), `${min}.5`, "many", "0x10", "1e2", "+5"]) {
      assert.deepEqual(problemsOf(loadSettings({ ...ENV, ...ROOMY, [name]: bad })), [
        { setting: name, message: `must be a whole number from ${min} to ${max}` },
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
    HOSTING_WALL_CLOCK_SECONDS: "400",
    HOSTING_RETRY_BASE_SECONDS: "2",
    HOSTING_RETRY_MAX_SECONDS: "20",
    HOSTING_SERVER_RETRY_BASE_SECONDS: "3",
    HOSTING_SERVER_RETRY_MAX_SECONDS: "30",
    HOSTING_ANALYTICS_RETRY_SECONDS: "45",
    HOSTING_ANALYTICS_RETRY_MAX_SECONDS: "450",
    HOSTING_ANALYTICS_MAX_ATTEMPTS: "4",
    HOSTING_SITE_TIMEOUT_SECONDS: "61",
    HOSTING_CERTIFICATE_TIMEOUT_SECONDS: "62",
    HOSTING_CHECK_TIMEOUT_SECONDS: "7",
    HOSTING_DATABASE_TIMEOUT_SECONDS: "8",
    SSH_CONNECT_TIMEOUT_SECONDS: "9",
    SSH_MAX_CHANNELS: "2",
    MATOMO_TIMEOUT_SECONDS: "60",
  }));
  assert.deepEqual(
    {
      claim: settings.claim,
      databaseTimeoutMs: settings.databaseTimeoutMs,
      lanes: settings.lanes,
      wallClockMs: settings.wallClockMs,
      retry: settings.retry,
      analyticsRetry: settings.analyticsRetry,
      serverRetry: settings.serverRetry,
      timeouts: settings.timeouts,
    },
    {
      claim: {
        maxConcurrent: 5,
        leaseSeconds: 900,
        maxAttempts: 3,
        analyticsLeaseSeconds: 154, // two Matomo calls of 60 s, three database writes of 8 s, 10 s
      },
      databaseTimeoutMs: 8_000,
      lanes: { maxConcurrent: 5, timeBudgetMs: 30_000 },
      wallClockMs: 400_000,
      retry: { maxAttempts: 3, baseDelayMs: 2_000, maxDelayMs: 20_000 },
      analyticsRetry: { baseDelayMs: 45_000, maxDelayMs: 450_000, maxAttempts: 4 },
      serverRetry: { baseMs: 3_000, maxMs: 30_000 },
      timeouts: { siteMs: 61_000, certificateMs: 62_000, checkMs: 7_000 },
    },
  );
  assert.equal(settings.ssh.connectTimeoutMs, 9_000);
  assert.equal(settings.ssh.maxChannels, 2);
  assert.equal(settings.matomo.timeoutMs, 60_000);
});

Deno.test("a retry cap below its retry base is refused, for each of the three schedules", () => {
  for (
    const [base, max] of [
      ["HOSTING_RETRY_BASE_SECONDS", "HOSTING_RETRY_MAX_SECONDS"],
      ["HOSTING_SERVER_RETRY_BASE_SECONDS", "HOSTING_SERVER_RETRY_MAX_SECONDS"],
      ["HOSTING_ANALYTICS_RETRY_SECONDS", "HOSTING_ANALYTICS_RETRY_MAX_SECONDS"],
    ]
  ) {
    assert.deepEqual(
      problemsOf(loadSettings({ ...ENV, [base]: "600", [max]: "300" })),
      [{ setting: max, message: `must not be below ${base}` }],
      max,
    );
    assert.equal(loadSettings({ ...ENV, [base]: "300", [max]: "300" }).ok, true, max);
  }
});

// --- the settings as a whole ------------------------------------------------------------------------

const DEFAULTS = Object.fromEntries(
  Object.entries(TUNING).map(([name, [fallback]]) => [name, fallback]),
) as Parameters<typeof siteWorstCaseSeconds>[0];

Deno.test("the defaults fit: one site 140 s, the longest step 65 s, lease 75 s ≥ 70 s", () => {
  // connect 8 + three reads 3 × 8 (the race path: read, read again, document root) + site 25 +
  // DNS 3 + certificate 40 + two Matomo calls 2 × 6 + seven database writes 7 × 4.
  assert.equal(siteWorstCaseSeconds(DEFAULTS), 8 + 3 * 8 + 25 + 3 + 40 + 2 * 6 + 7 * 4);
  assert.equal(siteWorstCaseSeconds(DEFAULTS), 140);
  // The site step is the longest: connect 8 + three reads 24 + site 25, then two writes of 4 s.
  assert.equal(stepWorstCaseSeconds(DEFAULTS), 8 + 3 * 8 + 25 + 2 * 4);
  assert.equal(stepWorstCaseSeconds(DEFAULTS), 65);
  assert.ok(DEFAULTS.HOSTING_LEASE_SECONDS >= stepWorstCaseSeconds(DEFAULTS) + 5);
  // A site claimed at the end of the 10 s budget ends by 150 s, inside the 150 s wall clock.
  assert.equal(DEFAULTS.HOSTING_TIME_BUDGET_SECONDS + siteWorstCaseSeconds(DEFAULTS), 150);
  assert.ok(150 <= DEFAULTS.HOSTING_WALL_CLOCK_SECONDS);
  assert.equal(loadSettings(ENV).ok, true);
});

Deno.test("a longer certificate deadline makes the certificate step the longest", () => {
  const t = { ...DEFAULTS, HOSTING_CERTIFICATE_TIMEOUT_SECONDS: 60 };
  // DNS 3, its warning written 4, the certificate 60, then two writes of 4 s.
  assert.equal(stepWorstCaseSeconds(t), 3 + 4 + 60 + 2 * 4);
  assert.equal(siteWorstCaseSeconds(t), 160);
  const matomo = { ...DEFAULTS, MATOMO_TIMEOUT_SECONDS: 30 };
  assert.equal(stepWorstCaseSeconds(matomo), 2 * 30 + 2 * 4);
});

Deno.test("a lease shorter than the longest step plus 5 s names HOSTING_LEASE_SECONDS", () => {
  assert.equal(loadSettings({ ...ENV, HOSTING_LEASE_SECONDS: "70" }).ok, true);
  assert.deepEqual(problemsOf(loadSettings({ ...ENV, HOSTING_LEASE_SECONDS: "69" })), [{
    setting: "HOSTING_LEASE_SECONDS",
    message: "must be at least 70 s (the longest step's deadlines plus its database writes, " +
      "65 s, and 5 s), so a lease never ends under a running step",
  }]);
});

Deno.test("a raised command deadline without a longer lease names HOSTING_LEASE_SECONDS", () => {
  // Site step: 8 + 24 + 60 + 8 = 100 s, so the lease must be at least 105 s.
  assert.deepEqual(
    problemsOf(loadSettings({
      ...ENV,
      HOSTING_SITE_TIMEOUT_SECONDS: "60",
      HOSTING_TIME_BUDGET_SECONDS: "0",
      HOSTING_WALL_CLOCK_SECONDS: "200",
    })),
    [{
      setting: "HOSTING_LEASE_SECONDS",
      message: "must be at least 105 s (the longest step's deadlines plus its database writes, " +
        "100 s, and 5 s), so a lease never ends under a running step",
    }],
  );
});

Deno.test("one site's deadlines beyond the wall clock name HOSTING_WALL_CLOCK_SECONDS", () => {
  assert.deepEqual(problemsOf(loadSettings({ ...ENV, HOSTING_WALL_CLOCK_SECONDS: "120" })), [{
    setting: "HOSTING_WALL_CLOCK_SECONDS",
    message: "one site's deadlines add up to 140 s, more than the runtime's 120 s " +
      "(lower the command timeouts or raise it on a paid plan)",
  }]);
});

Deno.test("a budget that lets a lane claim a site it cannot finish names the budget", () => {
  assert.equal(loadSettings({ ...ENV, HOSTING_TIME_BUDGET_SECONDS: "10" }).ok, true);
  assert.deepEqual(problemsOf(loadSettings({ ...ENV, HOSTING_TIME_BUDGET_SECONDS: "11" })), [{
    setting: "HOSTING_TIME_BUDGET_SECONDS",
    message: "a site claimed at the end of the budget needs up to 140 s more, past the " +
      "150 s wall clock (at most 10 s)",
  }]);
  // Exactly one site's worst case: no budget is left at all.
  assert.deepEqual(problemsOf(loadSettings({ ...ENV, HOSTING_WALL_CLOCK_SECONDS: "140" })), [{
    setting: "HOSTING_TIME_BUDGET_SECONDS",
    message: "a site claimed at the end of the budget needs up to 140 s more, past the " +
      "140 s wall clock (at most 0 s)",
  }]);
  // A longer DNS deadline shrinks the room for the budget: 150 − 145 = 5 s.
  assert.deepEqual(
    problemsOf(loadSettings({ ...ENV, HOSTING_DNS_TIMEOUT_SECONDS: "8" })),
    [{
      setting: "HOSTING_TIME_BUDGET_SECONDS",
      message: "a site claimed at the end of the budget needs up to 145 s more, past the " +
        "150 s wall clock (at most 5 s)",
    }],
  );
});

Deno.test("several misfits are all named at once", () => {
  assert.deepEqual(
    problemsOf(loadSettings({
      ...ENV,
      HOSTING_LEASE_SECONDS: "30",
      HOSTING_WALL_CLOCK_SECONDS: "100",
    })).map((p) => p.setting),
    ["HOSTING_LEASE_SECONDS", "HOSTING_WALL_CLOCK_SECONDS"],
  );
});

Deno.test("the whole is checked only once every setting is valid on its own", () => {
  assert.deepEqual(
    problemsOf(loadSettings({ ...ENV, HOSTING_LEASE_SECONDS: "30", SSH_PORT: "0" }))
      .map((p) => p.setting),
    ["SSH_PORT"],
  );
});

Deno.test("secretsOf lists every key, the private key, the passphrase, the Matomo token and the dispatch token", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    SUPABASE_SECRET_KEYS: '{"default":"sb_secret_default"}',
    SSH_PRIVATE_KEY_PASSPHRASE: "passphrase-123",
    HOSTING_DISPATCH_TOKEN: DISPATCH,
  }));
  const secrets = secretsOf(settings);
  for (
    const secret of [
      "sb_secret_default",
      "service-role-jwt.payload.signature",
      PRIVATE_KEY,
      "passphrase-123",
      "0123456789abcdef0123456789abcdef",
      DISPATCH,
    ]
  ) {
    assert.ok(secrets.includes(secret), secret);
  }
  assert.ok(!secrets.includes(""));
});

Deno.test("secretsOf leaves out a passphrase and a dispatch token that are not set", () => {
  const secrets = secretsOf(settingsOf(loadSettings(ENV)));
  assert.deepEqual(secrets, [
    "service-role-jwt.payload.signature",
    "service-role-jwt.payload.signature",
    PRIVATE_KEY,
    "0123456789abcdef0123456789abcdef",
  ]);
});

// --- the DNS check before a certificate -------------------------------------------------------------

Deno.test("without HOSTING_SERVER_ADDRESSES the implicit server has no addresses (its DNS check is off)", () => {
  assert.equal(settingsOf(loadSettings(ENV)).ssh.implicit?.addresses, undefined);
  assert.equal(
    settingsOf(loadSettings({ ...ENV, HOSTING_SERVER_ADDRESSES: " " })).ssh.implicit?.addresses,
    undefined,
  );
});

Deno.test("the implicit server's addresses turn its DNS check on, with the default resolver and 3 s", () => {
  const settings = settingsOf(
    loadSettings({ ...ENV, HOSTING_SERVER_ADDRESSES: " 203.0.113.7, 2001:db8::7 " }),
  );
  assert.deepEqual(settings.ssh.implicit?.addresses, ["203.0.113.7", "2001:db8::7"]);
  assert.deepEqual(settings.dns, {
    resolverUrl: "https://cloudflare-dns.com/dns-query",
    timeoutMs: 3_000,
  });
});

Deno.test("a resolver URL and DNS timeout of one's own are taken", () => {
  const settings = settingsOf(loadSettings({
    ...ENV,
    HOSTING_SERVER_ADDRESSES: "203.0.113.7",
    HOSTING_DNS_RESOLVER_URL: "https://dns.google/resolve",
    HOSTING_DNS_TIMEOUT_SECONDS: "2",
  }));
  assert.deepEqual(settings.dns, { resolverUrl: "https://dns.google/resolve", timeoutMs: 2_000 });
});

// --- several servers --------------------------------------------------------------------------------

Deno.test("without SSH_HOST there is no implicit server, and no fingerprint is needed", () => {
  const { SSH_HOST: _h, SSH_HOST_KEY_FINGERPRINT: _f, ...rest } = ENV;
  const ssh = settingsOf(loadSettings(rest)).ssh;
  assert.equal(ssh.implicit, undefined);
  assert.equal(ssh.privateKey, PRIVATE_KEY, "the default key is still the key of every server");
});

Deno.test("SSH_HOST without SSH_HOST_KEY_FINGERPRINT is refused: the implicit server is pinned too", () => {
  const { SSH_HOST_KEY_FINGERPRINT: _f, ...rest } = ENV;
  assert.deepEqual(problemsOf(loadSettings(rest)), [{
    setting: "SSH_HOST_KEY_FINGERPRINT",
    message: "missing (SSH_HOST is set)",
  }]);
});

Deno.test("a server's own key (SSH_PRIVATE_KEY__<NAME>) is read for that server, with its passphrase", () => {
  const ssh = settingsOf(loadSettings({
    ...ENV,
    SSH_PRIVATE_KEY__FRA_1: PRIVATE_KEY.replaceAll("\n", "\\n").replace("ZmFrZSBr", "QW5vdGhl"),
    SSH_PRIVATE_KEY_PASSPHRASE__FRA_1: "fra passphrase",
    SSH_PRIVATE_KEY__NBG: PRIVATE_KEY,
  })).ssh;
  assert.deepEqual(Object.keys(ssh.keys).sort(), ["fra-1", "nbg"]);
  assert.equal(ssh.keys["fra-1"].passphrase, "fra passphrase");
  assert.ok(ssh.keys["fra-1"].privateKey.includes("QW5vdGhl"), "the \\n escapes are decoded");
  assert.equal(ssh.keys.nbg.passphrase, undefined);
});

Deno.test("a server key that is not a key, or a passphrase without its key, is refused by name", () => {
  assert.deepEqual(
    problemsOf(loadSettings({
      ...ENV,
      SSH_PRIVATE_KEY__FRA_1: "not a key",
      SSH_PRIVATE_KEY_PASSPHRASE__NBG: "orphan",
    })),
    [
      {
        setting: "SSH_PRIVATE_KEY__FRA_1",
        message: "must be an OpenSSH or PEM private key (BEGIN/END lines; \\n escapes accepted)",
      },
      {
        setting: "SSH_PRIVATE_KEY_PASSPHRASE__NBG",
        message: "is set without its key (SSH_PRIVATE_KEY__ of the same server)",
      },
    ],
  );
});

Deno.test("secretsOf includes every server's own key and passphrase", () => {
  const secrets = secretsOf(settingsOf(loadSettings({
    ...ENV,
    SSH_PRIVATE_KEY__FRA_1: PRIVATE_KEY.replace("ZmFrZSBr", "QW5vdGhl"),
    SSH_PRIVATE_KEY_PASSPHRASE__FRA_1: "fra passphrase",
  })));
  assert.ok(secrets.some((secret) => secret.includes("QW5vdGhl")));
  assert.ok(secrets.includes("fra passphrase"));
});

Deno.test("a server address that is not an IP address is refused by name", () => {
  for (const bad of ["cloudpanel.example.com", "203.0.113.7, 999.1.1.1", ",", "[2001:db8::7]"]) {
    assert.deepEqual(problemsOf(loadSettings({ ...ENV, HOSTING_SERVER_ADDRESSES: bad })), [{
      setting: "HOSTING_SERVER_ADDRESSES",
      message: "must be the server's public IPv4/IPv6 addresses, comma-separated",
    }], bad);
  }
});

Deno.test("a resolver URL with a query is refused (the check adds name and type)", () => {
  assert.deepEqual(
    problemsOf(loadSettings({ ...ENV, HOSTING_DNS_RESOLVER_URL: "https://dns.example?x=1" })),
    [{
      setting: "HOSTING_DNS_RESOLVER_URL",
      message: "must be an http(s) URL without credentials, query or fragment",
    }],
  );
});
