// SSH to the CloudPanel server with npm:ssh2: key auth, the host key pinned by fingerprint, one
// warm connection per server per instance shared by every run, a cap on open channels, a deadline
// on everything.

// @ts-types="@types/ssh2"
import { Client, type ClientChannel, utils } from "ssh2";
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import { HostingError } from "../core/errors.ts";
import type { SshOptions } from "../core/servers.ts";
import { withDeadline } from "../lib/deadline.ts";
import type { Logger } from "../lib/log.ts";
import { Semaphore } from "../lib/semaphore.ts";

/** host, port, user, key, passphrase, pinned fingerprint, connect deadline, channel cap. */
export type { SshOptions };

/** Runs commands on the server. Transport problems and deadlines throw a HostingError; what the
 * command itself printed and returned comes back as an ExecResult for classification. `close()`
 * ends the run's use of the shell; whether the connection stays open is the manager's business. */
export interface RemoteShell {
  run(command: RemoteCommand, timeoutMs: number): Promise<ExecResult>;
  close(): Promise<void>;
}

/** `SHA256:<base64, no padding>` of a raw host key, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(hostKey: Uint8Array): string {
  return `SHA256:${createHash("sha256").update(hostKey).digest("base64").replace(/=+$/, "")}`;
}

function sameText(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

/** A problem with the key (unparseable, wrong or missing passphrase), or undefined when it loads. */
export function privateKeyProblem(privateKey: string, passphrase?: string): string | undefined {
  const parsed = utils.parseKey(privateKey, passphrase);
  if (parsed instanceof Error) {
    return /passphrase|decrypt|encrypted/i.test(parsed.message)
      ? "cannot be decrypted with SSH_PRIVATE_KEY_PASSPHRASE"
      : "cannot be parsed as an OpenSSH or PEM private key";
  }
  return undefined;
}

const OUTPUT_LIMIT = 1 << 20;
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ECONNRESET",
  "EPIPE",
]);

/** One table from ssh2's connection errors to our codes. */
export function connectionError(
  error: Error & { level?: string; code?: string },
  where: string,
  rejectedFingerprint?: string,
): HostingError {
  if (rejectedFingerprint !== undefined) {
    return new HostingError(
      "HOST_KEY_MISMATCH",
      `${where} presented host key ${rejectedFingerprint}, not the pinned one; no command was run`,
      { step: "site", cause: error },
    );
  }
  if (error.level === "client-authentication") {
    return new HostingError("SSH_AUTH_FAILED", `${where} refused the key: ${error.message}`, {
      step: "site",
      cause: error,
    });
  }
  if (error.level === "client-timeout") {
    return new HostingError("SSH_TIMEOUT", `${where}: ${error.message}`, {
      step: "site",
      cause: error,
    });
  }
  if (error.code !== undefined && UNREACHABLE.has(error.code)) {
    return new HostingError("SSH_UNREACHABLE", `${where}: ${error.message}`, {
      step: "site",
      cause: error,
    });
  }
  return new HostingError("SSH_CONNECTION_LOST", `${where}: ${error.message}`, {
    step: "site",
    cause: error,
  });
}

/** How long a connection may sit with no command running before it is closed. */
export const DEFAULT_IDLE_MS = 30_000;

export interface SshConnectionsOptions {
  /** Close a connection after this long with no command running (default 30 s). */
  idleMs?: number;
  /** Connection events (opened, refused, closed, command retried), one log line each. */
  log?: Logger;
}

/** The SSH connections of one function instance: one per host:port:user, kept open between
 * invocations while used, closed after the idle time or on `close()`. */
export interface SshConnections {
  /** A shell for one run; its `close()` hands the connection back and never closes it. */
  shell(options: SshOptions): RemoteShell;
  /** Connections open or opening right now. */
  openConnections(): number;
  /** Closes idle connections now and busy ones as soon as their commands finish (beforeunload);
   * connections opened afterwards close as soon as they are idle. */
  close(): Promise<void>;
}

/** The exec never reached the server: the connection was gone before its channel opened. */
class NotStarted extends Error {}

/** The server refused to open the channel on a live connection ("open failed"): nothing ran.
 * OpenSSH does so above its MaxSessions, which a channel just closed on our side can still count
 * for a moment (docs/cloudpanel.md#running-clpctl-over-ssh); the command is tried again on the same
 * connection, after a short wait. */
class ChannelRefused extends Error {}

/** The waits before each new try of a refused channel (1.55 s in all), then it is a failure. */
export const CHANNEL_RETRY_MS = [50, 100, 200, 400, 800];

