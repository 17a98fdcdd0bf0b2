import assert from "node:assert/strict";
import {
  addStaticSite,
  classify,
  deleteSite,
  docRootCheck,
  docRootFor,
  type ExecResult,
  installCertificate,
  INVENTORY_PATH,
  parseServerState,
  type RemoteCommand,
  type ServerState,
  serverState,
  shellQuote,
  twinOf,
  type Verb,
} from "./cloudpanel.ts";
import { type ErrorCode, HostingError, type Step } from "./errors.ts";

// --- command lines -------------------------------------------------------------------------------

Deno.test("site:add:static as root is clpctl with the three options, every value single-quoted", () => {
  const command = addStaticSite("example.com", "example_com", "Secr3t-Pa55word", "root");
  assert.equal(command.verb, "site:add:static");
  assert.equal(
    command.line,
    "clpctl site:add:static --domainName='example.com' --siteUser='example_com' " +
      "--siteUserPassword='Secr3t-Pa55word'",
  );
});

Deno.test("the shown form of site:add:static masks the password and the line does not", () => {
  const command = addStaticSite("example.com", "example_com", "Secr3t-Pa55word", "root");
  assert.equal(
    command.shown,
    "clpctl site:add:static --domainName='example.com' --siteUser='example_com' " +
      "--siteUserPassword=***",
  );
  assert.ok(!command.shown.includes("Secr3t-Pa55word"));
  assert.ok(command.line.includes("'Secr3t-Pa55word'"));
});

Deno.test("a non-root SSH user runs every command through sudo -n", () => {
  const user = "deploy";
  assert.equal(
    addStaticSite("example.com", "example_com", "pw-123456", user).line,
    "sudo -n clpctl site:add:static --domainName='example.com' --siteUser='example_com' " +
      "--siteUserPassword='pw-123456'",
  );
  assert.equal(
    addStaticSite("example.com", "example_com", "pw-123456", user).shown,
    "sudo -n clpctl site:add:static --domainName='example.com' --siteUser='example_com' " +
      "--siteUserPassword=***",
  );
  assert.equal(
    installCertificate("example.com", user).line,
    "sudo -n clpctl lets-encrypt:install:certificate --domainName='example.com'",
  );
  assert.equal(
    deleteSite("example.com", user).line,
    "sudo -n clpctl site:delete --domainName='example.com' --force",
  );
  const probe = serverState("example.com", ["example_com"], user).line;
  assert.ok(probe.startsWith("{ sudo -n sqlite3 -readonly -cmd '.timeout 3000' -json "), probe);
  assert.ok(probe.includes("; { sudo -n getent passwd 'example_com'; } 2>&1;"), probe);
  assert.equal(
    docRootCheck("/home/example_com/htdocs/example.com", user).line,
    "sudo -n test -d '/home/example_com/htdocs/example.com'",
  );
});

Deno.test("the certificate and delete commands are exactly the documented verbs", () => {
  const cert = installCertificate("example.com", "root");
  assert.equal(cert.verb, "lets-encrypt:install:certificate");
  assert.equal(cert.line, "clpctl lets-encrypt:install:certificate --domainName='example.com'");
  assert.equal(cert.shown, cert.line);

  const del = deleteSite("example.com", "root");
  assert.equal(del.verb, "site:delete");
  assert.equal(del.line, "clpctl site:delete --domainName='example.com' --force");
  assert.equal(del.shown, del.line);
});

Deno.test("the document root is /home/<site user>/htdocs/<domain>", () => {
  assert.equal(docRootFor("example_com", "example.com"), "/home/example_com/htdocs/example.com");
  const check = docRootCheck(docRootFor("example_com", "example.com"), "root");
  assert.equal(check.verb, "doc-root-check");
  assert.equal(check.line, "test -d '/home/example_com/htdocs/example.com'");
  assert.equal(check.shown, check.line);
});

Deno.test("single-quoting wraps the value and closes, escapes and reopens around a quote", () => {
  assert.equal(shellQuote(""), "''");
  assert.equal(shellQuote("plain"), "'plain'");
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote('$(x) `y` \\ "'), `'$(x) \`y\` \\ "'`);
});

