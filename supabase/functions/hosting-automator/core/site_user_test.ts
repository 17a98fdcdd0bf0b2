import assert from "node:assert/strict";
import { validateDomain } from "./domain.ts";
import {
  deriveSiteUser,
  generatePassword,
  PASSWORD_LENGTH,
  SITE_USER_PATTERN,
  siteUserCandidates,
} from "./site_user.ts";

/** CloudPanel's own rule, lower case because useradd wants it
 * (docs/cloudpanel.md#site-user-names). */
function cloudPanelAccepts(user: string): boolean {
  return /^[a-z][-a-z0-9_]+$/.test(user) && user.length >= 3 && user.length <= 32;
}

const SAMPLE_DOMAINS = [
  "example.com",
  "a.co",
  "my-site.example.co",
  "a-b.com",
  "www.example.com",
  "1password.com",
  "123.example.net",
  "9.example.org",
  "0-0.com",
  "xn--bcher-kva.de",
  "xn--80ak6aa92e.com",
  "shop.xn--mnchen-3ya.de",
  "a-very-long-subdomain-name.example-company.com", // 46 characters
  `${"x".repeat(63)}.com`,
  "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.example.com",
  `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.com`,
];

Deno.test("every derived site user satisfies CloudPanel's site user rule", () => {
  for (const domain of SAMPLE_DOMAINS) {
    assert.ok(validateDomain(domain).ok, `test input ${domain} must be a valid domain`);
    const user = deriveSiteUser(domain);
    assert.ok(cloudPanelAccepts(user), `${domain} -> ${user}`);
    assert.match(user, SITE_USER_PATTERN, `${domain} -> ${user}`);
  }
});

Deno.test("a short domain becomes its name with dots as underscores", () => {
  assert.equal(deriveSiteUser("example.com"), "example_com");
  assert.equal(deriveSiteUser("my-site.example.co"), "my-site_example_co");
  assert.equal(deriveSiteUser("xn--bcher-kva.de"), "xn--bcher-kva_de");
  assert.equal(deriveSiteUser("a.co"), "a_co");
});

Deno.test("a domain of exactly 32 characters keeps the readable form; 33 gets a hashed name", () => {
  const fits = `${"a".repeat(28)}.com`;
  assert.equal(fits.length, 32);
  assert.equal(deriveSiteUser(fits), `${"a".repeat(28)}_com`);

  const tooLong = `${"a".repeat(29)}.com`;
  const user = deriveSiteUser(tooLong);
  assert.match(user, /^a{21}-[0-9a-f]{10}$/);
  assert.equal(user.length, 32);
});

Deno.test("a long domain gets a readable prefix and ten hex digits, never over 32 characters", () => {
  // The readable part is cut to 21 characters; the hash is SHA-256 of the domain (sha256sum).
  const user = deriveSiteUser("a-very-long-subdomain-name.example-company.com");
  assert.equal(user, "a-very-long-subdomain-6ddf5a6a4e");
  assert.equal(user.length, 32);
  // A cut that ends on a hyphen drops it rather than doubling it before the hash.
  assert.match(
    deriveSiteUser("abcdefghijklmnopqrst-uvw.example.com"),
    /^abcdefghijklmnopqrst-[0-9a-f]{10}$/,
  );
});

Deno.test("a domain starting with a digit gets a name starting with a letter", () => {
  assert.equal(deriveSiteUser("1password.com"), "password-com-203dd412c0");
  assert.match(deriveSiteUser("123.example.net"), /^example-net-[0-9a-f]{10}$/);
  assert.equal(deriveSiteUser("0-0.com"), "com-3612673683");
});

Deno.test("the same domain always gives the same site user", () => {
  for (const domain of SAMPLE_DOMAINS) {
    assert.equal(deriveSiteUser(domain), deriveSiteUser(domain), domain);
  }
  // Fixed values: a change of the derivation would orphan every site provisioned before it.
  assert.equal(deriveSiteUser("example.com"), "example_com");
  assert.equal(
    deriveSiteUser("a-very-long-subdomain-name.example-company.com"),
    "a-very-long-subdomain-6ddf5a6a4e",
  );
});

