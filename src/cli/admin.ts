import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { ConfigError, loadConfig, type ResolvedConfig } from '../config/load.js';
import { ControlError } from '../control/errors.js';
// Types only: the clients (and what they load) are imported when a command runs, so that
// `stowage serve` does not load them.
import type { ControlClient, ListResult } from './control-client.js';

/**
 * The management commands: `stowage user|project|robot|token|key …`. By default they work on the
 * local database, found like `serve` finds it (--config, --data-dir, --metadata-path,
 * STOWAGE_* variables), acting as a system administrator. With --server URL (or STOWAGE_SERVER)
 * they call that Stowage's management API as --username (or STOWAGE_USERNAME) with the password
 * or personal access token in STOWAGE_PASSWORD, under that user's permissions.
 */
export function addAdminCommands(program: Command): void {
  const user = program.command('user').description('manage users (local database, or --server)');
  connection(user.command('add <name>').description('create a user; without --password-stdin a password is generated and printed'))
    .option('--admin', 'a system administrator')
    .option('--email <address>', 'e-mail address')
    .option('--password-stdin', 'read the password from standard input')
    .action(
      run(async (client, name: string, o: { admin?: boolean; email?: string; passwordStdin?: boolean }) => {
        const password = o.passwordStdin ? readPassword() : undefined;
        const result = await client.createUser({ name, ...(password ? { password } : {}), ...(o.admin ? { admin: true } : {}), ...(o.email ? { email: o.email } : {}) });
        say(`created user ${name}${o.admin ? ' (system administrator)' : ''}`);
        if (typeof result.password === 'string') say(`password (shown once): ${result.password}`);
        return result;
      }),
    );
  connection(user.command('passwd <name>').description('set a password (from standard input, or generated and printed)'))
    .option('--password-stdin', 'read the new password from standard input')
    .option('--current-password-stdin', 'remote, own password: read the current password, then the new one, from standard input (two lines)')
    .action(
      run(async (client, name: string, o: { passwordStdin?: boolean; currentPasswordStdin?: boolean }) => {
        let current: string | undefined;
        let password: string;
        if (o.currentPasswordStdin) [current, password] = readLines(2) as [string, string];
        else password = o.passwordStdin ? readPassword() : (await import('../auth/secrets.js')).generatePassword();
        await client.setPassword(name, { password, ...(current !== undefined ? { currentPassword: current } : {}) });
        say(`password of ${name} changed; its tokens and sessions are revoked`);
        if (!o.passwordStdin && !o.currentPasswordStdin) say(`new password (shown once): ${password}`);
      }),
    );
  connection(user.command('list').description('list users'))
    .option('--query <text>', 'names containing this')
    .action(run(async (client, o: { query?: string }) => table(await client.listUsers({ query: o.query }), ['name', 'admin', 'disabled', 'email', 'lastLoginAt'])));
  connection(user.command('disable <name>').description("disable a user (revokes the user's tokens and sessions)")).action(
    run(async (client, name: string) => {
      await client.updateUser(name, { disabled: true });
      say(`disabled ${name}`);
    }),
  );
  connection(user.command('enable <name>').description('enable a disabled user')).action(
    run(async (client, name: string) => {
      await client.updateUser(name, { disabled: false });
      say(`enabled ${name}`);
    }),
  );
  connection(user.command('delete <name>').description('delete a user')).action(
    run(async (client, name: string) => {
      await client.deleteUser(name);
      say(`deleted ${name}`);
    }),
  );

  const project = program.command('project').description('manage projects and their members (local database, or --server)');
  connection(project.command('create <name>').description('create a project (private unless --public)'))
    .option('--public', 'anyone, even anonymous, may pull')
    .option('--owner <user>', 'make this user its owner')
    .action(
      run(async (client, name: string, o: { public?: boolean; owner?: string }) => {
        const created = await client.createProject({ name, public: o.public === true, ...(o.owner ? { owner: o.owner } : {}) });
        say(`created ${o.public ? 'public' : 'private'} project ${name}${o.owner ? ` owned by ${o.owner}` : ''}`);
        return created;
      }),
    );
  connection(project.command('list').description('list projects'))
    .option('--query <text>', 'names containing this')
    .action(run(async (client, o: { query?: string }) => table(await client.listProjects({ query: o.query }), ['name', 'public', 'createdBy', 'createdAt'])));
  connection(
    project
      .command('member <project> [user] [role]')
      .description('list members; with a user and a role (owner, maintainer, developer, reader) add or change one; with role "remove", remove one'),
  ).action(
    run(async (client, name: string, member: string | undefined, role: string | undefined) => {
      if (member === undefined) return table(await client.listMembers(name), ['userName', 'role', 'createdAt']);
      if (role === undefined) throw new ControlError('invalid', 'give a role (owner, maintainer, developer, reader) or "remove"');
      if (role === 'remove') {
        await client.removeMember(name, member);
        say(`removed ${member} from ${name}`);
      } else {
        await client.setMember(name, member, role);
        say(`${member} is ${role} of ${name}`);
      }
      return undefined;
    }),
  );

  const robot = program.command('robot').description('manage robot accounts (local database, or --server)');
  connection(robot.command('create <name>').description('create a robot account; its secret is printed once'))
    .option('--project <project>', 'the project it belongs to (default: a system robot)')
    .addOption(new Option('--permission <permission...>', 'repository:<pattern>:<actions>, e.g. repository:team/**:pull,push').makeOptionMandatory())
    .option('--expires <duration>', 'lifetime, e.g. 90d (default: no expiry)')
    .option('--description <text>', 'what it is for')
    .action(
      run(async (client, name: string, o: { project?: string; permission: string[]; expires?: string; description?: string }) => {
        const result = await client.createRobot({
          name,
          permissions: o.permission,
          ...(o.project ? { project: o.project } : {}),
          ...(o.expires ? { expiresIn: o.expires } : {}),
          ...(o.description ? { description: o.description } : {}),
        });
        const created = result.robot as { name: string; id: string };
        say(`created robot ${created.name} (id ${created.id})`);
        say(`secret (shown once): ${String(result.secret)}`);
        return result;
      }),
    );
  connection(robot.command('list').description('list robot accounts'))
    .option('--project <project>', "a project's robots")
    .option('--system', 'system robots only')
    .action(
      run(async (client, o: { project?: string; system?: boolean }) =>
        table(await client.listRobots({ project: o.project, system: o.system }), ['id', 'name', 'project', 'permissions', 'expiresAt', 'lastUsedAt']),
      ),
    );
  connection(robot.command('delete <id>').description('delete a robot account')).action(
    run(async (client, id: string) => {
      await client.deleteRobot(id);
      say(`deleted robot ${id}`);
    }),
  );

  const token = program.command('token').description('manage personal access tokens (local database, or --server)');
  connection(token.command('create').description('create a personal access token; it is printed once'))
    .requiredOption('--name <name>', 'what it is for')
    .addOption(new Option('--scope <scope...>', 'api, or repository:<pattern>:<actions>').makeOptionMandatory())
    .option('--expires <duration>', 'lifetime, at most 366d (default 90d)')
    .option('--user <name>', "another user's token (administrators; required for the local database)")
    .action(
      run(async (client, o: { name: string; scope: string[]; expires?: string; user?: string }) => {
        const result = await client.createToken({ name: o.name, scopes: o.scope, ...(o.expires ? { expiresIn: o.expires } : {}), ...(o.user ? { user: o.user } : {}) });
        const created = result.token as { id: string; userName: string; expiresAt: string };
        say(`created token ${created.id} for ${created.userName}, expiring ${created.expiresAt}`);
        say(`token (shown once): ${String(result.secret)}`);
        return result;
      }),
    );
  connection(token.command('list').description('list personal access tokens'))
    .option('--user <name>', "another user's tokens (administrators)")
    .action(run(async (client, o: { user?: string }) => table(await client.listTokens(o.user), ['id', 'name', 'userName', 'scopes', 'expiresAt', 'revokedAt', 'lastUsedAt'])));
  connection(token.command('revoke <id>').description('revoke a personal access token')).action(
    run(async (client, id: string) => {
      await client.revokeToken(id);
      say(`revoked token ${id}`);
    }),
  );

  const key = program.command('key').description('token signing keys');
  connection(key.command('rotate').description('sign tokens with a new key; the old one verifies until its tokens expire')).action(
    run(async (client) => {
      const result = await client.rotateKey();
      say(`signing with new key ${String(result.kid)}`);
      return result;
    }),
  );
}

