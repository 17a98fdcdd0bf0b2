// Matomo stand-in, part 3 of 4: the websites table, with its URL rules.
//
// Replaces: Matomo's `site` and `site_url` tables and the URL handling of
// plugins/SitesManager/API.php (cleanParameterUrls, removeTrailingSlash, getNormalizedUrls) and
// core/UrlHelper.php::isLookLikeUrl. Follows: docs/matomo.md#sitesmanager-calls (URL cleaning:
// urldecode, trailing `/` removed, `http://` prepended unless the URL starts with `http`,
// de-duplicated; the first URL is main_url, the rest are aliases; no de-duplication of sites;
// lookup candidates `[url, http://host, http://www.host, https://host, https://www.host]` against
// main and alias URLs; paths kept), with the observed rows (case does not matter: MySQL's
// *_general_ci collation compares case-insensitively). Differs: sites live in one JSON file, written whole after
// each change; the accent folding and trailing-space padding of that collation are not modelled;
// site names and URLs are kept raw rather than HTML-escaped (the JSON renderer decodes them anyway).

/** One row of Matomo's `site` table, plus the alias URLs (table site_url). */
export interface SiteRecord {
  idsite: number;
  name: string;
  main_url: string;
  alias_urls: string[];
  ts_created: string;
  ecommerce: number;
  sitesearch: number;
  sitesearch_keyword_parameters: string;
  sitesearch_category_parameters: string;
  timezone: string;
  currency: string;
  exclude_unknown_urls: number;
  excluded_ips: string;
  excluded_parameters: string;
  excluded_user_agents: string;
  excluded_referrers: string;
  group: string;
  type: string;
  keep_url_fragment: number;
  creator_login: string;
}

export type NewSite = Omit<SiteRecord, "idsite">;

interface StoredState {
  nextIdSite: number;
  sites: SiteRecord[];
}

/** PHP urldecode: `+` is a space, `%XX` a byte; malformed escapes stay as they are. */
export function phpUrlDecode(text: string): string {
  const bytes: number[] = [];
  const encoder = new TextEncoder();
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === "+") {
      bytes.push(0x20);
    } else if (ch === "%" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...encoder.encode(ch));
    }
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** SitesManager removeTrailingSlash: only for URLs longer than 5 characters. */
export function removeTrailingSlash(url: string): string {
  return url.length > 5 && url.endsWith("/") ? url.slice(0, -1) : url;
}

/** UrlHelper::isLookLikeUrl (Matomo 5). */
export function isLookLikeUrl(url: string): boolean {
  const match = /^(([A-Za-z][A-Za-z0-9+.-]*)?:)?\/\/(.*)$/s.exec(url);
  return match !== null && match[3].length > 0 &&
    !/^(javascript:|vbscript:|data:)/i.test(match[1] ?? "");
}

/** SitesManager cleanParameterUrls: the URLs addSite stores, in the order given. */
export function cleanSiteUrls(urls: string[]): string[] {
  const cleaned: string[] = [];
  for (const raw of urls) {
    // array_filter drops "" and "0" (PHP falsy strings) before anything else.
    if (raw === "" || raw === "0") continue;
    let url = removeTrailingSlash(phpUrlDecode(raw));
    if (!url.startsWith("http")) url = "http://" + url;
    url = url.trim();
    if (!cleaned.includes(url)) cleaned.push(url);
  }
  return cleaned;
}

/** SitesManager getNormalizedUrls after removeTrailingSlash: every spelling that is looked up. */
export function lookupCandidates(url: string): string[] {
  const trimmed = removeTrailingSlash(url);
  const host = trimmed.replaceAll("www.", "").replaceAll("http://", "").replaceAll("https://", "");
  return [
    trimmed,
    `http://${host}`,
    `http://www.${host}`,
    `https://${host}`,
    `https://www.${host}`,
  ];
}

/** The collation's equality, as far as it is modelled: case-insensitive. */
function sameUrl(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** The sites of one stand-in, optionally kept in a JSON file so that a restart keeps them. */
export class SiteStore {
  #state: StoredState = { nextIdSite: 1, sites: [] };
  readonly #file?: string;

  constructor(file?: string) {
    this.#file = file;
    if (file === undefined) return;
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    const parsed = JSON.parse(text) as StoredState;
    if (!Number.isInteger(parsed.nextIdSite) || !Array.isArray(parsed.sites)) {
      throw new Error(`matomo stand-in: ${file} is not a sites file`);
    }
    this.#state = parsed;
  }

  /** Inserts a site and returns its idsite (auto-increment; never reused, as in MySQL). */
  add(site: NewSite): number {
    const idsite = this.#state.nextIdSite;
    this.#state.sites.push({ idsite, ...site });
    this.#state.nextIdSite = idsite + 1;
    this.#save();
    return idsite;
  }

  /** Ids of the sites whose main or alias URL equals one of the lookup candidates, ascending. */
  findIdsByUrl(url: string): number[] {
    const candidates = lookupCandidates(url);
    const matches = (stored: string) => candidates.some((c) => sameUrl(c, stored));
    return this.#state.sites
      .filter((s) => matches(s.main_url) || s.alias_urls.some(matches))
      .map((s) => s.idsite);
  }

  get(idsite: number): SiteRecord | undefined {
    return this.#state.sites.find((s) => s.idsite === idsite);
  }

  remove(idsite: number): void {
    this.#state.sites = this.#state.sites.filter((s) => s.idsite !== idsite);
    this.#save();
  }

  all(): SiteRecord[] {
    return this.#state.sites.map((s) => structuredClone(s));
  }

  /** Back to a fresh install: no sites, next idsite 1. */
  clear(): void {
    this.#state = { nextIdSite: 1, sites: [] };
    this.#save();
  }

  #save(): void {
    if (this.#file === undefined) return;
    const tmp = `${this.#file}.tmp`;
    Deno.writeTextFileSync(tmp, JSON.stringify(this.#state, null, 2) + "\n");
    Deno.renameSync(tmp, this.#file);
  }
}