/** Runs a rendered command line in bash with stub programs that print their argv, NUL-separated. */
async function argvOf(line: string): Promise<string[]> {
  const stubs = [
    `clpctl() { printf '%s\\0' clpctl "$@"; }`,
    `sudo() { printf '%s\\0' sudo "$@"; }`,
    `test() { printf '%s\\0' test "$@"; }`,
  ].join("\n");
  const output = await new Deno.Command("bash", {
    args: ["-c", `${stubs}\n${line}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  const text = new TextDecoder().decode(output.stdout);
  assert.ok(text.endsWith("\0"), `unexpected output ${JSON.stringify(text)}`);
  return text.slice(0, -1).split("\0");
}

const HOSTILE_VALUES = [
  "it's",
  "'",
  "''",
  'say "hi"',
  "$(echo INJECTED)",
  "`echo INJECTED`",
  "${HOME}",
  "a; echo INJECTED",
  "a && echo INJECTED",
  "a | cat",
  "back\\slash\\",
  "*",
  "!event",
  "line one\nline two",
  "  spaced  ",
  "",
];

Deno.test("a hostile value stays one literal argument when bash runs the line (root)", async () => {
  for (const value of HOSTILE_VALUES) {
    const argv = await argvOf(addStaticSite(value, `u${value}`, `p${value}`, "root").line);
    assert.deepEqual(argv, [
      "clpctl",
      "site:add:static",
      `--domainName=${value}`,
      `--siteUser=u${value}`,
      `--siteUserPassword=p${value}`,
    ], JSON.stringify(value));
  }
});

Deno.test("a hostile value stays one literal argument behind sudo -n", async () => {
  for (const value of HOSTILE_VALUES) {
    assert.deepEqual(await argvOf(installCertificate(value, "deploy").line), [
      "sudo",
      "-n",
      "clpctl",
      "lets-encrypt:install:certificate",
      `--domainName=${value}`,
    ], JSON.stringify(value));
    assert.deepEqual(await argvOf(deleteSite(value, "root").line), [
      "clpctl",
      "site:delete",
      `--domainName=${value}`,
      "--force",
    ], JSON.stringify(value));
    assert.deepEqual(await argvOf(docRootCheck(`/home/x/htdocs/${value}`, "root").line), [
      "test",
      "-d",
      `/home/x/htdocs/${value}`,
    ], JSON.stringify(value));
  }
});

// --- the server's state: one read-only probe ------------------------------------------------------

const SELECT = "select s.domain_name, s.user, s.root_directory, " +
  "c.type as certificate_type, c.expires_at as certificate_expires_at " +
  "from site s left join certificate c on c.id = s.certificate_id";

Deno.test("the probe reads the inventory for the domain, its twin and the candidates, then getent", () => {
  const command = serverState("example.com", ["example_com", "example_com-2"], "root");
  assert.equal(command.verb, "server-state");
  assert.equal(INVENTORY_PATH, "/home/clp/htdocs/app/data/db.sq3");
  const sql = `${SELECT} where s.domain_name in ('example.com', 'www.example.com') ` +
    `or s.user in ('example_com', 'example_com-2')`;
  assert.equal(
    command.line,
    `{ sqlite3 -readonly -cmd '.timeout 3000' -json /home/clp/htdocs/app/data/db.sq3 ${
      shellQuote(sql)
    }; } 2>&1; ` +
      `printf '\\n@@hosting-automator inventory %s\\n' "$?"; ` +
      `{ getent passwd 'example_com' 'example_com-2'; } 2>&1; ` +
      `printf '\\n@@hosting-automator passwd %s\\n' "$?"`,
  );
  assert.equal(command.shown, command.line);
  assert.ok(!command.line.includes("private_key"));
});

Deno.test("a part that ends without a newline keeps its own classification (markers start a line)", () => {
  // What the probe prints when sqlite3 fails without a final newline: printf starts each marker
  // on a line of its own.
  const state = parseServerState({
    code: 0,
    stdout: "Error: unable to open database file\n@@hosting-automator inventory 1\n" +
      "\n@@hosting-automator passwd 2\n",
    stderr: "",
  });
  assert.ok(state instanceof HostingError);
  assert.equal(state.code, "INVENTORY_UNAVAILABLE");
  assert.equal(state.serverLevel, true);
});

Deno.test("the www/apex twin is the other name of the same site", () => {
  assert.equal(twinOf("example.com"), "www.example.com");
  assert.equal(twinOf("www.example.com"), "example.com");
  assert.equal(twinOf("shop.example.com"), "www.shop.example.com");
  assert.ok(
    serverState("www.example.com", ["www_example_com"], "root").line.includes(
      shellQuote("where s.domain_name in ('www.example.com', 'example.com')").slice(1, -1),
    ),
  );
});

interface ProbeServer {
  /** Replaces the sqlite3 stand-in (e.g. a missing program). */
  sqlite3?: string;
  /** Replaces the getent stand-in. */
  getent?: string;
  /** Replaces the sudo stand-in (default: drops -n and runs the command). */
  sudo?: string;
  /** SQL run against the database after the fixture rows. */
  extraSql?: string;
}

/**
 * Runs the probe line in bash against a real sqlite3 database holding CloudPanel's `site` and
 * `certificate` tables (docs/cloudpanel.md#the-inventory; `certificate.type` is text, as there),
 * standing in for /home/clp/htdocs/app/data/db.sq3, and a getent that reads a passwd fixture and
 * exits 2 when a key is not found, as the real one does.
 */
async function runProbe(command: RemoteCommand, server: ProbeServer = {}): Promise<ExecResult> {
  const script = `
set -u
DB="$(mktemp)"; PASSWD="$(mktemp)"
trap 'rm -f "$DB" "$PASSWD"' EXIT
command sqlite3 "$DB" "create table certificate (id integer primary key, site_id integer,
  type text, expires_at datetime, default_certificate integer, private_key text);
create table site (id integer primary key, type text, domain_name text unique,
  root_directory text, user text unique, certificate_id integer);
insert into certificate (id, site_id, type, expires_at, private_key) values
  (1, 1, '2', '2027-02-01 10:00:00', 'SECRET-KEY-MATERIAL'),
  (2, 2, '1', '2036-01-01 00:00:00', 'SECRET-KEY-MATERIAL'),
  (3, 3, '2', '2026-12-01 00:00:00', 'SECRET-KEY-MATERIAL');
insert into site (id, type, domain_name, root_directory, user, certificate_id) values
  (1, 'static', 'example.com', 'example.com', 'example_com', 1),
  (2, 'static', 'www.other.org', 'www.other.org', 'other_org', 2),
  (3, 'static', 'o''hara.com', 'o''hara.com', 'ohara_com', 3),
  (4, 'static', 'notexample.com', 'notexample.com', 'notexample_com', null),
  (5, 'static', 'taken.net', 'taken.net', 'fresh_com', null);
${server.extraSql ?? ""}" || exit 99
printf '%s\\n' 'root:x:0:0:root:/root:/bin/bash' \
  'example_com:x:1001:1001::/home/example_com:/bin/bash' \
  'orphan_com:x:1002:1002::/home/orphan_com:/bin/bash' \
  'fresh_com:x:1003:1003::/home/fresh_com:/bin/bash' \
  "o'hara_com:x:1004:1004::/home/o'hara_com:/bin/bash" > "$PASSWD"
${
    server.sqlite3 ?? `sqlite3() {
  if [ "$#" -ne 6 ] || [ "$1 $2 $3 $4 $5" != "-readonly -cmd .timeout 3000 -json ${INVENTORY_PATH}" ]; then
    echo "unexpected sqlite3 arguments: $*" >&2; return 2
  fi
  command sqlite3 -readonly -cmd '.timeout 3000' -json "$DB" "$6"
}`
  }
${
    server.getent ?? `getent() {
  [ "$1" = passwd ] || { echo "unexpected getent database $1" >&2; return 1; }
  shift; local status=0 key
  for key in "$@"; do
    awk -F: -v k="$key" '$1 == k { print; found = 1 } END { exit !found }' "$PASSWD" || status=2
  done
  return $status
}`
  }
${server.sudo ?? `sudo() { [ "$1" = -n ] || return 64; shift; "$@"; }`}
${command.line}
`;
  const output = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" })
    .output();
  assert.notEqual(output.code, 99, "the fixture database could not be built");
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

async function probe(
  domain: string,
  candidates: string[],
  server: ProbeServer = {},
  sshUser = "root",
): Promise<ServerState | HostingError> {
  return parseServerState(await runProbe(serverState(domain, candidates, sshUser), server));
}

const EXAMPLE_ROW = {
  domain_name: "example.com",
  user: "example_com",
  root_directory: "example.com",
  certificate_type: 2,
  certificate_expires_at: "2027-02-01 10:00:00",
};

Deno.test("the probe finds an apex site with its Let's Encrypt certificate, and its user", async () => {
  assert.deepEqual(await probe("example.com", ["example_com", "example_com-2"]), {
    sites: [EXAMPLE_ROW],
    users: ["example_com"],
  });
});

Deno.test("the probe finds the apex site when asked for its www twin", async () => {
  assert.deepEqual(await probe("www.example.com", ["www_example_com"]), {
    sites: [EXAMPLE_ROW],
    users: [],
  });
});

Deno.test("the probe finds a www site when asked for the apex, with its self-signed certificate", async () => {
  assert.deepEqual(await probe("other.org", ["other_org-x"]), {
    sites: [{
      domain_name: "www.other.org",
      user: "other_org",
      root_directory: "www.other.org",
      certificate_type: 1,
      certificate_expires_at: "2036-01-01 00:00:00",
    }],
    users: [],
  });
});

Deno.test("the probe finds another site owned by a candidate user, and a site without a certificate", async () => {
  const state = await probe("fresh.com", ["fresh_com", "notexample_com"]);
  assert.ok(!(state instanceof HostingError));
  state.sites.sort((a, b) => a.domain_name.localeCompare(b.domain_name));
  assert.deepEqual(state, {
    sites: [
      {
        domain_name: "notexample.com",
        user: "notexample_com",
        root_directory: "notexample.com",
        certificate_type: null,
        certificate_expires_at: null,
      },
      {
        domain_name: "taken.net",
        user: "fresh_com",
        root_directory: "taken.net",
        certificate_type: null,
        certificate_expires_at: null,
      },
    ],
    users: ["fresh_com"],
  });
});

Deno.test("the probe of an unknown domain gives no rows; getent's 'some not found' is no failure", async () => {
  assert.deepEqual(await probe("absent.com", ["absent_com", "absent_com-2"]), {
    sites: [],
    users: [],
  });
});

Deno.test("the probe reports an orphan: a candidate user without a site", async () => {
  assert.deepEqual(await probe("orphan.com", ["orphan_com", "orphan_com-2"]), {
    sites: [],
    users: ["orphan_com"],
  });
});

Deno.test("the probe through sudo -n gives the same answer", async () => {
  assert.deepEqual(await probe("example.com", ["example_com"], {}, "deploy"), {
    sites: [EXAMPLE_ROW],
    users: ["example_com"],
  });
});

Deno.test("quotes survive SQL and the shell in the domain and in candidate names", async () => {
  assert.deepEqual(await probe("o'hara.com", ["o'hara_com"]), {
    sites: [{
      domain_name: "o'hara.com",
      user: "ohara_com",
      root_directory: "o'hara.com",
      certificate_type: 2,
      certificate_expires_at: "2026-12-01 00:00:00",
    }],
    users: ["o'hara_com"],
  });
});

Deno.test("hostile values in the domain and the candidates stay data in SQL and in the shell", async () => {
  const marker = `${await Deno.makeTempDir()}/INJECTED`;
  for (const value of HOSTILE_VALUES) {
    const hostile = [
      `${value}'); drop table site; --`,
      `x' or '1'='1${value}`,
    ];
    const hostileUser = `${value}$(touch ${marker})`;
    for (const domain of hostile) {
      assert.deepEqual(
        await probe(domain, [domain, hostileUser]),
        { sites: [], users: [] },
        JSON.stringify(domain),
      );
    }
  }
  await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
  // The table is still there and intact after all of it.
  const after = await probe("example.com", ["example_com"]);
  assert.ok(!(after instanceof HostingError));
  assert.equal(after.sites.length, 1);
});