/** The options every management command takes: where the database or the server is. */
export function connection(command: Command): Command {
  return command
    .option('-c, --config <file>', 'YAML config file (or STOWAGE_CONFIG), to find the local database')
    .option('--data-dir <dir>', 'data directory of the local database (or STOWAGE_DATA_DIR)')
    .option('--metadata-path <file>', 'SQLite database file (or STOWAGE_METADATA_PATH)')
    .option('--server <url>', 'a running Stowage to manage over its API instead (or STOWAGE_SERVER)')
    .option('--username <name>', 'with --server: who you are (or STOWAGE_USERNAME); password or token in STOWAGE_PASSWORD')
    .option('--json', 'print JSON');
}

export interface ConnectionOptions {
  config?: string;
  dataDir?: string;
  metadataPath?: string;
  server?: string;
  username?: string;
  json?: boolean;
}

let jsonOutput = false;

/** Wraps a command: opens the client, runs, prints JSON with --json, closes, maps errors to exit codes. */
export function run<A extends unknown[]>(body: (client: ControlClient, ...args: A) => Promise<unknown>) {
  return runWith(open, body);
}

/** Like run, with another kind of client (opened from the same connection options). */
export function runWith<C extends { close(): Promise<void> }, A extends unknown[]>(
  opener: (options: ConnectionOptions) => Promise<C>,
  body: (client: C, ...args: A) => Promise<unknown>,
) {
  return async (...args: unknown[]) => {
    const command = args[args.length - 1] as Command;
    const options = command.opts<ConnectionOptions>();
    jsonOutput = options.json === true;
    let client: C | undefined;
    try {
      client = await opener(options);
      // commander passes the arguments, then the options, then the command.
      const result = await body(client, ...(args.slice(0, -1) as A));
      if (jsonOutput && result !== undefined) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    } catch (error) {
      if (error instanceof ControlError || error instanceof ConfigError) {
        process.stderr.write(`stowage: ${error.message}\n`);
        process.exitCode = error instanceof ConfigError || error.code === 'invalid' ? 2 : 1;
        return;
      }
      throw error;
    } finally {
      await client?.close();
    }
  };
}

