// The deployment examples (deploy/compose.yaml, deploy/kubernetes/*.yaml) are valid YAML and
// agree with the code: every STOWAGE_* variable they set is a real setting, the probes hit
// /healthz and /readyz on the port the nodes listen on, and the Deployment reads the ConfigMap
// and Secret that exist.
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { settings } from '../../src/config/schema.js';

const deploy = resolve(import.meta.dirname, '../../deploy');
/** Variables read outside the settings table: secrets that must never be flags, the config file. */
const ENV_ONLY = new Set(['STOWAGE_ADMIN_PASSWORD', 'STOWAGE_CONFIG']);
const known = new Set<string>([...settings.map((s) => s.env), ...ENV_ONLY]);

function parse(file: string): any[] {
  const documents = parseAllDocuments(readFileSync(file, 'utf8'));
  for (const document of documents) expect(document.errors, `${file}: ${document.errors.join('; ')}`).toEqual([]);
  return documents.map((d) => d.toJS());
}

const kubernetes = readdirSync(join(deploy, 'kubernetes'))
  .filter((f) => f.endsWith('.yaml'))
  .flatMap((f) => parse(join(deploy, 'kubernetes', f)));
const kind = (k: string) => kubernetes.filter((d) => d.kind === k);

function expectKnownSettings(names: string[], where: string): void {
  const stowage = names.filter((n) => n.startsWith('STOWAGE_'));
  expect(stowage.length, where).toBeGreaterThan(0);
  for (const name of stowage) expect(known.has(name), `${where}: ${name} is not a setting of src/config/schema.ts`).toBe(true);
}

describe('Kubernetes manifests', () => {
  it('has a Deployment, a Service, a ConfigMap and a Secret', () => {
    for (const k of ['Deployment', 'Service', 'ConfigMap', 'Secret']) expect(kind(k).length, k).toBe(1);
  });

  it('sets only real settings, with the scale-out drivers and the credentials in the Secret', () => {
    const config = kind('ConfigMap')[0].data as Record<string, string>;
    const secret = kind('Secret')[0].stringData as Record<string, string>;
    const deployment = kind('Deployment')[0];
    const container = deployment.spec.template.spec.containers[0];
    const env = [...Object.keys(config), ...Object.keys(secret), ...(container.env ?? []).map((e: { name: string }) => e.name)];
    expectKnownSettings(env, 'kubernetes');
    expect(config.STOWAGE_METADATA_DRIVER).toBe('postgres');
    expect(config.STOWAGE_STORAGE_DRIVER).toBe('s3');
    for (const name of ['STOWAGE_METADATA_URL', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']) expect(Object.keys(secret), name).toContain(name);
    for (const name of ['STOWAGE_METADATA_URL', 'AWS_SECRET_ACCESS_KEY', 'STOWAGE_ADMIN_PASSWORD']) expect(Object.keys(config), `${name} must not be in the ConfigMap`).not.toContain(name);
    // The Deployment reads exactly these objects.
    expect(container.envFrom).toEqual([{ configMapRef: { name: kind('ConfigMap')[0].metadata.name } }, { secretRef: { name: kind('Secret')[0].metadata.name } }]);
  });

  it('probes /healthz and /readyz on the port the nodes listen on, and the Service selects the pods', () => {
    const config = kind('ConfigMap')[0].data as Record<string, string>;
    const deployment = kind('Deployment')[0];
    const container = deployment.spec.template.spec.containers[0];
    const port = container.ports.find((p: { name: string }) => p.name === 'http');
    expect(String(port.containerPort)).toBe(config.STOWAGE_LISTEN!.split(':').pop());
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    // A readiness probe must outlast /readyz's own 5 s check of each dependency.
    expect(container.readinessProbe.timeoutSeconds).toBeGreaterThan(5);
    const shutdown = Number(/^(\d+)s$/.exec(config.STOWAGE_SHUTDOWN_TIMEOUT ?? '30s')![1]);
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(shutdown);
    const service = kind('Service')[0];
    expect(service.spec.selector).toEqual(deployment.spec.template.metadata.labels);
    expect(service.spec.ports[0].targetPort).toBe('http');
  });
});

describe('compose file', () => {
  const [compose] = parse(join(deploy, 'compose.yaml'));

  it('runs several nodes on PostgreSQL and S3 with real settings, checked through /readyz', () => {
    const node = compose.services.stowage;
    expect(node.deploy.replicas).toBeGreaterThan(1);
    expectKnownSettings(Object.keys(node.environment), 'compose');
    expect(node.environment.STOWAGE_METADATA_DRIVER).toBe('postgres');
    expect(node.environment.STOWAGE_STORAGE_DRIVER).toBe('s3');
    // A string: podman-compose 1.0.3 breaks on a list-form test with replicas (see compose.yaml).
    expect(typeof node.healthcheck.test).toBe('string');
    expect(node.healthcheck.test).toContain('/readyz');
    expect(node.build.dockerfile).toBe('deploy/Dockerfile');
    expect(readFileSync(join(deploy, 'Dockerfile'), 'utf8')).toMatch(/ENTRYPOINT \["node", "bin\/stowage.js"\]/);
    const port = node.environment.STOWAGE_LISTEN.split(':').pop();
    const nginx = readFileSync(join(deploy, 'nginx.conf'), 'utf8');
    expect(nginx).toContain('set $node stowage;');
    expect(nginx).toContain(`proxy_pass http://$node:${port};`);
  });

  it('has nginx resolve the nodes at run time and the nodes believe it', () => {
    // nginx.conf names the nodes in a variable, which needs a resolver: the lb command writes it.
    const lb = compose.services.lb;
    expect(lb.command.join(' ')).toContain('/etc/nginx/conf.d/resolver.conf');
    expect(lb.volumes).toContain('./nginx.conf:/etc/nginx/conf.d/default.conf:ro');
    expect(lb.depends_on).toEqual({ stowage: { condition: 'service_healthy' } });
    // Docker's and podman's networks are private ranges (172.16/12, 192.168/16, 10.89/16).
    expect(compose.services.stowage.environment.STOWAGE_TRUSTED_PROXIES).toBe('uniquelocal');
  });
});