Deno.test("the probe never reads the certificate's private key", async () => {
  const output = await runProbe(serverState("example.com", ["example_com"], "root"));
  assert.ok(!output.stdout.includes("SECRET-KEY-MATERIAL"), output.stdout);
});

Deno.test("a server without sqlite3 makes the inventory unavailable, not clpctl missing", async () => {
  const result = await probe("example.com", ["example_com"], {
    sqlite3: `sqlite3() { echo "bash: line 1: sqlite3: command not found" >&2; return 127; }`,
  });
  assert.ok(result instanceof HostingError);
  assert.equal(result.code, "INVENTORY_UNAVAILABLE");
  assert.equal(result.step, "site");
  assert.equal(
    result.message,
    "inventory failed (exit 127): bash: line 1: sqlite3: command not found",
  );
});

Deno.test("an inventory without the site table is unavailable", async () => {
  const result = await probe("example.com", ["example_com"], { extraSql: "drop table site;" });
  assert.ok(result instanceof HostingError);
  assert.equal(result.code, "INVENTORY_UNAVAILABLE");
  assert.match(result.message, /^inventory failed \(exit 1\): .*no such table: site/);
});

Deno.test("sudo refusing the probe is SUDO_REFUSED, whichever part it refuses", async () => {
  const refused = await probe("example.com", ["example_com"], {
    sudo: `sudo() { echo "sudo: a password is required" >&2; return 1; }`,
  }, "deploy");
  assert.ok(refused instanceof HostingError);
  assert.equal(refused.code, "SUDO_REFUSED");
  assert.equal(refused.message, "inventory failed (exit 1): sudo: a password is required");

  // A sudoers rule that allows sqlite3 but not getent.
  const passwdOnly = await probe("example.com", ["example_com"], {
    sudo: `sudo() {
  shift
  if [ "$1" = getent ]; then
    echo "Sorry, user deploy is not allowed to execute '/usr/bin/getent passwd example_com' as root on cp." >&2
    return 1
  fi
  "$@"
}`,
  }, "deploy");
  assert.ok(passwdOnly instanceof HostingError);
  assert.equal(passwdOnly.code, "SUDO_REFUSED");
  assert.ok(passwdOnly.message.startsWith("passwd failed (exit 1): Sorry, user deploy"));
});