type SshError = Error & { level?: string; code?: string };

/** One TCP connection + SSH session; the host key is verified on every new one. */
interface Connection {
  readonly ready: Promise<Client>;
  /** Settles when the socket has closed, whoever closed it. */
  readonly gone: Promise<void>;
  isGone(): boolean;
  /** Commands running (or waiting for the session) on it. */
  running: number;
  idleTimer?: number;
  /** Asked to close (why, for the log): no new command is given to it. */
  ending?: string;
  /** Graceful end, then destroy if the server does not confirm within 2 s. */
  end(reason: string): Promise<void>;
  destroy(reason: string): void;
}

function openConnection(options: SshOptions, where: string): Connection {
  const client = new Client();
  let gone = false;
  let markGone = () => {};
  const goneSignal = new Promise<void>((resolve) => (markGone = resolve));
  let rejectedFingerprint: string | undefined;
  let established = false;
  let failure: HostingError | undefined;

  const ready = new Promise<Client>((resolve, reject) => {
    // SSH sends small packets and waits for each answer: with Nagle's algorithm against the peer's
    // delayed ACKs every exchange stalls ~40 ms (handshake ~210 ms → ~45 ms, exec ~90 ms → ~5 ms).
    client.on("connect", () => client.setNoDelay(true));
    client.on("ready", () => {
      established = true;
      resolve(client);
    });
    // `on`, not `once`: ssh2 can emit a second error while closing (docs/supabase.md).
    client.on("error", (error: SshError) => {
      if (established) return; // a running command learns of it from its channel closing
      failure ??= connectionError(error, where, rejectedFingerprint);
      reject(failure);
    });
    client.on("close", () => {
      gone = true;
      markGone();
      if (!established && !failure) {
        failure = new HostingError(
          "SSH_CONNECTION_LOST",
          `${where} closed the connection during the handshake`,
          { step: "site" },
        );
        reject(failure);
      }
    });
    try {
      client.connect({
        host: options.host,
        port: options.port,
        username: options.user,
        privateKey: options.privateKey,
        passphrase: options.passphrase,
        readyTimeout: options.connectTimeoutMs,
        keepaliveInterval: 15_000,
        hostVerifier: (key: Buffer) => {
          const presented = fingerprintOf(key);
          if (sameText(presented, options.hostKeyFingerprint)) return true;
          rejectedFingerprint = presented;
          return false;
        },
      });
    } catch (error) {
      failure = new HostingError(
        "SSH_KEY_INVALID",
        `cannot use SSH_PRIVATE_KEY: ${(error as Error).message}`,
        { step: "site", cause: error },
      );
      gone = true;
      markGone();
      reject(failure);
    }
  });
  ready.catch(() => {}); // every user awaits it; a failure nobody waits for is not unhandled

  const connection: Connection = {
    ready,
    gone: goneSignal,
    isGone: () => gone,
    running: 0,
    async end(reason) {
      connection.ending ??= reason;
      clearTimeout(connection.idleTimer);
      if (gone) return;
      client.end();
      await withDeadline(goneSignal, 2_000, () => new Error("close timeout"))
        .catch(() => client.destroy());
    },
    destroy(reason) {
      connection.ending ??= reason;
      clearTimeout(connection.idleTimer);
      client.destroy();
    },
  };
  return connection;
}

/** One command on an established session. Rejects with NotStarted when the connection was gone
 * before the exec request left (safe to send again), with a HostingError otherwise. */
