// A provisioning's steps, written once: which step runs which remote action, when, built by which
// builder. The run (run/provision.ts) takes its commands and its step order from here; the dry
// run (core/plan.ts) lists the same entries, so the plan cannot drift from what runs.

import {
  addStaticSite,
  docRootCheck,
  installCertificate,
  type RemoteCommand,
  serverState,
} from "./cloudpanel.ts";
import { dnsQueries, type DnsQuery } from "./dns.ts";
import { addSiteRequest, lookupRequest, type MatomoRequest } from "./matomo.ts";

/** The actions a provisioning can take, each built the one way the run and the plan both use. */
export function provisionActions(domain: string, candidates: string[], sshUser: string) {
  return {
    ssh: {
      read: (): RemoteCommand => serverState(domain, candidates, sshUser),
      add: (siteUser: string, password: string): RemoteCommand =>
        addStaticSite(domain, siteUser, password, sshUser),
      check: (docRoot: string): RemoteCommand => docRootCheck(docRoot, sshUser),
      certificate: (): RemoteCommand => installCertificate(domain, sshUser),
    },
    dns: {
      check: (resolverUrl: string): DnsQuery[] => dnsQueries(domain, resolverUrl),
    },
    matomo: {
      lookup: (baseUrl: string, token: string): MatomoRequest =>
        lookupRequest(baseUrl, token, domain),
      addSite: (baseUrl: string, token: string): MatomoRequest =>
        addSiteRequest(baseUrl, token, domain),
    },
  };
}

type Actions = ReturnType<typeof provisionActions>;

/** The steps in order, each with its actions and when each runs. */
export const PROVISION_STEPS = [
  {
    step: "site",
    ssh: [
      { action: "read", when: "always: what the server has" },
      {
        action: "add",
        when: "only if it has no site for the domain (under the first free candidate user)",
      },
      { action: "check", when: "only if the site already exists (adopted)" },
    ],
    dns: [],
    matomo: [],
  },
  {
    step: "certificate",
    dns: [{
      action: "check",
      when: "before the certificate is requested, when HOSTING_SERVER_ADDRESSES is set: " +
        "not pointing at the server yet is DNS_NOT_READY and Let's Encrypt is not asked",
    }],
    ssh: [{
      action: "certificate",
      when: "unless a Let's Encrypt certificate valid for 30 more days is served",
    }],
    matomo: [],
  },
  {
    step: "analytics",
    ssh: [],
    dns: [],
    matomo: [
      { action: "lookup", when: "unless the site has its id; beside the SSH steps" },
      { action: "addSite", when: "only if the look-up finds no site" },
    ],
  },
] as const satisfies ReadonlyArray<{
  step: "site" | "certificate" | "analytics";
  ssh: ReadonlyArray<{ action: keyof Actions["ssh"]; when: string }>;
  dns: ReadonlyArray<{ action: keyof Actions["dns"]; when: string }>;
  matomo: ReadonlyArray<{ action: keyof Actions["matomo"]; when: string }>;
}>;

export type ProvisionStep = (typeof PROVISION_STEPS)[number]["step"];

/** The steps after `step`, in order (what is recorded as skipped when `step` failed). */
export function stepsAfter(step: ProvisionStep): ProvisionStep[] {
  const names = PROVISION_STEPS.map((s) => s.step);
  return names.slice(names.indexOf(step) + 1);
}