Deno.test("a server without getent makes the inventory unavailable", async () => {
  const result = await probe("example.com", ["example_com"], {
    getent: `getent() { echo "bash: getent: command not found" >&2; return 127; }`,
  });
  assert.ok(result instanceof HostingError);
  assert.equal(result.code, "INVENTORY_UNAVAILABLE");
  assert.equal(result.message, "passwd failed (exit 127): bash: getent: command not found");
});

// --- parseServerState on its own ---------------------------------------------------------------------

const marked = (inventory: string, inventoryCode: number, passwd: string, passwdCode: number) => ({
  code: 0,
  stdout: `${inventory}@@hosting-automator inventory ${inventoryCode}\n` +
    `${passwd}@@hosting-automator passwd ${passwdCode}\n`,
  stderr: "",
});

Deno.test("parseServerState reads no rows and no users as an empty server", () => {
  assert.deepEqual(parseServerState(marked("", 0, "", 2)), { sites: [], users: [] });
  assert.deepEqual(parseServerState(marked("\n", 0, "\n", 2)), { sites: [], users: [] });
});

Deno.test("parseServerState reads rows, a certificate type given as text, and every found user", () => {
  const rows = [
    { ...EXAMPLE_ROW, certificate_type: "2" },
    {
      domain_name: "www.example.com",
      user: "other",
      root_directory: "www.example.com",
      certificate_type: null,
      certificate_expires_at: null,
    },
  ];
  const passwd = "example_com:x:1001:1001::/home/example_com:/bin/bash\n" +
    "example_com-2:x:1002:1002::/home/example_com-2:/bin/bash\n";
  assert.deepEqual(parseServerState(marked(`${JSON.stringify(rows)}\n`, 0, passwd, 0)), {
    sites: [EXAMPLE_ROW, rows[1]],
    users: ["example_com", "example_com-2"],
  });
});