function exec(
  connection: Connection,
  client: Client,
  where: string,
  command: RemoteCommand,
  holder: { stream?: ClientChannel },
): Promise<ExecResult> {
  return new Promise<ExecResult>((resolve, reject) => {
    const onChannel = (error: Error | undefined, stream: ClientChannel) => {
      if (error) {
        // ssh2 1.17 answers "Unable to exec" once the exec request was sent (the server may have
        // started it); any other error here arrived while the channel was opening: nothing ran.
        if (error.message !== "Unable to exec" && connection.isGone()) {
          reject(new NotStarted(error.message));
          return;
        }
        if (error.message.startsWith("(SSH) Channel open failure")) {
          reject(new ChannelRefused(error.message));
          return;
        }
        reject(
          new HostingError(
            "SSH_CONNECTION_LOST",
            `${where}: could not open a channel for ${command.verb}: ${error.message}`,
            { step: "site", cause: error },
          ),
        );
        return;
      }
      holder.stream = stream;
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outSize = 0;
      let errSize = 0;
      stream.on("data", (chunk: Buffer) => {
        if ((outSize += chunk.length) <= OUTPUT_LIMIT) out.push(chunk);
      });
      stream.stderr.on("data", (chunk: Buffer) => {
        if ((errSize += chunk.length) <= OUTPUT_LIMIT) err.push(chunk);
      });
      stream.on("close", (code?: number | null, signal?: string | null) => {
        if (code === undefined && signal === undefined && connection.isGone()) {
          reject(
            new HostingError(
              "SSH_CONNECTION_LOST",
              `${where}: the connection dropped while ${command.verb} was running`,
              { step: "site" },
            ),
          );
          return;
        }
        resolve({
          code: typeof code === "number" ? code : null,
          signal: signal ?? null,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
        });
      });
      stream.end(); // nothing on stdin: clpctl must never wait for an answer
    };
    try {
      client.exec(command.line, onChannel);
    } catch (error) {
      // "Not connected": the socket had already closed, nothing was sent.
      reject(new NotStarted((error as Error).message));
    }
  });
}

/** Everything about one server (host:port:user) that outlives a connection. */
interface Endpoint {
  readonly options: SshOptions;
  readonly where: string;
  /** Shared by every run: the cap is on the connection's channels, not on one run's. */
  readonly channels: Semaphore;
  current?: Connection;
}

function sameServerSettings(a: SshOptions, b: SshOptions): boolean {
  return a.hostKeyFingerprint === b.hostKeyFingerprint && a.privateKey === b.privateKey &&
    a.passphrase === b.passphrase && a.maxChannels === b.maxChannels &&
    a.connectTimeoutMs === b.connectTimeoutMs;
}

