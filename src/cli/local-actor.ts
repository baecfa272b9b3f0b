import { userInfo } from 'node:os';
import { systemActor, type Actor } from '../auth/principal.js';

/** The actor of a command run on the local installation: `cli:<login name>`, a system administrator. */
export function localActor(): Actor {
  let name = 'unknown';
  try {
    name = userInfo().username;
  } catch {
    // no user name (container without a passwd entry)
  }
  return systemActor(`cli:${name}`);
}
