// Pure helpers of local/bench.ts: order statistics, the stand-ins' and the gateway's log lines,
// and a figure's verdict against its target.

export interface Stats {
  n: number;
  median: number;
  p95: number;
  min: number;
  max: number;
}

/** Nearest-rank median and p95 (and range) of `values`, rounded to 0.1 ms. */
export function stats(values: number[]): Stats {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? NaN;
  const round = (v: number) => Math.round(v * 10) / 10;
  return {
    n: sorted.length,
    median: round(rank(0.5)),
    p95: round(rank(0.95)),
    min: round(sorted[0] ?? NaN),
    max: round(sorted[sorted.length - 1] ?? NaN),
  };
}

export interface ClpctlCall {
  at: number;
  verb: string;
  domain: string;
  exit: number;
  durationMs: number;
}

/** control/calls.log: time, verb, domain, exit code, caller, duration_ms, arguments. */
export function parseCalls(text: string): ClpctlCall[] {
  return text.split("\n").filter((line) => line !== "").map((line) => {
    const f = line.split("\t");
    if (!/^\d+$/.test(f[5] ?? "")) {
      throw new Error(`calls.log line without duration_ms (an old clpctl stand-in?): ${line}`);
    }
    return {
      at: Date.parse(f[0]),
      verb: f[1],
      domain: f[2],
      exit: Number(f[3]),
      durationMs: Number(f[5]),
    };
  });
}

export interface GatewayLine {
  /** When the request reached the gateway (logged time minus its duration). */
  arrived: number;
  method: string;
  path: string;
  status: number;
  durationMs: number;
}

/** The API gateway stand-in's log: `<ISO time at the answer> <METHOD> <path> <status> <N>ms`. */
export function parseGateway(text: string): GatewayLine[] {
  const lines: GatewayLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+Z) ([A-Z]+) (\S+) (\d{3}) (\d+)ms$/.exec(line);
    if (!m) continue;
    const durationMs = Number(m[5]);
    lines.push({
      arrived: Date.parse(m[1]) - durationMs,
      method: m[2],
      path: m[3],
      status: Number(m[4]),
      durationMs,
    });
  }
  return lines;
}

/** The function's JSON log lines (other lines are skipped). */
export function parseJsonLines(text: string): Array<Record<string, unknown> & { at: number }> {
  const out: Array<Record<string, unknown> & { at: number }> = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line);
      if (typeof record.ts === "string") out.push({ ...record, at: Date.parse(record.ts) });
    } catch { /* not ours */ }
  }
  return out;
}

export interface Verdict {
  figure: string;
  value: string;
  target: string;
  /** null: a figure without a target. */
  met: boolean | null;
}

/** A figure against an upper bound: met when value < (or ≤) the bound. */
export function verdict(
  figure: string,
  value: number,
  unit: string,
  bound: number,
  inclusive = false,
): Verdict {
  const withUnit = (v: string) => unit === "" ? v : unit === "×" ? `${v}×` : `${v} ${unit}`;
  const shown = withUnit(unit === "×" ? value.toFixed(2) : round1(value));
  const limit = withUnit(String(bound));
  return {
    figure,
    value: shown,
    target: `${inclusive ? "≤" : "<"} ${limit}`,
    met: Number.isFinite(value) && (inclusive ? value <= bound : value < bound),
  };
}

function round1(v: number): string {
  return (Math.round(v * 10) / 10).toString();
}

/** The verdicts as a fixed-width table. */
export function table(rows: Verdict[]): string {
  const w = [
    Math.max(6, ...rows.map((r) => r.figure.length)),
    Math.max(5, ...rows.map((r) => r.value.length)),
    Math.max(6, ...rows.map((r) => r.target.length)),
  ];
  const line = (a: string, b: string, c: string, d: string) =>
    `${a.padEnd(w[0])}  ${b.padStart(w[1])}  ${c.padEnd(w[2])}  ${d}`;
  return [
    line("figure", "value", "target", "verdict"),
    line("-".repeat(w[0]), "-".repeat(w[1]), "-".repeat(w[2]), "-------"),
    ...rows.map((r) =>
      line(r.figure, r.value, r.target, r.met === null ? "" : r.met ? "met" : "not met")
    ),
  ].join("\n");
}