Deno.test("domains that differ only in where the dot and the hyphen sit get distinct users", () => {
  // "a.b-com" has no valid TLD, but the derivation itself must still keep the two apart.
  assert.notEqual(deriveSiteUser("a-b.com"), deriveSiteUser("a.b-com"));
  assert.notEqual(deriveSiteUser("a-b.c.com"), deriveSiteUser("a.b-c.com"));
  assert.notEqual(deriveSiteUser("ab.c.com"), deriveSiteUser("a.bc.com"));
});

Deno.test("long domains sharing a long prefix get distinct users", () => {
  const prefix = "the-same-long-prefix-for-every-one-of-them";
  const users = new Set<string>();
  for (let i = 0; i < 200; i++) users.add(deriveSiteUser(`${prefix}-${i}.example.com`));
  assert.equal(users.size, 200);
  // A long domain and a short one whose readable form equals the long one's prefix stay apart.
  assert.notEqual(
    deriveSiteUser(`${prefix}.example.com`),
    deriveSiteUser(`${prefix}.example.org`),
  );
});

Deno.test("a generated set of several thousand valid domains gives as many distinct valid users", () => {
  const words = ["shop", "my-site", "a", "xn--bcher-kva", "blog", "1st", "web-2", "x"];
  const tlds = ["com", "de", "co", "org", "abcdefghijklmn"];
  const domains = new Set<string>();
  for (let i = 0; i < 4_000; i++) {
    const word = words[i % words.length];
    const tld = tlds[Math.floor(i / words.length) % tlds.length];
    const filler = "z".repeat(i % 40); // short and long names, both forms of user
    domains.add(`${word}${i}${filler}.${i % 3 === 0 ? "sub." : ""}example.${tld}`);
    domains.add(`${i}.${word}.${tld}`); // starts with a digit
  }
  const users = new Map<string, string>();
  for (const domain of domains) {
    assert.ok(validateDomain(domain).ok, domain);
    const user = deriveSiteUser(domain);
    assert.ok(cloudPanelAccepts(user), `${domain} -> ${user}`);
    const earlier = users.get(user);
    assert.equal(earlier, undefined, `${domain} and ${earlier} both give ${user}`);
    users.set(user, domain);
  }
  assert.ok(users.size >= 7_000, `only ${users.size} domains generated`);
});

// --- candidates after orphans ----------------------------------------------------------------------

Deno.test("the first candidate is the derived site user, for every sample domain", () => {
  for (const domain of SAMPLE_DOMAINS) {
    assert.deepEqual(siteUserCandidates(domain, 1), [deriveSiteUser(domain)], domain);
  }
});

Deno.test("later candidates of a short domain are its first form with -2, -3, …", () => {
  assert.deepEqual(siteUserCandidates("example.com", 5), [
    "example_com",
    "example_com-2",
    "example_com-3",
    "example_com-4",
    "example_com-5",
  ]);
});

Deno.test("a candidate whose suffix would pass 32 characters is the hashed form of domain#k", () => {
  // 30 characters: "-2" still fits (32).
  const fits = `${"a".repeat(26)}.com`;
  assert.deepEqual(siteUserCandidates(fits, 2), [
    `${"a".repeat(26)}_com`,
    `${"a".repeat(26)}_com-2`,
  ]);
  // 31 characters: "-2" would make 33, so the hash of "<domain>#2" (sha256sum) is used.
  const tight = `${"a".repeat(27)}.com`;
  assert.deepEqual(siteUserCandidates(tight, 2), [
    `${"a".repeat(27)}_com`,
    `${"a".repeat(21)}-9bd9fc635d`,
  ]);
});

Deno.test("a long or digit-first domain gets hashed candidates of domain#k", () => {
  assert.deepEqual(siteUserCandidates("a-very-long-subdomain-name.example-company.com", 2), [
    "a-very-long-subdomain-6ddf5a6a4e",
    "a-very-long-subdomain-ae7b99bf70",
  ]);
  assert.deepEqual(siteUserCandidates("1password.com", 2), [
    "password-com-203dd412c0",
    "password-com-b584a6703a",
  ]);
});

