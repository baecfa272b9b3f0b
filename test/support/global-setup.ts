// Runs once before all test files. Real clients and services are installed by the suites that
// need them (see test/support/clients.ts); nothing here may silently skip a test.
export default async function setup(): Promise<void> {}
