// The authorization matrix: every kind of principal × every operation (registry API and
// management API) × a private and a public project, each asserted allowed or denied.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { descriptorOf, sha256, type Response, type TestApp } from '../support/http-app.js';
import { ADMIN, addProject, addUser, api, apiOk, bearer, createAuthApp, tokenFor, type Creds } from '../support/auth.js';

type Capability = 'pull' | 'push' | 'delete' | 'read' | 'members' | 'admin';
type Project = 'priv' | 'pub';

interface Principal {
  name: string;
  creds: Creds | null;
  /** What it may do in each project (the expectation). */
  can: Record<Project, Capability[]>;
  /** System administrator rights (users, project creation, whole audit log). */
  system?: boolean;
  /** May push to the scratch project (the target of mounts). */
  scratch?: boolean;
}

const all: Capability[] = ['pull', 'push', 'delete', 'read', 'members', 'admin'];
const both = (caps: Capability[]): Record<Project, Capability[]> => ({ priv: caps, pub: caps });

const principals: Principal[] = [
  { name: 'anonymous', creds: null, can: { priv: [], pub: ['pull', 'read'] } },
  { name: 'admin', creds: ADMIN, can: both(all), system: true, scratch: true },
  { name: 'owner', creds: null, can: both(all), scratch: true },
  { name: 'maintainer', creds: null, can: both(['pull', 'push', 'delete', 'read', 'members']), scratch: true },
  { name: 'developer', creds: null, can: both(['pull', 'push', 'read', 'members']), scratch: true },
  { name: 'reader', creds: null, can: both(['pull', 'read', 'members']), scratch: true },
  { name: 'outsider', creds: null, can: { priv: [], pub: ['pull', 'read'] }, scratch: true },
  // Robots of project priv; on the public project they pull like anyone.
  { name: 'robot-pull', creds: null, can: { priv: ['pull'], pub: ['pull', 'read'] } },
  { name: 'robot-push', creds: null, can: { priv: ['pull', 'push'], pub: ['pull', 'read'] } },
  // The developer through a personal access token limited to pulling (no `api` scope).
  { name: 'pat-pull', creds: null, can: both(['pull']) },
];

let app: TestApp;
const layers: Record<Project, string> = { priv: '', pub: '' };
const manifests: Record<Project, string> = { priv: '', pub: '' };
/** Per principal and project: an unreferenced blob it may try to delete, and a tag. */
const victims = new Map<string, { blob: string; tag: string }>();

async function asAdmin(method: string, url: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Response> {
  const scope = `repository:${url.split('/').slice(2, 4).join('/')}:pull,push`;
  return app.inject({ method: method as 'GET', url, payload: body, headers: { ...bearer(await tokenFor(app, ADMIN, [scope])), ...headers } });
}

beforeAll(async () => {
  app = await createAuthApp();
  const roles: Record<string, string> = { owner: 'owner', maintainer: 'maintainer', developer: 'developer', reader: 'reader' };
  for (const principal of principals.filter((p) => p.creds === null && p.name in roles || p.name === 'outsider')) {
    principal.creds = await addUser(app, principal.name);
  }
  await addUser(app, 'extra');
  await addProject(app, 'priv', { members: roles });
  await addProject(app, 'pub', { public: true, members: roles });
  await addProject(app, 'scratch', { members: Object.fromEntries(['owner', 'maintainer', 'developer', 'reader', 'outsider'].map((n) => [n, 'developer'])) });

  const robotPull = await apiOk(app, 'POST', '/robots', { as: ADMIN, body: { name: 'puller', project: 'priv', permissions: ['repository:priv/**:pull'] } });
  const robotPush = await apiOk(app, 'POST', '/robots', { as: ADMIN, body: { name: 'pusher', project: 'priv', permissions: ['repository:priv/**:pull,push'] } });
  principals.find((p) => p.name === 'robot-pull')!.creds = { username: robotPull.robot.name, password: robotPull.secret };
  principals.find((p) => p.name === 'robot-push')!.creds = { username: robotPush.robot.name, password: robotPush.secret };
  const developer = principals.find((p) => p.name === 'developer')!.creds!;
  const pat = await apiOk(app, 'POST', '/tokens', { as: developer, body: { name: 'pull-only', scopes: ['repository:**:pull'] } });
  principals.find((p) => p.name === 'pat-pull')!.creds = { username: 'developer', password: pat.secret };

  for (const project of ['priv', 'pub'] as const) {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, p: project }));
    const layer = randomBytes(100);
    for (const blob of [config, layer]) expect((await asAdmin('POST', `/v2/${project}/app/blobs/uploads/?digest=${sha256(blob)}`, blob)).statusCode).toBe(201);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: descriptorOf('application/vnd.oci.image.config.v1+json', config),
        layers: [descriptorOf('application/vnd.oci.image.layer.v1.tar+gzip', layer)],
      }),
    );
    const headers = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    expect((await asAdmin('PUT', `/v2/${project}/app/manifests/v1`, manifest, headers)).statusCode).toBe(201);
    layers[project] = sha256(layer);
    manifests[project] = sha256(manifest);
    for (const principal of principals) {
      const blob = randomBytes(50);
      const tag = `t-${principal.name}`;
      expect((await asAdmin('POST', `/v2/${project}/app/blobs/uploads/?digest=${sha256(blob)}`, blob)).statusCode).toBe(201);
      expect((await asAdmin('PUT', `/v2/${project}/app/manifests/${tag}`, manifest, headers)).statusCode).toBe(201);
      victims.set(`${principal.name}/${project}`, { blob: sha256(blob), tag });
    }
  }
}, 120_000);

