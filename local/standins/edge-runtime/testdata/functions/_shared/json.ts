// Fixture helper shared by the test functions (a `_shared` folder is not itself a function).
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** One JSON object per line, as the project's functions log. */
export function logLine(fields: Record<string, unknown>): void {
  console.log(JSON.stringify(fields));
}
