// Which CloudPanel server a job runs on, and with what: a listed server (a row of
// public.hosting_servers, carried by the job) or the implicit server of SSH_HOST; the private key
// for it (SSH_PRIVATE_KEY, or the server's own SSH_PRIVATE_KEY__<NAME>); the health target a
// failure pauses; the public addresses the DNS check compares with. Pure: nothing connects here.

import { createHash } from "node:crypto";

/** A listed server as a job carries it (hosting_job_json). */
export interface ListedServer {
  name: string;
  host: string;
  port: number;
  user: string;
  host_key_fingerprint: string;
  addresses: string[];
}

export interface PrivateKey {
  privateKey: string;
  passphrase?: string;
}

/** The SSH settings of the function (core/settings.ts). */
export interface SshSettings extends PrivateKey {
  /** The server of SSH_HOST, for sites without a listed server; absent when SSH_HOST is unset. */
  implicit?: {
    host: string;
    port: number;
    user: string;
    hostKeyFingerprint: string;
    /** HOSTING_SERVER_ADDRESSES: the DNS check is off for it without them. */
    addresses?: string[];
  };
  /** Per-server keys, by server name (SSH_PRIVATE_KEY__<NAME>). */
  keys: Record<string, PrivateKey>;
  connectTimeoutMs: number;
  maxChannels: number;
}

/** What adapters/ssh.ts connects with. */
export interface SshOptions extends PrivateKey {
  host: string;
  port: number;
  user: string;
  hostKeyFingerprint: string;
  connectTimeoutMs: number;
  maxChannels: number;
}

export interface HealthTarget {
  target: string;
  /** A digest of the settings the target is used with (never a secret). */
  credential: string;
}

/** One job's server, resolved. */
export interface JobServer {
  /** The listed server's name; null for the implicit server. */
  name: string | null;
  ssh: SshOptions;
  health: HealthTarget;
  /** Where the DNS side points the site; undefined: no addresses known, the DNS check is off. */
  addresses?: string[];
}

/** The environment variable of a server's own key: fra-1 → SSH_PRIVATE_KEY__FRA_1. Server names
 * are lower case, digits and single hyphens (the table's check), so the mapping is one to one. */
export function keySetting(server: string): string {
  return `SSH_PRIVATE_KEY__${server.toUpperCase().replaceAll("-", "_")}`;
}

/** The passphrase of a server's own key: SSH_PRIVATE_KEY_PASSPHRASE__FRA_1. */
export function passphraseSetting(server: string): string {
  return `SSH_PRIVATE_KEY_PASSPHRASE__${server.toUpperCase().replaceAll("-", "_")}`;
}

/** The server name a key override's variable names (the inverse of keySetting), or undefined. */
export function serverOfSetting(
  setting: string,
): { server: string; part: "key" | "passphrase" } | undefined {
  const match = /^SSH_PRIVATE_KEY(_PASSPHRASE)?__([A-Z0-9]+(?:_[A-Z0-9]+)*)$/.exec(setting);
  if (!match) return undefined;
  return {
    server: match[2].toLowerCase().replaceAll("_", "-"),
    part: match[1] ? "passphrase" : "key",
  };
}

/** A short digest of settings, never the settings: a corrected value gives another digest. */
export function digest(...parts: Array<string | undefined>): string {
  return `sha256:${
    createHash("sha256").update(parts.map((p) => p ?? "").join("\n")).digest("hex").slice(0, 16)
  }`;
}

const keyDigest = (key: PrivateKey) => digest(key.privateKey, key.passphrase);

/** The key used for a listed server. */
export function keyFor(server: string, ssh: SshSettings): PrivateKey {
  return ssh.keys[server] ?? ssh;
}

/** Digests of the keys in use, as hosting_claim takes them: "*" the default, then each override.
 * A server paused for another key than its current one is paused no longer. */
export function keyDigests(ssh: SshSettings): Record<string, string> {
  return Object.fromEntries([
    ["*", keyDigest(ssh)],
    ...Object.entries(ssh.keys).map(([name, key]) => [name, keyDigest(key)]),
  ]);
}

/** The implicit server's health target (the first version's, unchanged). */
export function implicitHealth(ssh: SshSettings): HealthTarget | undefined {
  const server = ssh.implicit;
  if (!server) return undefined;
  return {
    target: `ssh:${server.user}@${server.host}:${server.port}`,
    credential: digest(server.hostKeyFingerprint, ssh.privateKey, ssh.passphrase),
  };
}

/** The job's server: its listed server, or the implicit one; undefined when it has neither. */
export function jobServer(listed: ListedServer | null, ssh: SshSettings): JobServer | undefined {
  const common = { connectTimeoutMs: ssh.connectTimeoutMs, maxChannels: ssh.maxChannels };
  if (listed) {
    const key = keyFor(listed.name, ssh);
    return {
      name: listed.name,
      ssh: {
        host: listed.host,
        port: listed.port,
        user: listed.user,
        hostKeyFingerprint: listed.host_key_fingerprint,
        privateKey: key.privateKey,
        ...(key.passphrase === undefined ? {} : { passphrase: key.passphrase }),
        ...common,
      },
      health: { target: `server:${listed.name}`, credential: keyDigest(key) },
      ...(listed.addresses.length > 0 ? { addresses: listed.addresses } : {}),
    };
  }
  const implicit = ssh.implicit;
  const health = implicitHealth(ssh);
  if (!implicit || !health) return undefined;
  return {
    name: null,
    ssh: {
      host: implicit.host,
      port: implicit.port,
      user: implicit.user,
      hostKeyFingerprint: implicit.hostKeyFingerprint,
      privateKey: ssh.privateKey,
      ...(ssh.passphrase === undefined ? {} : { passphrase: ssh.passphrase }),
      ...common,
    },
    health,
    ...(implicit.addresses ? { addresses: implicit.addresses } : {}),
  };
}