/** Where the connection options point: a remote server with credentials, or the local config. */
export function connectionTarget(options: ConnectionOptions): { server: string; username: string; password: string } | { config: ResolvedConfig } {
  const server = options.server ?? process.env.STOWAGE_SERVER;
  if (server) {
    const username = options.username ?? process.env.STOWAGE_USERNAME;
    const password = process.env.STOWAGE_PASSWORD;
    if (!username || !password) throw new ControlError('invalid', 'with --server, give --username (or STOWAGE_USERNAME) and the password or token in STOWAGE_PASSWORD');
    return { server, username, password };
  }
  return { config: loadConfig({ file: options.config, flags: { dataDir: options.dataDir, 'metadata.path': options.metadataPath } }) };
}

async function open(options: ConnectionOptions): Promise<ControlClient> {
  const target = connectionTarget(options);
  const clients = await import('./control-client.js');
  return 'server' in target ? clients.remoteClient(target.server, target.username, target.password) : clients.localClient(target.config);
}

/** Informational output: to stdout, or to stderr when stdout carries JSON. */
export function say(text: string): void {
  (jsonOutput ? process.stderr : process.stdout).write(`${text}\n`);
}

/** Prints a list as a table (unless --json, which prints the returned list). */
export function table(result: ListResult, columns: string[]): ListResult {
  if (jsonOutput) return result;
  const cell = (value: unknown) => (value === null || value === undefined ? '-' : Array.isArray(value) ? value.join(' ') : String(value));
  const rows = [columns.map((c) => c.toUpperCase()), ...result.items.map((item) => columns.map((c) => cell(item[c])))];
  const widths = columns.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) process.stdout.write(`${row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]!))).join('  ')}\n`);
  return result;
}

function readLines(count: number): string[] {
  const lines = readFileSync(0, 'utf8').split(/\r?\n/);
  if (lines.length < count || lines.slice(0, count).some((l) => l === '')) throw new ControlError('invalid', `expected ${count} non-empty line(s) on standard input`);
  return lines.slice(0, count);
}

function readPassword(): string {
  return readLines(1)[0]!;
}
