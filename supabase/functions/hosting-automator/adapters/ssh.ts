// SSH to the CloudPanel server with npm:ssh2: key auth, the host key pinned by fingerprint, one
// connection per run shared by its commands, a cap on open channels, a deadline on everything.

// @ts-types="@types/ssh2"
import { Client, type ClientChannel, utils } from "ssh2";
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import type { ExecResult, RemoteCommand } from "../core/cloudpanel.ts";
import { HostingError } from "../core/errors.ts";
import type { Settings } from "../core/settings.ts";
import { withDeadline } from "../lib/deadline.ts";
import { Semaphore } from "../lib/semaphore.ts";

/** host, port, user, key, passphrase, pinned fingerprint, connect deadline, channel cap. */
export type SshOptions = Settings["ssh"];

/** Runs commands on the server. Transport problems and deadlines throw a HostingError; what the
 * command itself printed and returned comes back as an ExecResult for classification. */
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
      `${where} presented host key ${rejectedFingerprint}, not SSH_HOST_KEY_FINGERPRINT; no command was run`,
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

export function createSshShell(options: SshOptions): RemoteShell {
  const where = `${options.user}@${options.host}:${options.port}`;
  const channels = new Semaphore(options.maxChannels);
  let connection: Promise<Client> | undefined;
  let connectFailure: HostingError | undefined;
  let client: Client | undefined;

  const connect = (): Promise<Client> => {
    if (connectFailure) return Promise.reject(connectFailure);
    connection ??= new Promise<Client>((resolve, reject) => {
      const c = new Client();
      let rejectedFingerprint: string | undefined;
      let ready = false;
      c.on("ready", () => {
        ready = true;
        client = c;
        resolve(c);
      });
      // `on`, not `once`: ssh2 can emit a second error while closing
      // (docs/supabase.md#npmssh2-in-the-edge-runtime).
      c.on("error", (error: Error & { level?: string; code?: string }) => {
        if (ready) return; // a running command learns of it from its channel closing
        connectFailure = connectionError(error, where, rejectedFingerprint);
        reject(connectFailure);
      });
      c.on("close", () => {
        if (!ready && !connectFailure) {
          connectFailure = new HostingError(
            "SSH_CONNECTION_LOST",
            `${where} closed the connection during the handshake`,
            { step: "site" },
          );
          reject(connectFailure);
        }
        // An established connection that drops is reopened by the next command.
        if (client === c) client = undefined;
        connection = undefined;
      });
      try {
        c.connect({
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
        connectFailure = new HostingError(
          "SSH_KEY_INVALID",
          `cannot use SSH_PRIVATE_KEY: ${(error as Error).message}`,
          { step: "site", cause: error },
        );
        reject(connectFailure);
      }
    });
    return connection;
  };

  const exec = (c: Client, command: RemoteCommand, holder: { stream?: ClientChannel }) =>
    new Promise<ExecResult>((resolve, reject) => {
      c.exec(command.line, (error, stream) => {
        if (error) {
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
          if (code === undefined && signal === undefined && client !== c) {
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
      });
    });

  return {
    run(command, timeoutMs) {
      return channels.run(async () => {
        const c = await withDeadline(
          connect(),
          options.connectTimeoutMs + 1_000,
          () =>
            new HostingError("SSH_TIMEOUT", `${where}: no SSH session within the deadline`, {
              step: "site",
            }),
        );
        const holder: { stream?: ClientChannel } = {};
        const started = exec(c, command, holder);
        started.catch(() => {}); // a late failure after the deadline is not unhandled
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
      });
    },
    async close() {
      const c = client;
      if (!c) return;
      const closed = new Promise<void>((resolve) => c.once("close", () => resolve()));
      c.end();
      await withDeadline(closed, 2_000, () => new Error("close timeout")).catch(() => c.destroy());
    },
  };
}
