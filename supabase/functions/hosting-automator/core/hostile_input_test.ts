// Property: over generated hostile strings (control characters, quotes, $(), ;, spaces, Unicode,
// over-long labels, trailing dots), a domain either fails validation with INVALID_DOMAIN or is a
// plain host name; and whatever string reaches a command builder, bash hands it to the program as
// exactly one argument — never a second command.

import assert from "node:assert/strict";
import {
  addStaticSite,
  deleteSite,
  docRootCheck,
  installCertificate,
  type RemoteCommand,
  serverState,
} from "./cloudpanel.ts";
import { validateDomain } from "./domain.ts";

/** mulberry32: a small seeded generator, so a failure can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PIECES = [
  "example",
  "com",
  ".",
  "..",
  "-",
  "www.",
  "xn--bcher-kva",
  "'",
  '"',
  "`",
  "$(",
  ")",
  "${IFS}",
  ";",
  "&&",
  "|",
  ">",
  "<",
  "*",
  "?",
  "~",
  "#",
  "!",
  "\\",
  " ",
  "\t",
  "\n",
  "\r",
  "\x00",
  "\x07",
  "\x1b[31m",
  "é",
  "日本",
  "🙂",
  "\u202e",
  "A",
  "x".repeat(64),
  "touch /tmp/pwned",
  "-rf",
  "--force",
  "=",
];

function hostile(next: () => number): string {
  let text = "";
  const parts = 1 + Math.floor(next() * 8);
  for (let i = 0; i < parts; i++) text += PIECES[Math.floor(next() * PIECES.length)];
  return text;
}

/**
 * Runs the command lines in bash with every program replaced by a stub that prints its arguments
 * NUL-separated, one record per call; returns each call's argv.
 */
async function argvs(lines: string[]): Promise<string[][]> {
  const stub = `printf '%s\\0' "$@"; printf '\\36'`;
  const script = [
    ...["clpctl", "sqlite3", "getent", "test", "sudo"].map((p) => `${p}() { ${stub}; }`),
    ...lines,
  ].join("\n");
  const output = await new Deno.Command("bash", { args: ["-c", script], stdout: "piped" })
    .output();
  // The server read's part markers are its own output, not a program's arguments.
  const text = new TextDecoder().decode(output.stdout).replace(
    /\n?@@hosting-automator \w+ \d+\n/g,
    "",
  );
  return text.split("\x1e").filter((r) => r !== "").map((r) => r.split("\0").slice(0, -1));
}

const NUL_FREE = (s: string) => s.replaceAll("\0", "");

Deno.test("hostile domains fail validation with INVALID_DOMAIN, or are plain host names", () => {
  const next = random(20261201);
  for (let i = 0; i < 2_000; i++) {
    const input = hostile(next);
    const check = validateDomain(input);
    if (check.ok) {
      assert.match(
        check.domain,
        /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/,
      );
      assert.equal(check.domain, input);
    } else {
      assert.equal(check.error.code, "INVALID_DOMAIN", JSON.stringify(input));
    }
  }
});

Deno.test("whatever string reaches a builder, the program gets it as exactly one argument", async () => {
  const next = random(7);
  for (let i = 0; i < 150; i++) {
    // bash cannot pass a NUL in an argument at all; everything else must arrive unchanged.
    const value = NUL_FREE(hostile(next));
    if (value === "") continue;
    const commands: RemoteCommand[] = [
      addStaticSite(value, value, value, "root"),
      installCertificate(value, "deploy"),
      deleteSite(value, "root"),
      docRootCheck(`/home/u/htdocs/${value}`, "root"),
    ];
    const calls = await argvs(commands.map((c) => c.line));
    assert.deepEqual(calls, [
      [
        "site:add:static",
        `--domainName=${value}`,
        `--siteUser=${value}`,
        `--siteUserPassword=${value}`,
      ],
      ["-n", "clpctl", "lets-encrypt:install:certificate", `--domainName=${value}`],
      ["site:delete", `--domainName=${value}`, "--force"],
      ["-d", `/home/u/htdocs/${value}`],
    ], JSON.stringify(value));
  }
});

Deno.test("the server read passes a hostile value as one SQL literal and one getent argument", async () => {
  const next = random(99);
  for (let i = 0; i < 100; i++) {
    const value = NUL_FREE(hostile(next));
    if (value === "") continue;
    const [inventory, passwd] = await argvs([serverState(value, [value], "root").line]);
    assert.equal(inventory.length, 6, JSON.stringify({ value, inventory }));
    assert.deepEqual(inventory.slice(0, 5), [
      "-readonly",
      "-cmd",
      ".timeout 3000",
      "-json",
      "/home/clp/htdocs/app/data/db.sq3",
    ]);
    // Inside the SQL the value is a single-quoted literal with its quotes doubled.
    const literal = `'${value.replaceAll("'", "''")}'`;
    assert.ok(
      inventory[5].includes(`in (${literal}, `),
      JSON.stringify({ value, sql: inventory[5] }),
    );
    assert.deepEqual(passwd, ["passwd", value]);
  }
});