Deno.test("parseServerState refuses garbage, other shapes and rows missing a column", () => {
  for (
    const text of [
      "not json at all",
      '{"domain_name":"example.com","user":"u","root_directory":"r"}',
      '[{"domain_name":"example.com","user":"u"}]',
      '[{"domain_name":"example.com","user":7,"root_directory":"r"}]',
      "[null]",
      '"text"',
    ]
  ) {
    const result = parseServerState(marked(`${text}\n`, 0, "", 2));
    assert.ok(result instanceof HostingError, text);
    assert.equal(result.code, "INVENTORY_UNAVAILABLE", text);
    assert.equal(result.step, "site");
    assert.equal(result.message, `unexpected answer from the CloudPanel inventory: ${text}`);
  }
});

Deno.test("parseServerState keeps each part's own classification", () => {
  const unopened = parseServerState(marked(
    'Error: unable to open database "/home/clp/htdocs/app/data/db.sq3": unable to open ' +
      "database file\n",
    1,
    "",
    2,
  ));
  assert.ok(unopened instanceof HostingError);
  assert.equal(unopened.code, "INVENTORY_UNAVAILABLE");

  const refused = parseServerState(marked("", 0, "sudo: a password is required\n", 1));
  assert.ok(refused instanceof HostingError);
  assert.equal(refused.code, "SUDO_REFUSED");

  // getent failing otherwise (exit 1: bad arguments) is a failure, not "not found".
  const broken = parseServerState(marked("", 0, "", 1));
  assert.ok(broken instanceof HostingError);
  assert.equal(broken.code, "CLPCTL_FAILED");
  assert.equal(broken.message, "passwd failed (exit 1)");
});

Deno.test("a probe that ended before its markers is classified as a whole", () => {
  const killed = parseServerState({ code: null, signal: "SIGKILL", stdout: "[", stderr: "" });
  assert.ok(killed instanceof HostingError);
  assert.equal(killed.code, "CLPCTL_FAILED");
  assert.equal(killed.message, "server-state failed (ended by signal SIGKILL): [");

  const halfway = parseServerState({
    code: 255,
    stdout: "[]\n@@hosting-automator inventory 0\n",
    stderr: "",
  });
  assert.ok(halfway instanceof HostingError);
  assert.equal(halfway.code, "CLPCTL_FAILED");
  assert.ok(halfway.message.startsWith("server-state failed (exit 255)"), halfway.message);

  const noShell = parseServerState({
    code: 127,
    stdout: "",
    stderr: "bash: sqlite3: command not found\n",
  });
  assert.ok(noShell instanceof HostingError);
  assert.equal(noShell.code, "INVENTORY_UNAVAILABLE");
});

// --- classification, row by row (docs/cloudpanel.md#output-and-exit-codes) ----------------------

interface Row {
  verb: Verb;
  code: number | null;
  signal?: string;
  stdout?: string;
  stderr?: string;
  /** A success kind, or the error code of the failure. */
  expect:
    | "created"
    | "exists"
    | "certificate_installed"
    | "deleted"
    | "not_found"
    | "ok"
    | ErrorCode;
  why: string;
}

const PSL_CURL_6 = "cURL error 6: Could not resolve host: publicsuffix.org " +
  "(see https://curl.haxx.se/libcurl/c/libcurl-errors.html) for " +
  "https://publicsuffix.org/list/public_suffix_list.dat";
const PSL_CURL_28 = "cURL error 28: Operation timed out after 10000 milliseconds with 0 bytes " +
  "received (see https://curl.haxx.se/libcurl/c/libcurl-errors.html) for " +
  "https://publicsuffix.org/list/public_suffix_list.dat";
const challenge = (type: string, detail: string) =>
  `example.com: Domain could not be validated, error message: error type: ` +
  `urn:ietf:params:acme:error:${type}, error detail: ${detail}`;
const GUZZLE_429 = "An error occurred while requesting an order, error message: Client error: " +
  "`POST https://acme-v02.api.letsencrypt.org/acme/new-order` resulted in a " +
  "`429 Too Many Requests` response:\n";

