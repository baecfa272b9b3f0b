// Which backends the end-to-end client tests run on: the embedded ones (SQLite + filesystem) by
// default; PostgreSQL + Ceph RGW (a database and a bucket of their own) when the scale-out
// variant (test/scaleout/clients.test.ts) sets STOWAGE_E2E_SCALEOUT before loading them.
import { createDatabase, scaleOutEnv, uniqueBucket } from './services.js';

export async function e2eBackendEnv(label: string): Promise<Record<string, string>> {
  if (process.env.STOWAGE_E2E_SCALEOUT !== '1') return {};
  const database = await createDatabase(label);
  return scaleOutEnv(database.url, uniqueBucket(label));
}
