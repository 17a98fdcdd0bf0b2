// A deadline for any promise: the first of the work and the timer wins; a late failure is swallowed.

/**
 * Resolves or rejects with `work`, unless `ms` pass first: then rejects with `onTimeout()` and calls
 * `onExpire` (to cancel the work). A rejection of `work` that arrives after the deadline is ignored,
 * never an unhandled rejection.
 */
export function withDeadline<T>(
  work: Promise<T>,
  ms: number,
  onTimeout: () => Error,
  onExpire?: () => void,
): Promise<T> {
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new RangeError(`deadline must be a positive number of milliseconds, got ${ms}`);
  }
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      try {
        onExpire?.();
      } catch {
        // Cancelling is best effort: a throwing hook must not become an uncaught timer error.
      }
      reject(onTimeout());
    }, ms);
    work.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}