const ROWS: Row[] = [
  // site:add:static
  {
    verb: "site:add:static",
    code: 0,
    stdout: "Site example.com has been added.\n",
    expect: "created",
    why: "the success text with exit 0 is a created site",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "Site example.com has been added.\n",
    expect: "CLPCTL_FAILED",
    why: "the success text without exit 0 is not success",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "domainName: This value already exists.\n",
    expect: "exists",
    why: "an existing domain is an existing site to adopt",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "domainName: This value already exists.\nsiteUser: This value already exists.\n",
    expect: "exists",
    why: "an existing domain followed by the siteUser line is still an existing site",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "siteUser: This value already exists.\n",
    expect: "SITE_USER_CONFLICT",
    why: "an existing site user alone is a conflict, not success",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "domainName: This value is not valid.\n",
    expect: "INVALID_INPUT",
    why: "an invalid domain line is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "siteUser: This value is not valid.\n",
    expect: "INVALID_INPUT",
    why: "an invalid site user line is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "siteUser: This value is too long. It should have 32 characters or less.\n",
    expect: "INVALID_INPUT",
    why: "a too long site user is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "siteUserPassword: This value is too short. It should have 8 characters or more.\n",
    expect: "INVALID_INPUT",
    why: "a short password is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: 'The "--siteUserPassword" option requires a value.\n',
    expect: "INVALID_INPUT",
    why: "an option without a value is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: 'The "--phpVersion" option does not exist.\n',
    expect: "INVALID_INPUT",
    why: "an unknown option is invalid input",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: `${PSL_CURL_6}\n`,
    expect: "CLOUDPANEL_NETWORK",
    why: "the Public Suffix List out of reach (cURL error 6) is a network failure",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: `${PSL_CURL_28}\n`,
    expect: "CLOUDPANEL_NETWORK",
    why: "the Public Suffix List timing out (cURL error 28) is a network failure",
  },
  {
    verb: "site:add:static",
    code: 127,
    stderr: "bash: line 1: clpctl: command not found\n",
    expect: "CLPCTL_NOT_FOUND",
    why: "exit 127 means clpctl is not installed",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: "sudo: clpctl: command not found\n",
    expect: "CLPCTL_NOT_FOUND",
    why: "sudo not finding clpctl means clpctl is not installed",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: "sudo: a password is required\n",
    expect: "SUDO_REFUSED",
    why: "sudo -n asking for a password is a refusal",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: "sudo: a terminal is required to read the password; either use the -S option to " +
      "read from standard input or configure an askpass helper\n",
    expect: "SUDO_REFUSED",
    why: "sudo wanting a terminal is a refusal",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: "deploy is not in the sudoers file.  This incident will be reported.\n",
    expect: "SUDO_REFUSED",
    why: "a user outside sudoers is refused",
  },
  {
    verb: "site:add:static",
    code: 1,
    stderr: "Sorry, user deploy is not allowed to execute '/usr/bin/clpctl site:add:static' " +
      "as root on cloudpanel.\n",
    expect: "SUDO_REFUSED",
    why: "a sudoers rule without clpctl is a refusal",
  },
  {
    verb: "site:add:static",
    code: null,
    signal: "SIGTERM",
    expect: "CLPCTL_FAILED",
    why: "a command ended by a signal failed",
  },
  {
    verb: "site:add:static",
    code: 1,
    stdout: "Something nobody expected.\n",
    expect: "CLPCTL_FAILED",
    why: "unknown output is a generic failure",
  },
  {
    verb: "site:add:static",
    code: 0,
    stdout: "Certificate installation was successful.\n",
    expect: "CLPCTL_FAILED",
    why: "another verb's success text is not success",
  },
  // lets-encrypt:install:certificate
  {
    verb: "lets-encrypt:install:certificate",
    code: 0,
    stdout: "Certificate installation was successful.\n",
    expect: "certificate_installed",
    why: "the success text with exit 0 is an installed certificate",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: "Certificate installation was successful.\n",
    expect: "CLPCTL_FAILED",
    why: "the success text without exit 0 is not success",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: challenge(
      "dns",
      "DNS problem: NXDOMAIN looking up A for example.com - check that a DNS record exists " +
        "for this domain",
    ),
    expect: "DNS_NOT_READY",
    why: "an ACME dns challenge failure means DNS is not ready",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: challenge(
      "unauthorized",
      "198.12.68.66: Invalid response from " +
        "http://example.com/.well-known/acme-challenge/Xq1b2C3d: 403",
    ),
    expect: "DNS_NOT_READY",
    why: "an ACME unauthorized challenge failure means DNS is not ready",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: challenge(
      "connection",
      "198.12.68.66: Fetching http://example.com/.well-known/acme-challenge/Xq1b2C3d: " +
        "Timeout during connect (likely firewall problem)",
    ),
    expect: "DNS_NOT_READY",
    why: "an ACME connection challenge failure means DNS is not ready",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: "example.com: Domain could not be validated, error message: " +
      "validation timed out after 60 seconds",
    expect: "DNS_NOT_READY",
    why: "a validation that timed out means DNS is not ready",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: `${challenge("dns", "NXDOMAIN")}, ${
      challenge("dns", "NXDOMAIN").replace("example.com:", "www.example.com:")
    }`,
    expect: "DNS_NOT_READY",
    why: "several failed domains joined with a comma mean DNS is not ready",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: `${GUZZLE_429}{\n  "type": "urn:ietf:params:acme:error:rateLimited",\n  ` +
      `"detail": "Error creating new order :: too many certificates (5) already issued (trunc...)`,
    expect: "RATE_LIMITED",
    why: "a 429 rateLimited answer to the order is a rate limit",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: `${GUZZLE_429}{"detail":"too many failed authorizations recently"}`,
    expect: "RATE_LIMITED",
    why: "too many failed authorizations is a rate limit",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: `${GUZZLE_429}<html><head><title>429 Too Many Requests</title></head>(truncated...)`,
    expect: "RATE_LIMITED",
    why: "a 429 Too Many Requests answer is a rate limit even when its body is cut before the type",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: "An error occurred while registering an account, error message: cURL error 28: " +
      "Operation timed out after 15001 milliseconds with 0 bytes received " +
      "(see https://curl.haxx.se/libcurl/c/libcurl-errors.html) for " +
      "https://acme-v02.api.letsencrypt.org/acme/new-acct",
    expect: "LETS_ENCRYPT_UNAVAILABLE",
    why: "an account registration timeout means Let's Encrypt is out of reach",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: "An error occurred while requesting an order, error message: cURL error 7: " +
      "Failed to connect to acme-v02.api.letsencrypt.org port 443: Connection refused",
    expect: "LETS_ENCRYPT_UNAVAILABLE",
    why: "an order that cannot reach Let's Encrypt is unavailability, not a rate limit",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: 'Site "example.com" does not exist.\n',
    expect: "SITE_MISSING",
    why: "a certificate for a site CloudPanel does not know means the site is missing",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: `${PSL_CURL_6}\n`,
    expect: "CLOUDPANEL_NETWORK",
    why: "the Public Suffix List out of reach is a network failure for certificates too",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stderr: "sudo: a password is required\n",
    expect: "SUDO_REFUSED",
    why: "sudo asking for a password is a refusal for certificates too",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: null,
    signal: "SIGKILL",
    expect: "CLPCTL_FAILED",
    why: "a certificate command ended by a signal failed",
  },
  {
    verb: "lets-encrypt:install:certificate",
    code: 1,
    stdout: "Something nobody expected.\n",
    expect: "CLPCTL_FAILED",
    why: "unknown output is a generic failure",
  },
  // site:delete
  {
    verb: "site:delete",
    code: 0,
    stdout: "Site example.com has been deleted.\n",
    expect: "deleted",
    why: "the delete success text with exit 0 is a deleted site",
  },
  {
    verb: "site:delete",
    code: 1,
    stdout: 'Site "example.com" does not exist.\n',
    expect: "not_found",
    why: "deleting a site that does not exist finds it already gone",
  },
  {
    verb: "site:delete",
    code: 1,
    stdout: "Something nobody expected.\n",
    expect: "CLPCTL_FAILED",
    why: "unknown output is a generic failure",
  },
  // read-only checks
  {
    verb: "inventory",
    code: 0,
    stdout: "[]\n",
    expect: "ok",
    why: "sqlite3 exiting 0 is a readable inventory",
  },
  {
    verb: "inventory",
    code: 1,
    stderr: 'Error: unable to open database "/home/clp/htdocs/app/data/db.sq3": ' +
      "unable to open database file\n",
    expect: "INVENTORY_UNAVAILABLE",
    why: "a database sqlite3 cannot open makes the inventory unavailable",
  },
  {
    verb: "inventory",
    code: 1,
    stderr: "Parse error: no such table: site\n",
    expect: "INVENTORY_UNAVAILABLE",
    why: "a database without the site table makes the inventory unavailable",
  },
  {
    verb: "inventory",
    code: 127,
    stderr: "bash: line 1: sqlite3: command not found\n",
    expect: "INVENTORY_UNAVAILABLE",
    why:
      "a server without sqlite3 has no readable inventory (clpctl itself is not what is missing)",
  },
  {
    verb: "passwd",
    code: 0,
    stdout: "example_com:x:1001:1001::/home/example_com:/bin/bash\n",
    expect: "ok",
    why: "getent exiting 0 found every user",
  },
  {
    verb: "passwd",
    code: 127,
    stderr: "bash: line 1: getent: command not found\n",
    expect: "INVENTORY_UNAVAILABLE",
    why: "a server without getent cannot say which users exist",
  },
  {
    verb: "server-state",
    code: 127,
    stderr: "bash: line 1: sqlite3: command not found\n",
    expect: "INVENTORY_UNAVAILABLE",
    why: "a probe whose tool is missing makes the inventory unavailable",
  },
  {
    verb: "doc-root-check",
    code: 127,
    stderr: "bash: line 1: test: command not found\n",
    expect: "CLPCTL_NOT_FOUND",
    why: "a missing program outside the inventory counts as the CloudPanel tooling missing",
  },
  {
    verb: "doc-root-check",
    code: 255,
    expect: "CLPCTL_FAILED",
    why: "exit 255 is not a missing document root",
  },
  {
    verb: "doc-root-check",
    code: 0,
    expect: "ok",
    why: "test -d exiting 0 finds the document root",
  },
  {
    verb: "doc-root-check",
    code: 1,
    expect: "DOC_ROOT_MISSING",
    why: "test -d exiting 1 misses the document root",
  },
  {
    verb: "doc-root-check",
    code: 1,
    stderr: "sudo: a password is required\n",
    expect: "SUDO_REFUSED",
    why: "sudo asking for a password is not a missing document root",
  },
];

