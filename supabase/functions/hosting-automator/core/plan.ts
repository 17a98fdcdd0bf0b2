// Dry runs: the commands and Matomo calls a real run would make for a site, secrets shown as ***.
// Built from the same command and request builders the real run uses.

import { deleteSite, docRootFor } from "./cloudpanel.ts";
import { validateDomain } from "./domain.ts";
import { deleteSiteRequest, describeRequest } from "./matomo.ts";
import { PROVISION_STEPS, provisionActions } from "./steps.ts";
import { siteUserCandidates } from "./site_user.ts";

export interface PlannedSite {
  site_id: string;
  domain: string;
  work: "provision" | "analytics" | "remove";
  site_user: string | null;
  doc_root: string | null;
  commands: string[];
  matomo_calls: Array<{ method: string; url: string; body: string; when: string }>;
  /** The DNS-over-HTTPS queries of the check before the certificate ([] when it is off). */
  dns_queries: Array<{ name: string; type: string; url: string; when: string }>;
  error: { code: string; message: string } | null;
}

export interface PlanInput {
  site_id: string;
  domain: string;
  due: "provision" | "analytics" | "remove" | null;
  matomo_site_id: number | null;
  site_user?: string | null;
  doc_root?: string | null;
  /** For a removal: whether it deletes the Matomo site too. */
  delete_analytics?: boolean;
}

/** How many site user names a run considers (see run/provision.ts). */
export const CANDIDATES = 5;

export function planSite(
  site: PlanInput,
  sshUser: string,
  matomoUrl: string,
  /** The resolver the DNS check asks; absent when the check is off (no server addresses). */
  dnsResolverUrl?: string,
): PlannedSite {
  if (site.due === "remove") {
    return planRemoval(site, site.delete_analytics ?? false, sshUser, matomoUrl);
  }
  const work = site.due ?? "provision";
  const plan: PlannedSite = {
    site_id: site.site_id,
    domain: site.domain,
    work,
    site_user: null,
    doc_root: null,
    commands: [],
    matomo_calls: [],
    dns_queries: [],
    error: null,
  };
  const domain = validateDomain(site.domain);
  if (!domain.ok) {
    plan.error = { code: domain.error.code, message: domain.error.message };
    return plan;
  }
  // The same step list, builders and candidate names the run uses (core/steps.ts).
  const candidates = siteUserCandidates(site.domain, CANDIDATES);
  const actions = provisionActions(site.domain, candidates, sshUser);
  const ssh = {
    read: () => actions.ssh.read(),
    add: () => actions.ssh.add(candidates[0], "***"),
    check: () => actions.ssh.check(docRootFor(candidates[0], site.domain)),
    certificate: () => actions.ssh.certificate(),
  };
  for (const step of PROVISION_STEPS) {
    if (work === "provision" && dnsResolverUrl !== undefined) {
      for (const { action, when } of step.dns) {
        for (const query of actions.dns[action](dnsResolverUrl)) {
          plan.dns_queries.push({ ...query, when });
        }
      }
    }
    if (work === "provision") {
      for (const { action, when } of step.ssh) {
        plan.commands.push(`${ssh[action]().shown}   # ${when}`);
      }
    }
    if (site.matomo_site_id === null) {
      for (const { action, when } of step.matomo) {
        // The token is never used here: the description masks it anyway.
        plan.matomo_calls.push({
          ...describeRequest(actions.matomo[action](matomoUrl, "***")),
          when,
        });
      }
    }
  }
  if (work === "provision") {
    plan.site_user = candidates[0];
    plan.doc_root = docRootFor(candidates[0], site.domain);
  }
  return plan;
}

/** A removal: `site:delete` (a site already gone is fine), then Matomo's deleteSite only when
 * asked and only for the row's own idsite. */
export function planRemoval(
  site: PlanInput,
  deleteAnalytics: boolean,
  sshUser: string,
  matomoUrl: string,
): PlannedSite {
  const plan: PlannedSite = {
    site_id: site.site_id,
    domain: site.domain,
    work: "remove",
    site_user: site.site_user ?? null,
    doc_root: site.doc_root ?? null,
    commands: [],
    matomo_calls: [],
    dns_queries: [],
    error: null,
  };
  const domain = validateDomain(site.domain);
  if (!domain.ok) {
    plan.error = { code: domain.error.code, message: domain.error.message };
    return plan;
  }
  plan.commands = [
    `${
      deleteSite(site.domain, sshUser).shown
    }   # 'Site "…" does not exist.' counts as already gone`,
  ];
  if (deleteAnalytics && site.matomo_site_id !== null) {
    plan.matomo_calls = [{
      ...describeRequest(deleteSiteRequest(matomoUrl, "***", site.matomo_site_id)),
      when: "always (delete_analytics); an unknown id counts as already gone",
    }];
  }
  return plan;
}
