// Tests the CloudPanel stand-in end to end: OpenSSH client → the stand-in's sshd → clpctl, with the
// server's files checked from the host side. Needs `local/standins/cloudpanel/up` and
// $HA_STACK_DIR/env.d/cloudpanel.env in the environment (local/test); skipped without them.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Buffer } from "node:buffer";
// @ts-types="@types/ssh2"
import { Client } from "ssh2";
import { stackSetting, stackTest } from "../../../supabase/tests/stack_env.ts";

const needs = ["HA_CLOUDPANEL_DIR", "SSH_PORT", "HA_SSH_KEY_FILE"];
function sshTest(name: string, fn: () => Promise<void>): void {
  stackTest({ name, needs, fn });
}

interface Server {
  port: string;
  dir: string;
  keyFile: string;
  knownHosts: string;
}

function server(): Server {
  const dir = stackSetting("HA_CLOUDPANEL_DIR");
  const knownHosts = Deno.env.get("HA_SSH_KNOWN_HOSTS_FILE") ?? `${dir}/known_hosts`;
  return {
    port: stackSetting("SSH_PORT"),
    dir,
    keyFile: stackSetting("HA_SSH_KEY_FILE"),
    knownHosts,
  };
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

/** Runs one command on the stand-in as `user`: no TTY, stdin closed, host key pinned. */
async function ssh(user: string, command: string, signal?: AbortSignal): Promise<Run> {
  const s = server();
  const output = await new Deno.Command("ssh", {
    args: [
      "-F",
      "/dev/null",
      "-T",
      "-i",
      s.keyFile,
      "-p",
      s.port,
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      "-o",
      "StrictHostKeyChecking=yes",
      "-o",
      `UserKnownHostsFile=${s.knownHosts}`,
      "-o",
      "LogLevel=ERROR",
      `${user}@127.0.0.1`,
      command,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal,
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** Single-quotes a value for the remote shell, as the product does. */
function q(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function clpctl(args: string, user = "root"): Promise<Run> {
  return ssh(user, `${user === "root" ? "" : "sudo -n "}clpctl ${args}`);
}

function addSite(domain: string, siteUser: string, password = "Pw-9xY2kLmN", user = "root") {
  return clpctl(
    `site:add:static --domainName=${q(domain)} --siteUser=${q(siteUser)} ` +
      `--siteUserPassword=${q(password)}`,
    user,
  );
}

function deleteSite(domain: string): Promise<Run> {
  return clpctl(`site:delete --domainName=${q(domain)} --force`);
}

function installCertificate(domain: string, extra = ""): Promise<Run> {
  return clpctl(`lets-encrypt:install:certificate --domainName=${q(domain)}${extra}`);
}

/** Reads the inventory from the host side, the file behind /home/clp/htdocs/app/data/db.sq3. */
async function inventory(sql: string): Promise<Record<string, unknown>[]> {
  const output = await new Deno.Command("sqlite3", {
    args: ["-readonly", "-json", `${server().dir}/home/clp/htdocs/app/data/db.sq3`, sql],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, decoder.decode(output.stderr));
  const text = decoder.decode(output.stdout).trim();
  return text === "" ? [] : JSON.parse(text);
}

function siteRow(domain: string) {
  return inventory(
    `select s.type, s.domain_name, s.root_directory, s.user, c.type as certificate_type ` +
      `from site s left join certificate c on c.id = s.certificate_id ` +
      `where s.domain_name = '${domain.replaceAll("'", "''")}'`,
  );
}

/** A fresh apex domain and site user for one test. */
function names(tag: string): { domain: string; user: string } {
  const id = crypto.randomUUID().replaceAll("-", "").slice(0, 10);
  return { domain: `${tag}-${id}.com`, user: `${tag}${id}` };
}

/** Runs `body` on a site added for it (a fresh domain and user), deleted afterwards. */
async function withSite(
  tag: string,
  body: (domain: string, user: string) => Promise<void>,
): Promise<void> {
  const { domain, user } = names(tag);
  try {
    assert.equal((await addSite(domain, user)).code, 0);
    await body(domain, user);
  } finally {
    await deleteSite(domain);
  }
}

async function withFault(
  domain: string,
  fault: string,
  content: string,
  body: () => Promise<void>,
): Promise<void> {
  const dir = `${server().dir}/control/domains/${domain}`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/${fault}`, content);
  try {
    await body();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

async function inHostPasswd(user: string): Promise<boolean> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  return passwd.split("\n").some((line) => line.startsWith(`${user}:`));
}

sshTest("clpctl --version prints the Symfony kernel version line", async () => {
  const run = await clpctl("--version");
  assert.deepEqual(run, {
    code: 0,
    stdout: "CloudPanel CLI 6.0.8 (env: prod, debug: false)\n",
    stderr: "",
  });
});

sshTest("site:add:static creates the user, the document root and the inventory row", async () => {
  const { domain, user } = names("add");
  try {
    const run = await addSite(domain, user);
    assert.deepEqual(run, { code: 0, stdout: `Site ${domain} has been added.\n`, stderr: "" });

    assert.deepEqual(await siteRow(domain), [
      { type: "static", domain_name: domain, root_directory: domain, user, certificate_type: 1 },
    ]);
    const home = `${server().dir}/home/${user}`;
    const root = `${home}/htdocs/${domain}`;
    assert.equal(await Deno.readTextFile(`${root}/index.html`), "Hello World :-)");
    assert.equal((await Deno.stat(root)).mode! & 0o777, 0o770);
    assert.equal((await Deno.stat(`${home}/.ssh`)).mode! & 0o777, 0o700);
    for (const path of ["logs/nginx/access.log", "logs/nginx/error.log", "backups", "tmp"]) {
      assert.ok(await exists(`${home}/${path}`), `${path} is missing`);
    }
    const checks = await ssh(
      "root",
      `getent passwd ${q(user)} | cut -d: -f1,6,7 && test -d ${
        q(`/home/${user}/htdocs/${domain}`)
      }`,
    );
    assert.deepEqual(checks, { code: 0, stdout: `${user}:/home/${user}:/bin/bash\n`, stderr: "" });
  } finally {
    await deleteSite(domain);
  }
});

sshTest("site:add:static trims and lowercases the domain name", async () => {
  const { domain, user } = names("case");
  try {
    const run = await addSite(`  ${domain.toUpperCase()} `, user);
    assert.equal(run.stdout, `Site ${domain} has been added.\n`);
    assert.equal((await siteRow(domain)).length, 1);
  } finally {
    await deleteSite(domain);
  }
});

sshTest("adding an existing domain is refused, with one line per taken field", async () => {
  await withSite("dup", async (domain, user) => {
    const sameDomain = await addSite(domain, `${user}x`);
    assert.deepEqual(sameDomain, {
      code: 1,
      stdout: "domainName: This value already exists.\n",
      stderr: "",
    });
    const both = await addSite(domain, user);
    assert.deepEqual(both, {
      code: 1,
      stdout: "domainName: This value already exists.\nsiteUser: This value already exists.\n",
      stderr: "",
    });
    assert.equal((await inventory(`select id from site where user = '${user}x'`)).length, 0);
  });
});

sshTest("an apex domain collides with its www twin, and the reverse", async () => {
  const apexFirst = names("apex");
  const wwwFirst = names("www");
  try {
    assert.equal((await addSite(apexFirst.domain, apexFirst.user)).code, 0);
    const www = await addSite(`www.${apexFirst.domain}`, `${apexFirst.user}w`);
    assert.deepEqual([www.code, www.stdout], [1, "domainName: This value already exists.\n"]);

    assert.equal((await addSite(`www.${wwwFirst.domain}`, wwwFirst.user)).code, 0);
    const apex = await addSite(wwwFirst.domain, `${wwwFirst.user}a`);
    assert.deepEqual([apex.code, apex.stdout], [1, "domainName: This value already exists.\n"]);
  } finally {
    await deleteSite(apexFirst.domain);
    await deleteSite(`www.${wwwFirst.domain}`);
  }
});

sshTest("a site user already in the server's /etc/passwd is refused", async () => {
  const { domain } = names("taken");
  const run = await addSite(domain, "nosudo");
  assert.deepEqual(run, { code: 1, stdout: "siteUser: This value already exists.\n", stderr: "" });
  assert.equal((await siteRow(domain)).length, 0);
});

sshTest("invalid input prints one line per violation, in field order", async () => {
  const run = await addSite("exa mple", "1x", "short");
  assert.deepEqual(run, {
    code: 1,
    stdout: [
      "domainName: This value is not valid.",
      "siteUser: This value is not valid.",
      "siteUser: This value is too short. It should have 3 characters or more.",
      "siteUserPassword: This value is too short. It should have 8 characters or more.",
      "",
    ].join("\n"),
    stderr: "",
  });
  const longTld = await addSite("example.abcdefghijklmno", `u${"x".repeat(32)}`);
  assert.deepEqual(longTld.stdout.split("\n"), [
    "domainName: This value is not valid.",
    "siteUser: This value is too long. It should have 32 characters or less.",
    "",
  ]);
  const dotted = await addSite(names("dot").domain, "john.doe");
  assert.equal(dotted.stdout, "siteUser: This value is not valid.\n");
});

sshTest("an empty or missing required option is reported on stdout", async () => {
  const { domain, user } = names("opt");
  const empty = await clpctl(
    `site:add:static --domainName=${q(domain)} --siteUser=${q(user)} --siteUserPassword='  '`,
  );
  assert.deepEqual(empty, {
    code: 1,
    stdout: 'The "--siteUserPassword" option requires a value.\n',
    stderr: "",
  });
  const missing = await clpctl(`site:add:static --siteUser ${q(user)}`);
  assert.deepEqual([missing.code, missing.stdout], [
    1,
    'The "--domainName" option requires a value.\n',
  ]);
});

sshTest("an unknown option or command is a Symfony error on stderr, exit 1", async () => {
  const { domain } = names("sym");
  const option = await clpctl(`site:add:static --domainName=${q(domain)} --phpVersion=8.3`);
  assert.equal(option.code, 1);
  assert.equal(option.stdout, "");
  assert.match(option.stderr, /^ {2}The "--phpVersion" option does not exist\. {2}$/m);
  assert.match(option.stderr, /^site:add:static \[--domainName DOMAINNAME\] /m);

  const command = await clpctl(`ssl:add:lets-encrypt --domainName=${q(domain)}`);
  assert.equal(command.code, 1);
  assert.equal(command.stdout, "");
  assert.match(command.stderr, /There are no commands defined in the "ssl:add" namespace\./);
  assert.match(command.stderr, /"level_name":"CRITICAL","channel":"console"/);

  const renew = await clpctl("lets-encrypt:renew:certificates");
  assert.match(renew.stderr, /There are no commands defined in the "lets-encrypt:renew" namespace/);
});

sshTest("lets-encrypt:install:certificate records a Let's Encrypt certificate", async () => {
  await withSite("cert", async (domain) => {
    const run = await installCertificate(domain);
    assert.deepEqual(run, {
      code: 0,
      stdout: "Certificate installation was successful.\n",
      stderr: "",
    });
    assert.equal((await siteRow(domain))[0].certificate_type, 2);
  });
});

sshTest("lets-encrypt:install:certificate on a missing site says it does not exist", async () => {
  const { domain } = names("nocert");
  const run = await installCertificate(domain);
  assert.deepEqual(run, { code: 1, stdout: `Site "${domain}" does not exist.\n`, stderr: "" });
});

sshTest(
  "each certificate fault prints CloudPanel's text, exits 1 and installs nothing",
  async () => {
    const { domain, user } = names("acme");
    const challenge = (type: string) =>
      new RegExp(
        `^${domain.replaceAll(".", "\\.")}: Domain could not be validated, error message: ` +
          `error type: urn:ietf:params:acme:error:${type}, error detail: .+, ` +
          `www\\.${domain.replaceAll(".", "\\.")}: Domain could not be validated, .+\n$`,
      );
    const expected: Record<string, RegExp> = {
      dns: challenge("dns"),
      unauthorized: challenge("unauthorized"),
      connection: challenge("connection"),
      rate_limited: new RegExp(
        "^An error occurred while requesting an order, error message: Client error: " +
          "`POST https://acme-v02\\.api\\.letsencrypt\\.org/acme/new-order` resulted in a " +
          '`429 Too Many Requests` response:\n\\{\n {2}"type": ' +
          '"urn:ietf:params:acme:error:rateLimited",\n[^]* \\(truncated\\.\\.\\.\\)\n\n$',
      ),
      registration_timeout: new RegExp(
        "^An error occurred while registering an account, error message: cURL error 28: " +
          "Operation timed out after 15001 milliseconds with 0 bytes received \\(see " +
          "https://curl\\.haxx\\.se/libcurl/c/libcurl-errors\\.html\\) for " +
          "https://acme-v02\\.api\\.letsencrypt\\.org/acme/new-acct\n$",
      ),
    };
    try {
      assert.equal((await addSite(domain, user)).code, 0);
      for (const [fault, text] of Object.entries(expected)) {
        await withFault(domain, "cert", fault, async () => {
          const run = await installCertificate(domain);
          assert.equal(run.code, 1, fault);
          assert.match(run.stdout, text, fault);
          assert.equal(run.stderr, "", fault);
        });
      }
      assert.equal((await siteRow(domain))[0].certificate_type, 1);
    } finally {
      await deleteSite(domain);
    }
  },
);

sshTest("a fault marked 'once' fires one time only", async () => {
  await withSite("once", async (domain) => {
    await withFault(domain, "cert", "dns once", async () => {
      assert.match((await installCertificate(domain)).stdout, /acme:error:dns/);
      assert.equal((await installCertificate(domain)).code, 0);
    });
  });
});

sshTest(
  "an unreachable Public Suffix List fails site:add:static before anything is made",
  async () => {
    const { domain, user } = names("psl");
    await withFault(domain, "psl_unreachable", "", async () => {
      const run = await addSite(domain, user);
      assert.deepEqual(run, {
        code: 1,
        stdout: "cURL error 6: Could not resolve host: publicsuffix.org (see " +
          "https://curl.haxx.se/libcurl/c/libcurl-errors.html) for " +
          "https://publicsuffix.org/list/public_suffix_list.dat\n",
        stderr: "",
      });
    });
    assert.equal((await siteRow(domain)).length, 0);
    assert.equal((await ssh("root", `getent passwd ${q(user)}`)).code, 2);
  },
);

sshTest("a failure after createUser leaves the user and home but no inventory row", async () => {
  const { domain, user } = names("part");
  try {
    await withFault(domain, "fail_after", "createUser", async () => {
      const run = await addSite(domain, user);
      assert.equal(run.code, 1);
      assert.notEqual(run.stdout, "");
      assert.doesNotMatch(run.stdout, /has been added/);
    });
    assert.equal((await siteRow(domain)).length, 0);
    assert.equal((await ssh("root", `getent passwd ${q(user)}`)).code, 0);
    assert.ok(await exists(`${server().dir}/home/${user}`));

    const retry = await addSite(domain, user);
    assert.deepEqual([retry.code, retry.stdout], [1, "siteUser: This value already exists.\n"]);
  } finally {
    await ssh("root", `userdel -r ${q(user)} 2>/dev/null`);
  }
});

sshTest("delay_ms holds the answer back at least that long", async () => {
  const { domain } = names("slow");
  await withFault(domain, "delay_ms", "800 lets-encrypt:install:certificate", async () => {
    const started = performance.now();
    const run = await installCertificate(domain);
    assert.ok(performance.now() - started >= 800, "answered too early");
    assert.equal(run.stdout, `Site "${domain}" does not exist.\n`);
  });
});

sshTest("hang keeps the command silent past the caller's deadline", async () => {
  const { domain } = names("hang");
  await withFault(domain, "hang", "5", async () => {
    const started = performance.now();
    const run = await ssh(
      "root",
      `clpctl site:delete --domainName=${q(domain)} --force`,
      AbortSignal.timeout(1500),
    );
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 1400 && elapsed < 4500, `elapsed ${elapsed} ms`);
    // Deno ends the ssh client at the deadline (SIGTERM; ssh exits 255); nothing was answered.
    assert.notEqual(run.code, 0);
    assert.equal(run.stdout, "");
  });
});

sshTest("site:delete --force removes the row, the user and the home", async () => {
  const { domain, user } = names("del");
  assert.equal((await addSite(domain, user)).code, 0);
  const run = await deleteSite(domain);
  assert.deepEqual(run, { code: 0, stdout: `Site ${domain} has been deleted.\n`, stderr: "" });
  assert.equal((await siteRow(domain)).length, 0);
  assert.equal((await ssh("root", `getent passwd ${q(user)}`)).code, 2);
  assert.equal(await exists(`${server().dir}/home/${user}`), false);

  const again = await deleteSite(domain);
  assert.deepEqual(again, { code: 1, stdout: `Site "${domain}" does not exist.\n`, stderr: "" });
});

sshTest("site:delete without --force and without a TTY prompts and deletes nothing", async () => {
  await withSite("keep", async (domain) => {
    const run = await clpctl(`site:delete --domainName=${q(domain)}`);
    assert.deepEqual(run, {
      code: 0,
      stdout: "",
      stderr: `Confirm to delete the site: ${domain} (yes/no): `,
    });
    assert.equal((await siteRow(domain)).length, 1);
  });
});

sshTest("deploy runs clpctl and the read-only checks through sudo -n", async () => {
  const { domain, user } = names("sudo");
  try {
    const run = await addSite(domain, user, "Pw-9xY2kLmN", "deploy");
    assert.deepEqual(run, { code: 0, stdout: `Site ${domain} has been added.\n`, stderr: "" });
    const checks = await ssh(
      "deploy",
      `sudo -n sqlite3 -readonly /home/clp/htdocs/app/data/db.sq3 ` +
        `"select user from site where domain_name = '${domain}'" && ` +
        `sudo -n test -d ${q(`/home/${user}/htdocs/${domain}`)} && ` +
        `sudo -n getent passwd ${q(user)} | cut -d: -f1`,
    );
    assert.deepEqual(checks, { code: 0, stdout: `${user}\n${user}\n`, stderr: "" });
  } finally {
    await deleteSite(domain);
  }
});

sshTest("nosudo is refused by sudo -n with 'a password is required'", async () => {
  const run = await ssh("nosudo", "sudo -n clpctl --version");
  assert.deepEqual(run, { code: 1, stdout: "", stderr: "sudo: a password is required\n" });
});

sshTest("without sudo a non-root user has only the site-user commands", async () => {
  const { domain, user } = names("nonroot");
  const run = await ssh(
    "deploy",
    `clpctl site:add:static --domainName=${q(domain)} --siteUser=${q(user)} ` +
      `--siteUserPassword='Pw-9xY2kLmN'`,
  );
  assert.equal(run.code, 1);
  assert.match(run.stderr, /There are no commands defined in the "site:add" namespace\./);
  assert.equal((await siteRow(domain)).length, 0);
});

sshTest("calls.log records verb, domain and exit code, with the password masked", async () => {
  const { domain, user } = names("log");
  const password = `Secret-${crypto.randomUUID().slice(0, 8)}`;
  try {
    assert.equal((await addSite(domain, user, password)).code, 0);
    assert.equal((await addSite(domain, user, password)).code, 1);
    const log = await Deno.readTextFile(`${server().dir}/control/calls.log`);
    assert.equal(log.includes(password), false, "the password reached calls.log");
    const lines = log.split("\n").filter((line) => line.split("\t")[2] === domain);
    assert.deepEqual(
      lines.map((line) => line.split("\t").slice(1, 5)),
      [["site:add:static", domain, "0", "root"], ["site:add:static", domain, "1", "root"]],
    );
    assert.ok(lines.every((line) => /^\d+$/.test(line.split("\t")[5])), "duration_ms");
    assert.match(
      lines[0],
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\tsite:add:static\t.*--siteUserPassword=\*\*\*$/,
    );
  } finally {
    await deleteSite(domain);
  }
});

sshTest("the host's /etc/passwd, /home and /usr/bin stay untouched", async () => {
  await withSite("host", async (_domain, user) => {
    assert.equal((await ssh("root", `getent passwd ${q(user)} deploy >/dev/null`)).code, 0);
    assert.equal(await inHostPasswd(user), false);
    assert.equal(await inHostPasswd("deploy"), false);
    assert.equal(await exists(`/home/${user}`), false);
    assert.equal(await exists("/home/clp"), false);
    assert.equal(await exists("/usr/bin/clpctl"), false);
    assert.equal(await exists("/etc/sudoers.d/deploy-clpctl"), false);
  });
});

sshTest("the published settings let npm:ssh2 log in with the pinned host key", async () => {
  const privateKey = Deno.env.get("SSH_PRIVATE_KEY")?.replaceAll("\\n", "\n");
  const pinned = Deno.env.get("SSH_HOST_KEY_FINGERPRINT");
  assert.ok(privateKey && pinned, "SSH_PRIVATE_KEY and SSH_HOST_KEY_FINGERPRINT must be set");
  assert.match(pinned, /^SHA256:[A-Za-z0-9+/]{43}$/);
  const seen: string[] = [];
  const client = new Client();
  const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
  const output = await new Promise<{ code: number; stdout: string }>((resolve, reject) => {
    client.on("error", reject);
    client.on("ready", () => {
      client.exec("clpctl --version", (error, stream) => {
        if (error) return reject(error);
        let stdout = "";
        stream.on("data", (chunk: Buffer) => stdout += chunk.toString());
        stream.stderr.on("data", () => {});
        stream.on("exit", (code: number) => stream.on("close", () => resolve({ code, stdout })));
      });
    });
    client.connect({
      host: Deno.env.get("SSH_HOST"),
      port: Number(server().port),
      username: Deno.env.get("SSH_USER"),
      privateKey,
      readyTimeout: 5000,
      hostVerifier: (key: Buffer) => {
        const fingerprint = `SHA256:${createHash("sha256").update(key).digest("base64")}`;
        seen.push(fingerprint.replace(/=+$/, ""));
        return seen.at(-1) === pinned;
      },
    });
  });
  client.end();
  await closed;
  assert.deepEqual(seen, [pinned]);
  assert.deepEqual(output, { code: 0, stdout: "CloudPanel CLI 6.0.8 (env: prod, debug: false)\n" });
});
