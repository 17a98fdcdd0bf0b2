import assert from "node:assert/strict";
import { validateDomain } from "./domain.ts";

/** The message of a refused input, failing the test if it was accepted. */
function refusal(input: unknown): string {
  const check = validateDomain(input);
  assert.equal(check.ok, false, `expected ${JSON.stringify(input)} to be refused`);
  if (check.ok) throw new Error("unreachable");
  assert.equal(check.error.code, "INVALID_DOMAIN");
  assert.equal(check.error.step, "site");
  assert.equal(check.error.retryable, false);
  assert.ok(check.error.message.startsWith("not a valid host name: "), check.error.message);
  return check.error.message;
}

// 63 + 63 + 63 + 57 characters of labels, four dots and "com": exactly 253 characters.
const LONGEST = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(57)}.com`;

Deno.test("ordinary host names are accepted unchanged", () => {
  for (
    const domain of [
      "example.com",
      "www.example.com",
      "my-site.example.co",
      "a1-b2.c3.example.org",
      "123.example.net", // an all-digit label that is not the TLD
      "xn--bcher-kva.de", // bücher.de as punycode
      "shop.xn--mnchen-3ya.de", // münchen as punycode, below the TLD
      "a.co",
      "a.b.c.d.e.f.g.h.example.com",
      `${"x".repeat(63)}.com`,
      "example.abcdefghijklmn", // a TLD of 14 letters, CloudPanel's maximum
      LONGEST,
    ]
  ) {
    assert.deepEqual(validateDomain(domain), { ok: true, domain }, domain);
  }
  assert.equal(LONGEST.length, 253);
});

Deno.test("a value that is not text is refused", () => {
  for (const input of [undefined, null, 42, {}, ["example.com"]]) {
    assert.equal(refusal(input), "not a valid host name: the domain is not text");
  }
});

Deno.test("an empty domain is refused", () => {
  assert.equal(refusal(""), "not a valid host name: the domain is empty");
});

Deno.test("surrounding spaces or a trailing newline are refused", () => {
  assert.equal(
    refusal(" example.com"),
    'not a valid host name: " example.com" has surrounding spaces',
  );
  assert.equal(
    refusal("example.com\n"),
    'not a valid host name: "example.com\\n" has surrounding spaces',
  );
});

Deno.test("spaces, control characters and unicode inside the name are refused", () => {
  for (const input of ["exa mple.com", "example.com\nb.com", "exa\tmple.com", "bücher.de"]) {
    assert.match(refusal(input), /has characters outside printable ASCII \(write IDNs as punycode/);
  }
});

Deno.test("upper case is refused", () => {
  assert.equal(refusal("Example.com"), 'not a valid host name: "Example.com" is not lower case');
});

Deno.test("shell injection attempts are refused before they can reach a command line", () => {
  for (
    const input of [
      "a;reboot.com",
      "$(reboot).example.com",
      "`reboot`.example.com",
      "a'b.example.com",
      'a"b.example.com',
      "a|b.com",
      "a&&b.com",
      "a>b.com",
      "a\\b.com",
      "*.example.com",
      "a_b.example.com",
    ]
  ) {
    assert.match(refusal(input), /may hold only a-z, 0-9 and inner hyphens$/, input);
  }
  // Newlines never get as far as the label check.
  assert.match(refusal("a.com\nreboot"), /outside printable ASCII/);
});

Deno.test("a label with a leading or trailing hyphen is refused", () => {
  assert.equal(
    refusal("-a.example.com"),
    'not a valid host name: "-a.example.com": label "-a" may hold only a-z, 0-9 and inner hyphens',
  );
  assert.match(refusal("a-.example.com"), /label "a-" may hold only/);
});

Deno.test("an empty label is refused", () => {
  assert.equal(refusal("a..com"), 'not a valid host name: "a..com" has an empty label');
  assert.equal(refusal(".example.com"), 'not a valid host name: ".example.com" has an empty label');
});

Deno.test("a trailing dot is refused", () => {
  assert.equal(refusal("example.com."), 'not a valid host name: "example.com." ends with a dot');
});

Deno.test("a label of 64 characters is refused", () => {
  assert.match(refusal(`${"x".repeat(64)}.com`), /has a label longer than 63 characters$/);
});

Deno.test("a name of 254 characters is refused, and its quote is shortened", () => {
  const tooLong = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(58)}.com`;
  assert.equal(tooLong.length, 254);
  const message = refusal(tooLong);
  assert.match(message, /is longer than 253 characters$/);
  assert.ok(message.includes(`"${"a".repeat(63)}.${"b".repeat(16)}…"`), message);
});

Deno.test("a single label is refused", () => {
  assert.equal(
    refusal("localhost"),
    'not a valid host name: "localhost" needs at least two labels (name.tld)',
  );
});

Deno.test("a TLD CloudPanel would refuse (numeric, one letter, 15 letters, punycode) is refused", () => {
  for (
    const input of [
      "example.123",
      "192.168.1.1",
      "example.c",
      "example.abcdefghijklmno",
      "a.xn--p1ai",
    ]
  ) {
    assert.match(
      refusal(input),
      /: CloudPanel accepts only a top-level domain of 2 to 14 letters$/,
      input,
    );
  }
});
