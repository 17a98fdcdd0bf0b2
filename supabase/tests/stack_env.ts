// Integration tests need the local stack (local/stack up, its env loaded as local/test does).
// Without it they are skipped with one line saying why, so unit runs need no stack.

const announced = new Set<string>();

/** The names among `needs` that the environment does not set. */
export function missingSettings(needs: readonly string[]): string[] {
  return needs.filter((name) => !Deno.env.get(name));
}

/** A value the stack publishes; throws with a clear reason when it is absent. */
export function stackSetting(name: string): string {
  const value = Deno.env.get(name);
  if (!value) {
    throw new Error(
      `${name} is not set: run this through local/test (it starts the stack and loads its env)`,
    );
  }
  return value;
}

/** Deno.test that is ignored, with one line of reason per missing set, when the stack is absent. */
export function stackTest(
  definition: Omit<Deno.TestDefinition, "ignore"> & { needs: readonly string[] },
): void {
  const { needs, ...test } = definition;
  const missing = missingSettings(needs);
  if (missing.length > 0) {
    const reason = `skipped: no local stack (${missing.join(", ")} unset; local/test starts one)`;
    if (!announced.has(reason)) {
      announced.add(reason);
      console.log(reason);
    }
  }
  Deno.test({ ...test, ignore: missing.length > 0 });
}
