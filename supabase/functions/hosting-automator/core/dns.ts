// Does the domain point at the server yet? The names a certificate covers, the DNS-over-HTTPS
// queries for them, reading an answer, and the verdict. No I/O: adapters/dns.ts sends the queries.

export type RecordType = "A" | "AAAA";

/** One DoH JSON query (RFC 8484's JSON flavour, as Cloudflare and Google serve it). */
export interface DnsQuery {
  name: string;
  type: RecordType;
  url: string;
}

/** What one query told: the addresses (none for NXDOMAIN or no record), or that it could not. */
export type Lookup = { ok: true; addresses: string[] } | { ok: false; reason: string };

export type Verdict = { ready: true; message: string } | { ready: false; message: string };

// Two-label public suffixes under which a three-label name is an apex. CloudPanel decides with the
// Public Suffix List; the product has none, so the common ones are named and any other name of
// three or more labels (without www.) counts as a subdomain: only itself is checked.
const TWO_LABEL_SUFFIXES = new Set([
  "co.uk",
  "org.uk",
  "me.uk",
  "ac.uk",
  "com.au",
  "net.au",
  "org.au",
  "co.nz",
  "co.za",
  "co.jp",
  "com.br",
  "com.mx",
  "com.tr",
  "co.in",
  "co.il",
  "com.cn",
]);

function isApex(domain: string): boolean {
  const labels = domain.split(".");
  if (labels.length === 2) return true;
  return labels.length === 3 && TWO_LABEL_SUFFIXES.has(labels.slice(1).join("."));
}

/** The names CloudPanel's Let's Encrypt command asks for (docs/cloudpanel.md#lets-encrypt): an
 * apex or `www.` domain → both names, the domain first; any other subdomain → itself only. */
export function certificateNames(domain: string): string[] {
  if (domain.startsWith("www.") && isApex(domain.slice(4))) return [domain, domain.slice(4)];
  if (isApex(domain)) return [domain, `www.${domain}`];
  return [domain];
}

/** A and AAAA for every name the certificate covers, against the resolver's JSON endpoint. */
export function dnsQueries(domain: string, resolverUrl: string): DnsQuery[] {
  return certificateNames(domain).flatMap((name) =>
    (["A", "AAAA"] as const).map((type) => {
      const url = new URL(resolverUrl);
      url.searchParams.set("name", name);
      url.searchParams.set("type", type);
      return { name, type, url: url.toString() };
    })
  );
}

const TYPE_NUMBER: Record<RecordType, number> = { A: 1, AAAA: 28 };

/** Reads one DoH answer: Status 0 → the records of the asked type (CNAME steps are left out),
 * Status 3 (NXDOMAIN) → none; anything else (SERVFAIL, a bad body) → the resolver could not tell. */
export function readAnswer(type: RecordType, status: number, body: string): Lookup {
  if (status < 200 || status > 299) return { ok: false, reason: `HTTP ${status}` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return { ok: false, reason: "not a JSON answer" };
  }
  if (typeof parsed !== "object" || parsed === null) {
    return { ok: false, reason: "not a DNS JSON answer" };
  }
  const { Status, Answer } = parsed as { Status?: unknown; Answer?: unknown };
  if (Status === 3) return { ok: true, addresses: [] };
  if (Status !== 0) {
    return { ok: false, reason: typeof Status === "number" ? `DNS status ${Status}` : "no Status" };
  }
  if (Answer === undefined) return { ok: true, addresses: [] };
  if (!Array.isArray(Answer)) return { ok: false, reason: "Answer is not a list" };
  const addresses: string[] = [];
  for (const record of Answer) {
    const { type: number, data } = (record ?? {}) as { type?: unknown; data?: unknown };
    if (number !== TYPE_NUMBER[type]) continue;
    if (typeof data !== "string") return { ok: false, reason: "a record without data" };
    addresses.push(data);
  }
  return { ok: true, addresses };
}

/** An address in one spelling: IPv4 as it is, IPv6 expanded and lower case ("::1" = "0:…:1"). */
export function normalizeAddress(address: string): string {
  const text = address.trim().toLowerCase();
  if (!text.includes(":")) return text;
  const [head, tail] = text.includes("::") ? text.split("::") : [text, undefined];
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined
    ? left
    : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"), ...right];
  return groups.map((group) => group.replace(/^0+(?=.)/, "")).join(":");
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** An IPv4 or IPv6 address as written in a setting (no brackets, no zone). */
export function isIpAddress(text: string): boolean {
  if (IPV4.test(text)) return true;
  if (!/^[0-9a-fA-F:]+$/.test(text) || !text.includes(":")) return false;
  const halves = text.split("::");
  if (halves.length > 2) return false;
  const groups = halves.flatMap((half) => (half === "" ? [] : half.split(":")));
  if (groups.some((group) => !/^[0-9a-fA-F]{1,4}$/.test(group))) return false;
  return halves.length === 2 ? groups.length < 8 : groups.length === 8;
}

/** Ready when every name has an A or AAAA record and every record is one of the server's
 * addresses; otherwise not ready, naming what each name points at. */
export function dnsVerdict(seen: Record<string, string[]>, serverAddresses: string[]): Verdict {
  const ours = new Set(serverAddresses.map(normalizeAddress));
  const names = Object.keys(seen);
  const wrong = names.filter((name) =>
    seen[name].length === 0 || seen[name].some((a) => !ours.has(normalizeAddress(a)))
  );
  const shown = (name: string) =>
    `${name} → ${seen[name].length === 0 ? "no A/AAAA record" : seen[name].join(", ")}`;
  if (wrong.length === 0) {
    return { ready: true, message: `${names.map(shown).join("; ")}: this server` };
  }
  return {
    ready: false,
    message: `not pointing at this server (${serverAddresses.join(", ")}) yet: ` +
      `${wrong.map(shown).join("; ")}; Let's Encrypt was not asked`,
  };
}