Deno.test("a run asks for exactly as many candidates as it needs, the same ones every time", () => {
  assert.deepEqual(siteUserCandidates("example.com", 0), []);
  for (const domain of SAMPLE_DOMAINS) {
    const five = siteUserCandidates(domain, 5);
    assert.equal(five.length, 5, domain);
    assert.deepEqual(siteUserCandidates(domain, 5), five, domain);
    assert.deepEqual(siteUserCandidates(domain, 3), five.slice(0, 3), domain);
  }
});

Deno.test("every candidate is valid, at most 32 characters, and distinct across all domains", () => {
  const domains = new Set<string>(SAMPLE_DOMAINS);
  for (let i = 0; i < 1_500; i++) {
    const filler = "q".repeat(i % 32); // both sides of the 32-character limit
    domains.add(`site${i}${filler}.example.${["com", "de", "org"][i % 3]}`);
    domains.add(`${i}.shop.de`);
  }
  const owner = new Map<string, string>();
  for (const domain of domains) {
    assert.ok(validateDomain(domain).ok, domain);
    for (const user of siteUserCandidates(domain, 12)) {
      assert.ok(cloudPanelAccepts(user), `${domain} -> ${user}`);
      assert.match(user, SITE_USER_PATTERN, `${domain} -> ${user}`);
      const earlier = owner.get(user);
      assert.equal(earlier, undefined, `${domain} and ${earlier} both give ${user}`);
      owner.set(user, domain);
    }
  }
  assert.equal(owner.size, domains.size * 12);
});

// The safe alphabet (docs/cloudpanel.md#paths-and-callers): letters, digits and -_.@%+=.
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.@%+=";

/** A random source that hands out the given byte blocks in turn (zeros once they run out). */
function scripted(...blocks: number[][]): (bytes: Uint8Array) => Uint8Array {
  return (bytes) => {
    bytes.fill(0);
    bytes.set((blocks.shift() ?? []).slice(0, bytes.length));
    return bytes;
  };
}

Deno.test("a password has 24 characters from the safe alphabet only", () => {
  for (let i = 0; i < 200; i++) {
    const password = generatePassword();
    assert.equal(password.length, 24);
    assert.equal(PASSWORD_LENGTH, 24);
    assert.match(password, /^[A-Za-z0-9\-_.@%+=]{24}$/);
    assert.doesNotMatch(password, /[$`\\"'! ]/);
  }
});

Deno.test("a password byte picks the symbol at its index modulo 69", () => {
  const bytes = [0, 1, 25, 26, 51, 52, 61, 62, 68, 69, 138, 206];
  assert.equal(
    generatePassword(scripted(bytes)),
    "ABZaz09-=AA=" + "A".repeat(12),
  );
});

Deno.test("bytes from 207 up are skipped, so every symbol is equally likely", () => {
  // 207 = 3 × 69: bytes 0..206 cover each symbol exactly three times; 207..255 would favour some.
  const rejected = Array.from({ length: 48 }, (_, i) => 207 + i);
  assert.equal(generatePassword(scripted(rejected, [1, 2, 3])), "BCD" + "A".repeat(21));

  // Feed every byte value 0..255 once, 24 at a time, padded with rejected bytes; the symbols drawn
  // from each block come first in the password (the zeros of the next call only fill it up).
  const counts = new Map<string, number>();
  for (let start = 0; start < 256; start += 24) {
    const block = Array.from({ length: Math.min(24, 256 - start) }, (_, i) => start + i);
    const padded = [...block, ...Array(48 - block.length).fill(255)];
    const drawn = generatePassword(scripted(padded)).slice(0, block.filter((b) => b < 207).length);
    for (const symbol of drawn) counts.set(symbol, (counts.get(symbol) ?? 0) + 1);
  }
  assert.equal(counts.size, 69);
  for (const symbol of ALPHABET) assert.equal(counts.get(symbol), 3, symbol);
});

Deno.test("a source that keeps giving rejected bytes is asked again until 24 symbols are drawn", () => {
  let calls = 0;
  const source = (bytes: Uint8Array) => {
    calls++;
    bytes.fill(calls < 4 ? 255 : 7);
    return bytes;
  };
  assert.equal(generatePassword(source), "H".repeat(24));
  assert.equal(calls, 4);
});

Deno.test("two passwords are never the same", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2_000; i++) seen.add(generatePassword());
  assert.equal(seen.size, 2_000);
});
