// Runs once before all test files. Real clients and services are installed by the suites that
// need them (see test/support/clients.ts); nothing here may silently skip a test.
import type { TestProject } from 'vitest/node';
import { startCephRgw, startPostgres, type RunningService, type ServiceState } from './services.js';

// One PostgreSQL server and one Ceph RGW (S3) for the whole run, started together up front
// (about 2–3 s once their packages are installed) and always stopped in the teardown. A service
// that cannot start fails only the tests that use it, with the reason (see services.ts).
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started: RunningService<unknown>[] = [];
  const settle = async <T>(start: () => Promise<RunningService<T>>): Promise<ServiceState<T>> => {
    try {
      const service = await start();
      started.push(service);
      return { ok: true, info: service.info };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  };
  const [postgres, s3] = await Promise.all([settle(startPostgres), settle(startCephRgw)]);
  project.provide('services', { postgres, s3 });
  return async () => {
    await Promise.all(started.map((service) => service.stop()));
  };
}
