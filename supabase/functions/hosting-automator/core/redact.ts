// Removes secrets from any text before it reaches a row, an event, a log line or an answer.

const PRIVATE_KEY_BLOCK =
  /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;
const MASK = "***";

export interface Redactor {
  (text: string): string;
  /** Adds a secret learnt at run time (e.g. a generated site user password). */
  add(secret: string | undefined): void;
}

export function createRedactor(secrets: Iterable<string | undefined> = []): Redactor {
  const known = new Set<string>();
  const redact = ((text: string) => {
    let out = text.replace(PRIVATE_KEY_BLOCK, MASK);
    // Longest first, so a secret that contains another is masked whole.
    for (const secret of [...known].sort((a, b) => b.length - a.length)) {
      out = out.replaceAll(secret, MASK);
    }
    return out;
  }) as Redactor;
  redact.add = (secret) => {
    if (secret === undefined || secret.trim() === "") return;
    for (const variant of [secret, secret.trim(), encodeURIComponent(secret)]) {
      // Every configured secret, whatever its length: a short one is still a secret.
      if (variant.length > 0) known.add(variant);
    }
    // A multi-line secret (a private key) also leaks line by line.
    for (const line of secret.split(/\r?\n|\\n/)) {
      if (line.trim().length >= 16) known.add(line.trim());
    }
  };
  for (const secret of secrets) redact.add(secret);
  return redact;
}
