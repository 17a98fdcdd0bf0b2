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
  inventoryLookup,
  parseInventory,
  type RemoteCommand,
  shellQuote,
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
  assert.ok(
    inventoryLookup("example.com", user).line.startsWith(`sudo -n sqlite3 -readonly -json `),
  );
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

// --- inventory ------------------------------------------------------------------------------------

Deno.test("the inventory reads CloudPanel's database read-only, asking for the domain and its www twin", () => {
  const command = inventoryLookup("example.com", "root");
  assert.equal(command.verb, "inventory");
  assert.equal(INVENTORY_PATH, "/home/clp/htdocs/app/data/db.sq3");
  assert.equal(
    command.line,
    "sqlite3 -readonly -json /home/clp/htdocs/app/data/db.sq3 " +
      `'select domain_name, user, root_directory from site where domain_name in ` +
      `('\\''example.com'\\'', '\\''www.example.com'\\'')'`,
  );
  assert.equal(command.shown, command.line);
});

Deno.test("the inventory of a www domain asks for the apex as its twin", () => {
  assert.ok(
    inventoryLookup("www.example.com", "root").line.endsWith(
      `in ('\\''www.example.com'\\'', '\\''example.com'\\'')'`,
    ),
  );
});

/**
 * Runs the inventory line in bash against a real sqlite3 database holding CloudPanel's `site` table
 * (docs/cloudpanel.md#the-inventory), standing in for /home/clp/htdocs/app/data/db.sq3.
 */
async function runInventory(command: RemoteCommand): Promise<ExecResult> {
  const script = `
set -eu
DB="$(mktemp)"
trap 'rm -f "$DB"' EXIT
command sqlite3 "$DB" "create table site (id integer primary key, type text, domain_name text,
  root_directory text, user text);
insert into site (type, domain_name, root_directory, user) values
  ('static', 'example.com', 'example.com', 'example_com'),
  ('static', 'www.other.org', 'www.other.org', 'other_org'),
  ('static', 'o''hara.com', 'o''hara.com', 'ohara_com'),
  ('static', 'notexample.com', 'notexample.com', 'notexample_com');"
sqlite3() {
  if [ "$#" -ne 4 ] || [ "$1 $2 $3" != "-readonly -json ${INVENTORY_PATH}" ]; then
    echo "unexpected sqlite3 arguments: $*" >&2; return 2
  fi
  command sqlite3 -readonly -json "$DB" "$4"
}
${command.line}
`;
  const output = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" })
    .output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("the inventory query finds an apex site by its name and by its www twin", async () => {
  const expected = [{
    domain_name: "example.com",
    user: "example_com",
    root_directory: "example.com",
  }];
  assert.deepEqual(
    parseInventory(await runInventory(inventoryLookup("example.com", "root"))),
    expected,
  );
  assert.deepEqual(
    parseInventory(await runInventory(inventoryLookup("www.example.com", "root"))),
    expected,
  );
});

Deno.test("the inventory query finds a www site when asked for the apex", async () => {
  assert.deepEqual(parseInventory(await runInventory(inventoryLookup("other.org", "root"))), [
    { domain_name: "www.other.org", user: "other_org", root_directory: "www.other.org" },
  ]);
});

Deno.test("the inventory query gives no rows for an unknown domain, and quotes survive SQL", async () => {
  assert.deepEqual(parseInventory(await runInventory(inventoryLookup("absent.com", "root"))), []);
  assert.deepEqual(parseInventory(await runInventory(inventoryLookup("o'hara.com", "root"))), [
    { domain_name: "o'hara.com", user: "ohara_com", root_directory: "o'hara.com" },
  ]);
});

Deno.test("parseInventory reads no output as no rows", () => {
  assert.deepEqual(parseInventory({ code: 0, stdout: "", stderr: "" }), []);
  assert.deepEqual(parseInventory({ code: 0, stdout: "\n", stderr: "" }), []);
});

Deno.test("parseInventory reads sqlite3's JSON rows", () => {
  const rows = [
    { domain_name: "example.com", user: "example_com", root_directory: "example.com" },
    { domain_name: "www.example.com", user: "other", root_directory: "www.example.com" },
  ];
  assert.deepEqual(
    parseInventory({ code: 0, stdout: `${JSON.stringify(rows)}\n`, stderr: "" }),
    rows,
  );
});

Deno.test("parseInventory refuses garbage, other shapes and rows missing a column", () => {
  for (
    const stdout of [
      "not json at all",
      '{"domain_name":"example.com","user":"u","root_directory":"r"}',
      '[{"domain_name":"example.com","user":"u"}]',
      '[{"domain_name":"example.com","user":7,"root_directory":"r"}]',
      "[null]",
      '"text"',
    ]
  ) {
    const result = parseInventory({ code: 0, stdout, stderr: "" });
    assert.ok(result instanceof HostingError, stdout);
    assert.equal(result.code, "INVENTORY_UNAVAILABLE", stdout);
    assert.equal(result.step, "site");
    assert.equal(
      result.message,
      `unexpected answer from the CloudPanel inventory: ${stdout}`,
    );
  }
});

Deno.test("parseInventory passes on a failed sqlite3 call as its classified error", () => {
  const missing = parseInventory({
    code: 1,
    stdout: "",
    stderr: 'Error: unable to open database "/home/clp/htdocs/app/data/db.sq3": ' +
      "unable to open database file\n",
  });
  assert.ok(missing instanceof HostingError);
  assert.equal(missing.code, "INVENTORY_UNAVAILABLE");

  const refused = parseInventory({ code: 1, stdout: "", stderr: "sudo: a password is required\n" });
  assert.ok(refused instanceof HostingError);
  assert.equal(refused.code, "SUDO_REFUSED");
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
  inventory: "site",
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
