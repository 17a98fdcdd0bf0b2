// The HTTP body the function accepts, checked with zod: one site, a Database Webhook payload for
// public.sites, or {} for every due site; plus the wait / dry_run options (docs/contract.md#body).
// One named site may also be removed: {"site_id", "action": "deprovision", "delete_analytics"}.

import { z } from "zod";

const options = {
  wait: z.boolean().optional(),
  dry_run: z.boolean().optional(),
};

const oneSite = z.strictObject({
  site_id: z.uuid(),
  action: z.enum(["provision", "deprovision"]).optional(),
  delete_analytics: z.boolean().optional(),
  ...options,
}).refine((body) => body.delete_analytics === undefined || body.action === "deprovision", {
  message: 'delete_analytics applies to "action": "deprovision" only',
  path: ["delete_analytics"],
});

const webhook = z.object({
  type: z.enum(["INSERT", "UPDATE", "DELETE"]),
  table: z.literal("sites"),
  schema: z.literal("public"),
  record: z.looseObject({ id: z.uuid() }).nullable(),
  old_record: z.unknown().optional(),
  ...options,
}).refine((body) => body.record !== null, {
  message: "a DELETE event has no site to provision",
  path: ["record"],
});

const everyDueSite = z.strictObject({ ...options });

export interface Work {
  /** One site, or undefined for every due site. */
  siteId?: string;
  /** Present for "action": "deprovision": remove the named site (never for the dispatch token),
   * deleting its own Matomo site too only when asked (kept by default). */
  deprovision?: { deleteAnalytics: boolean };
  wait: boolean;
  dryRun: boolean;
}

export interface BodyIssue {
  path: string;
  message: string;
}

export type ParsedBody = { ok: true; work: Work } | { ok: false; issues: BodyIssue[] };

/** Parses the raw body text. An empty body means {}. */
export function parseBody(text: string): ParsedBody {
  let json: unknown = {};
  if (text.trim() !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      return { ok: false, issues: [{ path: "", message: "the body is not valid JSON" }] };
    }
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return { ok: false, issues: [{ path: "", message: "the body must be a JSON object" }] };
  }
  const shape = "site_id" in json
    ? oneSite
    : "record" in json || "type" in json
    ? webhook
    : everyDueSite;
  const result = shape.safeParse(json);
  if (!result.success) {
    return {
      ok: false,
      issues: result.error.issues.map((issue) => ({
        path: issue.path.join("."),
        message: issue.message,
      })),
    };
  }
  const body = result.data as z.infer<typeof everyDueSite> & {
    site_id?: string;
    action?: "provision" | "deprovision";
    delete_analytics?: boolean;
    record?: { id: string } | null;
  };
  const work: Work = {
    siteId: body.site_id ?? body.record?.id,
    wait: body.wait ?? false,
    dryRun: body.dry_run ?? false,
  };
  if (body.action === "deprovision") {
    work.deprovision = { deleteAnalytics: body.delete_analytics ?? false };
  }
  return { ok: true, work };
}