const STEP: Record<Verb, Step> = {
  "site:add:static": "site",
  "lets-encrypt:install:certificate": "certificate",
  "site:delete": "site",
  "server-state": "site",
  inventory: "site",
  passwd: "site",
  "doc-root-check": "site",
};

const SUCCESS_KINDS = new Set([
  "created",
  "exists",
  "certificate_installed",
  "deleted",
  "not_found",
  "ok",
]);

for (const row of ROWS) {
  const ended = row.code === null ? `signal ${row.signal}` : `exit ${row.code}`;
  const output = JSON.stringify((row.stdout ?? row.stderr ?? "").split("\n")[0].slice(0, 60));
  Deno.test(`${row.verb}: ${row.why} (${ended}, ${output} → ${row.expect})`, () => {
    const result: ExecResult = {
      code: row.code,
      signal: row.signal ?? null,
      stdout: row.stdout ?? "",
      stderr: row.stderr ?? "",
    };
    const outcome = classify(row.verb, result);
    if (SUCCESS_KINDS.has(row.expect)) {
      assert.deepEqual(outcome, { kind: row.expect });
      return;
    }
    assert.equal(outcome.kind, "failed");
    if (outcome.kind !== "failed") return;
    assert.equal(outcome.error.code, row.expect);
    assert.equal(outcome.error.step, STEP[row.verb]);
    assert.ok(outcome.error.message.startsWith(`${row.verb} failed (`), outcome.error.message);
  });
}