afterAll(async () => {
  await app?.cleanup();
});

/** A token with these scopes for the principal (anonymous too: the anonymous token). */
async function token(principal: Principal, scopes: string[]): Promise<Record<string, string>> {
  return bearer(await tokenFor(app, principal.creds, scopes));
}

async function registryStatuses(principal: Principal, project: Project): Promise<Record<string, number>> {
  const repo = `${project}/app`;
  const victim = victims.get(`${principal.name}/${project}`)!;
  const status = async (method: string, url: string, scopes: string[], payload?: Buffer) =>
    (await app.inject({ method: method as 'GET', url, payload, headers: await token(principal, scopes) })).statusCode;
  const pull = [`repository:${repo}:pull`];
  const target = `scratch/${principal.name}`;
  const blob = randomBytes(20);
  return {
    'GET manifest': await status('GET', `/v2/${repo}/manifests/v1`, pull),
    'HEAD blob': await status('HEAD', `/v2/${repo}/blobs/${layers[project]}`, pull),
    'GET tags': await status('GET', `/v2/${repo}/tags/list`, pull),
    'GET referrers': await status('GET', `/v2/${repo}/referrers/${manifests[project]}`, pull),
    'push blob': await status('POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(blob)}`, [`repository:${repo}:pull,push`], blob),
    'DELETE blob': await status('DELETE', `/v2/${repo}/blobs/${victim.blob}`, [`repository:${repo}:delete`]),
    'DELETE tag': await status('DELETE', `/v2/${repo}/manifests/${victim.tag}`, [`repository:${repo}:delete`]),
    mount: await status('POST', `/v2/${target}/blobs/uploads/?mount=${layers[project]}&from=${repo}`, [`repository:${target}:pull,push`, `repository:${repo}:pull`]),
  };
}

function expectedRegistry(principal: Principal, project: Project): Record<string, number> {
  const can = principal.can[project];
  const pull = can.includes('pull') ? 200 : 401;
  return {
    'GET manifest': pull,
    'HEAD blob': pull,
    'GET tags': pull,
    'GET referrers': pull,
    'push blob': can.includes('push') ? 201 : 401,
    'DELETE blob': can.includes('delete') ? 202 : 401,
    'DELETE tag': can.includes('delete') ? 202 : 401,
    // Mounting needs push on the target and pull on the source; without pull, a plain upload starts.
    mount: !principal.scratch ? 401 : can.includes('pull') ? 201 : 202,
  };
}

async function apiStatuses(principal: Principal, project: Project): Promise<Record<string, number | boolean>> {
  const as = principal.creds ?? undefined;
  const status = async (method: string, path: string, body?: unknown) => (await api(app, method, path, { as, body })).statusCode;
  const victim = victims.get(`${principal.name}/${project}`)!;
  const listed = await api(app, 'GET', `/repositories?project=${project}`, { as });
  return {
    'GET project': await status('GET', `/projects/${project}`),
    'GET members': await status('GET', `/projects/${project}/members`),
    'PATCH project': await status('PATCH', `/projects/${project}`, { public: project === 'pub' }),
    'PUT member': await status('PUT', `/projects/${project}/members/extra`, { role: 'reader' }),
    'POST robot': await status('POST', '/robots', { name: `r-${principal.name}`, project, permissions: [`repository:${project}/**:pull`] }),
    'GET repositories lists it': listed.statusCode === 200 && (listed.json().items as { name: string }[]).some((r) => r.name === `${project}/app`),
    'GET repository': await status('GET', `/repositories/${project}/app`),
    'GET tags': await status('GET', `/repositories/${project}/app/-/tags`),
    'DELETE tag': await status('DELETE', `/repositories/${project}/app/-/tags/api-${victim.tag}`),
    'GET audit of project': await status('GET', `/audit?project=${project}`),
    'GET users': await status('GET', '/users'),
    'POST user': await status('POST', '/users', { name: `made-by-${principal.name}-${project}`.replace('$', '') }),
    'DELETE user': await status('DELETE', `/users/extra-${project}-missing`),
    'GET system robots': await status('GET', '/robots?system=true'),
    'GET keys': await status('GET', '/keys'),
    'POST project': await status('POST', '/projects', { name: `new-${principal.name}-${project}` }),
  };
}

function expectedApi(principal: Principal, project: Project): Record<string, number | boolean> {
  const can = principal.can[project];
  const anonymous = principal.creds === null;
  const refused = anonymous ? 401 : 403;
  /** Denied: 404 when the project is not even visible, else 401/403. */
  const denied = (visible: boolean) => (visible ? refused : 404);
  const read = can.includes('read');
  return {
    'GET project': read ? 200 : 404,
    'GET members': can.includes('members') ? 200 : denied(read),
    'PATCH project': can.includes('admin') ? 200 : denied(read),
    'PUT member': can.includes('admin') ? 204 : denied(read),
    'POST robot': can.includes('admin') ? 201 : refused,
    'GET repositories lists it': can.includes('pull'),
    'GET repository': can.includes('pull') ? 200 : anonymous ? 401 : 404,
    'GET tags': can.includes('pull') ? 200 : anonymous ? 401 : 404,
    'DELETE tag': can.includes('delete') ? 204 : can.includes('pull') ? 403 : anonymous ? 401 : 404,
    'GET audit of project': can.includes('admin') ? 200 : refused,
    'GET users': principal.system ? 200 : refused,
    'POST user': principal.system ? 201 : refused,
    'DELETE user': principal.system ? 404 : refused,
    'GET system robots': principal.system ? 200 : refused,
    'GET keys': principal.system ? 200 : refused,
    'POST project': principal.system ? 201 : refused,
  };
}

describe('authorization matrix', () => {
  for (const principal of principals) {
    for (const project of ['priv', 'pub'] as const) {
      it(`${principal.name} on a ${project === 'priv' ? 'private' : 'public'} project: registry API`, async () => {
        expect(await registryStatuses(principal, project)).toEqual(expectedRegistry(principal, project));
      });

      it(`${principal.name} on a ${project === 'priv' ? 'private' : 'public'} project: management API`, async () => {
        // A tag for the API's delete (the registry test deleted the other one).
        const victim = victims.get(`${principal.name}/${project}`)!;
        const manifest = await app.inject({ method: 'GET', url: `/v2/${project}/app/manifests/v1`, headers: await token(principals[1]!, [`repository:${project}/app:pull`]) });
        expect((await asAdmin('PUT', `/v2/${project}/app/manifests/api-${victim.tag}`, manifest.rawPayload, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })).statusCode).toBe(201);
        expect(await apiStatuses(principal, project)).toEqual(expectedApi(principal, project));
      });
    }

    it(`${principal.name}: the catalog lists exactly the repositories it may pull`, async () => {
      const response = await app.get('/v2/_catalog', await token(principal, ['registry:catalog:*']));
      expect(response.statusCode).toBe(200);
      const listed = (response.json().repositories as string[]).filter((name) => name === 'priv/app' || name === 'pub/app');
      expect(listed).toEqual((['priv', 'pub'] as const).filter((p) => principal.can[p].includes('pull')).map((p) => `${p}/app`));
    });
  }

  it('anonymous requests without any token: pull from public projects only', async () => {
    expect((await app.get('/v2/pub/app/manifests/v1')).statusCode).toBe(200);
    expect((await app.head(`/v2/pub/app/blobs/${layers.pub}`)).statusCode).toBe(200);
    expect((await app.get('/v2/priv/app/manifests/v1')).statusCode).toBe(401);
    expect((await app.post('/v2/pub/app/blobs/uploads/')).statusCode).toBe(401);
    expect((await app.inject({ method: 'DELETE', url: '/v2/pub/app/manifests/v1' })).statusCode).toBe(401);
  });

  it('pushing to a project that does not exist creates it only for those who may create projects', async () => {
    const developer = principals.find((p) => p.name === 'developer')!;
    const denied = await app.post('/v2/newproj/app/blobs/uploads/', undefined, await token(developer, ['repository:newproj/app:pull,push']));
    expect(denied.statusCode).toBe(401);
    const created = await app.post('/v2/newproj/app/blobs/uploads/', undefined, await token(principals[1]!, ['repository:newproj/app:pull,push']));
    expect(created.statusCode).toBe(202);
    expect(await apiOk(app, 'GET', '/projects/newproj', { as: ADMIN })).toMatchObject({ name: 'newproj', public: false, createdBy: 'admin' });

    const open = await createAuthApp({ flags: { 'auth.projectCreation': 'users' } });
    try {
      const carol = await addUser(open, 'carol');
      const push = await open.post('/v2/carolsproj/app/blobs/uploads/', undefined, bearer(await tokenFor(open, carol, ['repository:carolsproj/app:pull,push'])));
      expect(push.statusCode).toBe(202);
      expect((await apiOk(open, 'GET', '/projects/carolsproj/members', { as: carol })).items).toMatchObject([{ userName: 'carol', role: 'owner' }]);
      expect((await apiOk(open, 'GET', '/audit?action=project.create', { as: ADMIN })).items[0]).toMatchObject({ actor: 'carol', target: 'carolsproj', detail: { via: 'push' } });
      // A token granted push because the project did not exist; someone else creates it first:
      // the push is then checked against that project's members, and refused.
      const dave = await addUser(open, 'dave');
      const early = bearer(await tokenFor(open, carol, ['repository:race/app:pull,push']));
      await apiOk(open, 'POST', '/projects', { as: dave, body: { name: 'race' } });
      const late = await open.post('/v2/race/app/blobs/uploads/', undefined, early);
      expect(late.statusCode).toBe(403);
      expect(late.json().errors[0].code).toBe('DENIED');
    } finally {
      await open.cleanup();
    }
  });

  it('records pulls, pushes, deletions, tag deletions and logins in the audit log', async () => {
    const entries = (await apiOk(app, 'GET', '/audit?project=priv&page_size=500', { as: ADMIN })).items as { actor: string; action: string; target: string; result: string; address: string }[];
    const has = (actor: string, action: string, target?: string) =>
      entries.some((e) => e.actor === actor && e.action === action && (target === undefined || e.target === target) && e.result === 'success' && e.address === '127.0.0.1');
    expect(has('reader', 'manifest.pull', 'priv/app:v1')).toBe(true);
    expect(has('admin', 'manifest.push', 'priv/app:v1')).toBe(true);
    expect(has('maintainer', 'tag.delete', 'priv/app:t-maintainer')).toBe(true);
    expect(has('owner', 'blob.delete')).toBe(true);
    expect(has('admin', 'member.set', 'extra')).toBe(true);
    expect(has('robot$priv+puller', 'manifest.pull')).toBe(true);
    expect(entries.some((e) => e.action === 'manifest.pull' && e.actor === 'outsider')).toBe(false);
    const logins = (await apiOk(app, 'GET', '/audit?action=login&actor=reader', { as: ADMIN })).items as { result: string; detail: { method: string } }[];
    expect(logins.length).toBeGreaterThan(0);
    expect(logins.some((e) => e.result === 'success' && e.detail.method === 'token')).toBe(true);
  });
});