export function createSshConnections(settings: SshConnectionsOptions = {}): SshConnections {
  const idleMs = settings.idleMs ?? DEFAULT_IDLE_MS;
  const log: Logger = settings.log ?? (() => {});
  const endpoints = new Map<string, Endpoint>();
  const live = new Set<Connection>();
  let draining = false;

  const endpointFor = (options: SshOptions): Endpoint => {
    const key = `${options.host}:${options.port}:${options.user}`;
    const known = endpoints.get(key);
    if (known && sameServerSettings(known.options, options)) return known;
    // New settings for the same server: the old connection finishes its commands, then closes.
    if (known?.current) retire(known.current, "settings changed");
    const endpoint: Endpoint = {
      options,
      where: `${options.user}@${options.host}:${options.port}`,
      channels: new Semaphore(options.maxChannels),
    };
    endpoints.set(key, endpoint);
    return endpoint;
  };

  const retire = (connection: Connection, reason: string) => {
    if (connection.running === 0) connection.end(reason).catch(() => {});
    else connection.ending ??= reason; // closed when its last command finishes
  };

  /** The endpoint's open connection, or a new one (which verifies the host key again). */
  const connectionFor = (endpoint: Endpoint): Connection => {
    const known = endpoint.current;
    if (known && !known.isGone() && !known.ending) return known;
    const started = performance.now();
    const connection = openConnection(endpoint.options, endpoint.where);
    endpoint.current = connection;
    live.add(connection);
    let established = false;
    connection.ready.then(
      () => {
        established = true;
        log("info", "ssh_connected", {
          msg: endpoint.where,
          duration_ms: Math.round(performance.now() - started),
        });
      },
      (error: HostingError) => {
        log("warn", "ssh_connect_failed", {
          msg: endpoint.where,
          code: error.code,
          duration_ms: Math.round(performance.now() - started),
        });
        if (endpoint.current === connection) endpoint.current = undefined;
      },
    );
    connection.gone.then(() => {
      live.delete(connection);
      clearTimeout(connection.idleTimer);
      if (endpoint.current === connection) endpoint.current = undefined;
      if (established) {
        log("info", "ssh_closed", {
          msg: endpoint.where,
          reason: connection.ending ?? "closed by the server",
        });
      }
    });
    return connection;
  };

  const hold = (connection: Connection) => {
    connection.running++;
    clearTimeout(connection.idleTimer);
  };

  const release = (connection: Connection) => {
    if (--connection.running > 0 || connection.isGone()) return;
    if (draining || connection.ending) {
      connection.end(connection.ending ?? "shutdown").catch(() => {});
      return;
    }
    connection.idleTimer = setTimeout(() => {
      if (connection.running === 0) connection.end(`idle for ${idleMs} ms`).catch(() => {});
    }, idleMs);
    Deno.unrefTimer(connection.idleTimer); // an idle connection never keeps a process alive
  };

  const shell = (options: SshOptions): RemoteShell => {
    const endpoint = endpointFor(options);
    const where = endpoint.where;
    // A run that could not connect does not try again: every later command gets the same answer.
    let connectFailure: HostingError | undefined;

    const attempt = async (command: RemoteCommand, timeoutMs: number): Promise<ExecResult> => {
      const connection = connectionFor(endpoint);
      hold(connection);
      try {
        const client = await withDeadline(
          connection.ready.catch((error: HostingError) => {
            connectFailure = error;
            throw error;
          }),
          options.connectTimeoutMs + 1_000,
          () =>
            new HostingError("SSH_TIMEOUT", `${where}: no SSH session within the deadline`, {
              step: "site",
            }),
        );
        const holder: { stream?: ClientChannel } = {};
        const sent = performance.now();
        const started = exec(connection, client, where, command, holder);
        started.catch(() => {}); // a late failure after the deadline is not unhandled
        // One line per command: its round trip, for operators and for local/bench.
        started.then((result) =>
          log("debug", "ssh_exec", {
            verb: command.verb,
            exit: result.code,
            signal: result.signal ?? undefined,
            duration_ms: Math.round((performance.now() - sent) * 10) / 10,
          }), () => {});
        return await withDeadline(
          started,
          timeoutMs,
          () =>
            new HostingError(
              "COMMAND_TIMEOUT",
              `${command.verb} gave no answer within ${timeoutMs} ms (it may still finish on the server)`,
              {
                step: command.verb === "lets-encrypt:install:certificate" ? "certificate" : "site",
              },
            ),
          () => {
            try {
              holder.stream?.signal("KILL");
            } catch { /* the server may not support signals */ }
            holder.stream?.close();
          },
        );
      } catch (error) {
        if (error instanceof NotStarted) {
          connection.destroy("dropped before a command's channel opened");
        }
        throw error;
      } finally {
        release(connection);
      }
    };

    /** Tries again while the server refuses the channel (CHANNEL_RETRY_MS), then gives up. */
    const refusedAgain = async (
      tryOnce: () => Promise<ExecResult>,
      command: RemoteCommand,
    ): Promise<ExecResult> => {
      for (let retry = 0;; retry++) {
        try {
          return await tryOnce();
        } catch (error) {
          if (!(error instanceof ChannelRefused)) throw error;
          if (retry >= CHANNEL_RETRY_MS.length) {
            throw new HostingError(
              "SSH_CONNECTION_LOST",
              `${where}: the server refused a channel for ${command.verb} ` +
                `${CHANNEL_RETRY_MS.length + 1} times: ${error.message}`,
              { step: "site", cause: error },
            );
          }
          log("warn", "ssh_channel_refused", {
            msg: `${where}: ${error.message}`,
            verb: command.verb,
          });
          await new Promise((resolve) => setTimeout(resolve, CHANNEL_RETRY_MS[retry]));
        }
      }
    };

    return {
      run(command, timeoutMs) {
        if (connectFailure) return Promise.reject(connectFailure);
        return endpoint.channels.run(async () => {
          try {
            return await refusedAgain(() => attempt(command, timeoutMs), command);
          } catch (error) {
            if (!(error instanceof NotStarted)) throw error;
            // The server had dropped the connection and the command never reached it: once more,
            // on a fresh connection.
            log("warn", "ssh_retry", { msg: `${where}: ${error.message}`, verb: command.verb });
          }
          try {
            return await refusedAgain(() => attempt(command, timeoutMs), command);
          } catch (error) {
            if (!(error instanceof NotStarted)) throw error;
            throw new HostingError(
              "SSH_CONNECTION_LOST",
              `${where}: could not open a channel for ${command.verb}, twice: ${error.message}`,
              { step: "site", cause: error },
            );
          }
        });
      },
      close() {
        return Promise.resolve();
      },
    };
  };

  return {
    shell,
    openConnections: () => live.size,
    async close() {
      draining = true;
      const all = [...live];
      for (const connection of all) retire(connection, "shutdown");
      await Promise.all(all.map((connection) => connection.gone));
    },
  };
}

/** A shell with a connection of its own, closed by `close()` (scripts and tests; the function
 * uses one SshConnections per instance). */
export function createSshShell(options: SshOptions): RemoteShell {
  const connections = createSshConnections();
  const shell = connections.shell(options);
  return { run: shell.run, close: () => connections.close() };
}