Deno.test("the same output always gives the same outcome", () => {
  for (const row of ROWS) {
    const result: ExecResult = {
      code: row.code,
      signal: row.signal ?? null,
      stdout: row.stdout ?? "",
      stderr: row.stderr ?? "",
    };
    assert.deepEqual(classify(row.verb, result), classify(row.verb, result));
  }
});

Deno.test("a permanent CloudPanel failure is not retried and a transient one is", () => {
  const conflict = classify("site:add:static", {
    code: 1,
    stdout: "siteUser: This value already exists.\n",
    stderr: "",
  });
  assert.equal(conflict.kind === "failed" && conflict.error.retryable, false);
  const dns = classify("lets-encrypt:install:certificate", {
    code: 1,
    stdout: challenge("dns", "NXDOMAIN"),
    stderr: "",
  });
  assert.equal(dns.kind === "failed" && dns.error.retryable, true);
});

Deno.test("a failure message names the verb, the exit code and the first output lines", () => {
  const outcome = classify("site:add:static", {
    code: 1,
    stdout: "domainName: This value is not valid.\n\nsiteUser: This value is not valid.\n",
    stderr: "a warning on stderr\n",
  });
  assert.equal(outcome.kind, "failed");
  if (outcome.kind !== "failed") return;
  assert.equal(
    outcome.error.message,
    "site:add:static failed (exit 1): domainName: This value is not valid. | " +
      "siteUser: This value is not valid. | a warning on stderr",
  );
});

Deno.test("a failure message keeps at most six output lines", () => {
  const stdout = Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join("\n");
  const outcome = classify("site:delete", { code: 3, stdout, stderr: "" });
  assert.equal(outcome.kind, "failed");
  if (outcome.kind !== "failed") return;
  assert.equal(
    outcome.error.message,
    "site:delete failed (exit 3): line 1 | line 2 | line 3 | line 4 | line 5 | line 6",
  );
});

Deno.test("a failure message says which signal ended the command, or that it is unknown", () => {
  const killed = classify("site:add:static", {
    code: null,
    signal: "SIGKILL",
    stdout: "",
    stderr: "",
  });
  assert.equal(
    killed.kind === "failed" && killed.error.message,
    "site:add:static failed (ended by signal SIGKILL)",
  );
  const unknown = classify("site:add:static", { code: null, stdout: "", stderr: "" });
  assert.equal(
    unknown.kind === "failed" && unknown.error.message,
    "site:add:static failed (ended by signal unknown)",
  );
});
