/** How long a readiness probe waits for each dependency. */
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Probes each dependency at once, each within a few seconds: rejects naming the first that
 * failed or did not answer (a hung object store or database must not hang /readyz).
 */
export async function probeDependencies(probes: Record<string, () => Promise<void>>): Promise<void> {
  await Promise.all(
    Object.entries(probes).map(async ([name, probe]) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${name} did not answer within ${PROBE_TIMEOUT_MS / 1000} s`)), PROBE_TIMEOUT_MS);
      });
      try {
        await Promise.race([probe(), timeout]);
      } catch (error) {
        const message = (error as Error).message;
        throw new Error(message.startsWith(name) ? message : `${name}: ${message}`, { cause: error });
      } finally {
        clearTimeout(timer);
      }
    }),
  );
}
