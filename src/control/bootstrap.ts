import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { generatePassword, hashPassword } from '../auth/secrets.js';
import type { ControlStore } from '../metadata/control-store.js';

export interface BootstrapOptions {
  /** The admin's password (STOWAGE_ADMIN_PASSWORD); generated when absent. */
  password?: string;
  /** Where a generated password is written, readable by the owner only. */
  passwordFile: string;
  /** Where the one-time notice goes (the terminal). */
  print?: (text: string) => void;
}

/**
 * First start of a database without users: creates the `admin` user, once per database even
 * when several workers or nodes start together (the database decides who wins). A generated
 * password is printed once and written to a 0600 file; a given one is never printed or logged.
 */
export async function bootstrapAdmin(store: ControlStore, options: BootstrapOptions, logger: Logger): Promise<boolean> {
  // Cheap test first: hashing costs ~20 ms, and every later start finds users.
  if ((await store.users.list({}, { offset: 0, limit: 1 })).total > 0) return false;
  const password = options.password ?? generatePassword();
  const user = await store.users.createInitialAdmin({ name: 'admin', passwordHash: await hashPassword(password), admin: true });
  if (!user) return false;
  if (options.password !== undefined) {
    logger.warn({ user: 'admin' }, 'created the admin user with the password from STOWAGE_ADMIN_PASSWORD');
    return true;
  }
  await mkdir(dirname(options.passwordFile), { recursive: true });
  await writeFile(options.passwordFile, `${password}\n`, { mode: 0o600 });
  await chmod(options.passwordFile, 0o600);
  const print = options.print ?? ((text: string) => process.stderr.write(text));
  print(
    `\n  Stowage created the user "admin" with the password:\n\n      ${password}\n\n` +
      `  It is shown this once, and written to ${options.passwordFile} (readable by its owner only).\n` +
      `  Log in, change it (stowage user passwd admin), then delete that file.\n\n`,
  );
  logger.warn({ user: 'admin', passwordFile: options.passwordFile }, 'created the admin user with a generated password (written to the password file)');
  return true;
}
