// The repository explains itself: nothing points outside it, and every link and docs citation
// inside it resolves to a file and, where one is named, a heading.

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** Where a comment may not send a reader: files of the workspace that a clone does not have. */
const OUTSIDE = [
  /\.\.\/shared\b/,
  /\/work\//,
  /\breference\/[\w.-]+\.md/,
  /\breference §/,
  /\bSPEC(?:\.md\b| §)/,
  /§[AB]\d/,
];

/** The files that must make sense from a clone alone. */
const CHECKED = /^(?:supabase\/|local\/|\.ci\/|README\.md$|deno\.json$|import_map\.json$)/;

/** Every file git knows of or would add (so a new, uncommitted file is checked too). */
async function repositoryFiles(): Promise<string[]> {
  const { code, stdout, stderr } = await new Deno.Command("git", {
    args: ["ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const names = new TextDecoder().decode(stdout).split("\0").filter((name) => name !== "");
  const present: string[] = [];
  for (const name of new Set(names)) {
    // A file deleted in the work tree but still in the index is not there to read.
    if (await Deno.stat(ROOT + name).then((s) => s.isFile, () => false)) present.push(name);
  }
  return present.sort();
}

/** The text of a file, or undefined for binary content. */
async function text(name: string): Promise<string | undefined> {
  const bytes = await Deno.readFile(ROOT + name);
  if (bytes.includes(0)) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

/** `line:text` for each line that refers outside the repository. */
export function outsideReferences(content: string): string[] {
  return content.split("\n").flatMap((line, i) =>
    OUTSIDE.some((pattern) => pattern.test(line)) ? [`${i + 1}: ${line.trim()}`] : []
  );
}

/** Markdown without fenced code blocks and inline code, where links are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, "").replace(/\s/g, "-");
}

/** The anchors of a markdown file's headings, with GitHub's -1, -2 … for repeats. */
export function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const found = new Set<string>();
  const body = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const match of body.matchAll(/^#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const base = slug(match[1]);
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    found.add(count === 0 ? base : `${base}-${count}`);
  }
  return found;
}

/** The relative link targets of a markdown text (no URLs with a scheme, no mailto). */
export function relativeLinks(markdown: string): string[] {
  const targets: string[] = [];
  for (const match of prose(markdown).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
    const target = match[1];
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue;
    targets.push(target);
  }
  return targets;
}

/** `docs/<page>.md#<anchor>` citations, as comments write them (paths from the repository root). */
export function docsCitations(content: string): Array<{ page: string; anchor?: string }> {
  return [...content.matchAll(/\bdocs\/([\w-]+\.md)(?:#([\w-]+))?/g)].map((m) => ({
    page: `docs/${m[1]}`,
    anchor: m[2],
  }));
}

function resolve(from: string, target: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return parts.join("/");
}

async function anchorsOf(name: string, cache: Map<string, Set<string>>): Promise<Set<string>> {
  if (!cache.has(name)) cache.set(name, anchors((await text(name)) ?? ""));
  return cache.get(name)!;
}

Deno.test("the detector catches each way of pointing outside the repository", () => {
  for (
    const bad of [
      "// see ../shared/SPEC.md",
      "# Follows /work/shared/reference/cloudpanel.md:",
      "// (reference/matomo.md §B1)",
      "-- projects after the 2026 change (reference §0.8)",
      "// The HTTP boundary (SPEC §3)",
      "// clpctl writes its errors to stdout, §A5",
    ]
  ) assert.equal(outsideReferences(bad).length, 1, bad);
  for (
    const good of [
      "// (docs/cloudpanel.md#output-and-exit-codes)",
      "// Hop-by-hop headers (RFC 9110 §7.6.1)",
      "  sharedscripts",
    ]
  ) assert.deepEqual(outsideReferences(good), [], good);
});

Deno.test("anchors follow GitHub's rules, repeats included", () => {
  const found = anchors(
    "# Top\n## Let's Encrypt\n## What site:add:static does\n## Top\n" +
      "```\n## not a heading\n```\n",
  );
  assert.deepEqual([...found], ["top", "lets-encrypt", "what-siteaddstatic-does", "top-1"]);
});

Deno.test("links in code are not links; URLs with a scheme are not relative", () => {
  assert.deepEqual(
    relativeLinks(
      "[a](a.md) [b](https://x.example/b.md) `[c](c.md)` [d](d.md#e)\n```\n[f](f)\n```",
    ),
    ["a.md", "d.md#e"],
  );
});

Deno.test("no file under supabase/, local/, .ci/ or the README points outside the repository", async () => {
  const problems: string[] = [];
  for (const name of (await repositoryFiles()).filter((n) => CHECKED.test(n))) {
    const content = await text(name);
    if (content === undefined) continue;
    for (const line of outsideReferences(content)) problems.push(`${name}:${line}`);
  }
  assert.deepEqual(problems, [], "point these at docs/… instead:\n" + problems.join("\n"));
});

Deno.test("every relative link in the markdown files reaches a file and its heading", async () => {
  const files = await repositoryFiles();
  const known = new Set(files);
  const cache = new Map<string, Set<string>>();
  const problems: string[] = [];
  for (const name of files.filter((n) => n.endsWith(".md"))) {
    for (const target of relativeLinks((await text(name)) ?? "")) {
      const [path, anchor] = target.split("#", 2);
      const file = path === "" ? name : resolve(name, decodeURIComponent(path));
      const isDir = files.some((f) => f.startsWith(file + "/"));
      if (!known.has(file) && !isDir) problems.push(`${name}: ${target} (no such file)`);
      else if (anchor && file.endsWith(".md") && !(await anchorsOf(file, cache)).has(anchor)) {
        problems.push(`${name}: ${target} (no such heading)`);
      }
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});

Deno.test("every docs/….md#section citation names a page and a heading that exist", async () => {
  const files = await repositoryFiles();
  const known = new Set(files);
  const cache = new Map<string, Set<string>>();
  const problems: string[] = [];
  for (const name of files.filter((n) => CHECKED.test(n) || /^docs\/[^/]+\.md$/.test(n))) {
    for (const { page, anchor } of docsCitations((await text(name)) ?? "")) {
      if (!known.has(page)) problems.push(`${name}: ${page} (no such page)`);
      else if (anchor && !(await anchorsOf(page, cache)).has(anchor)) {
        problems.push(`${name}: ${page}#${anchor} (no such heading)`);
      }
    }
  }
  assert.deepEqual(problems, [], problems.join("\n"));
});
