import assert from "node:assert/strict";
import {
  cleanSiteUrls,
  isLookLikeUrl,
  lookupCandidates,
  type NewSite,
  phpUrlDecode,
  removeTrailingSlash,
  SiteStore,
} from "./sites.ts";

function site(name: string, urls: string[]): NewSite {
  return {
    name,
    main_url: urls[0] ?? "",
    alias_urls: urls.slice(1),
    ts_created: "2025-01-01 00:00:00",
    ecommerce: 0,
    sitesearch: 1,
    sitesearch_keyword_parameters: "",
    sitesearch_category_parameters: "",
    timezone: "UTC",
    currency: "USD",
    exclude_unknown_urls: 0,
    excluded_ips: "",
    excluded_parameters: "",
    excluded_user_agents: "",
    excluded_referrers: "",
    group: "",
    type: "website",
    keep_url_fragment: 0,
    creator_login: "admin",
  };
}

Deno.test("removeTrailingSlash strips one slash, only from URLs longer than 5 characters", () => {
  assert.equal(removeTrailingSlash("https://a.example/"), "https://a.example");
  assert.equal(removeTrailingSlash("https://a.example//"), "https://a.example/");
  assert.equal(removeTrailingSlash("abcd/"), "abcd/");
});

Deno.test("phpUrlDecode decodes + and %XX, leaves malformed escapes", () => {
  assert.equal(phpUrlDecode("a+b%20c%zz%C3%A9"), "a b c%zzé");
});

Deno.test("cleanSiteUrls drops empties, prepends http:// unless it starts with http, dedupes", () => {
  assert.deepEqual(
    cleanSiteUrls(["", "0", "https://a.example/", "a.example", "https://a.example", "not a url"]),
    ["https://a.example", "http://a.example", "http://not a url"],
  );
});

Deno.test("isLookLikeUrl wants //host, and refuses javascript:, vbscript: and data:", () => {
  const urls = ["http://not a url", "//cdn.example"];
  for (const url of [...urls, "https:/broken", "http://", "javascript://x"]) {
    assert.equal(isLookLikeUrl(url), urls.includes(url), url);
  }
});

Deno.test("lookupCandidates are the five spellings Matomo 5 tries", () => {
  assert.deepEqual(lookupCandidates("https://www.example.com/"), [
    "https://www.example.com",
    "http://example.com",
    "http://www.example.com",
    "https://example.com",
    "https://www.example.com",
  ]);
  assert.deepEqual(lookupCandidates("example.com/blog").slice(1, 2), ["http://example.com/blog"]);
});

Deno.test("SiteStore finds by main or alias URL, case-insensitively, in id order", () => {
  const store = new SiteStore();
  store.add(site("a", ["https://a.example"]));
  store.add(site("b", ["https://b.example", "http://www.a.example"]));
  store.add(site("c", ["https://c.example"]));
  assert.deepEqual(store.findIdsByUrl("A.EXAMPLE"), [1, 2]);
  assert.deepEqual(store.findIdsByUrl("https://a.example/blog"), []);
});

Deno.test("SiteStore keeps ids and sites in its file; clear starts again at 1", () => {
  const dir = Deno.makeTempDirSync({ prefix: "matomo-sites-" });
  try {
    const file = `${dir}/sites.json`;
    const first = new SiteStore(file);
    assert.equal(first.add(site("a", ["https://a.example"])), 1);
    const second = new SiteStore(file);
    assert.equal(second.get(1)?.name, "a");
    assert.equal(second.add(site("b", [])), 2);
    second.clear();
    assert.equal(new SiteStore(file).add(site("c", [])), 1);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("SiteStore refuses a file that is not a sites file", () => {
  const dir = Deno.makeTempDirSync({ prefix: "matomo-sites-" });
  try {
    Deno.writeTextFileSync(`${dir}/sites.json`, '{"hello":1}');
    assert.throws(() => new SiteStore(`${dir}/sites.json`), /is not a sites file/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
