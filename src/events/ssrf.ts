import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/**
 * Addresses a webhook may not reach unless `webhooks.allowPrivateTargets` is set: loopback,
 * "this network", private (RFC 1918), carrier-grade NAT, link-local (cloud metadata services live
 * there), multicast, reserved and broadcast; in IPv6 loopback, unspecified, unique-local,
 * link-local, multicast, and IPv4-mapped or NAT64 forms of the above.
 */
const forbidden = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  forbidden.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  forbidden.addSubnet(network, prefix, 'ipv6');
}

/** Whether `address` (an IP literal) is loopback, private, link-local, multicast or reserved. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return forbidden.check(address, 'ipv4');
  if (family !== 6) return true;
  const lower = address.toLowerCase();
  // IPv4-mapped (::ffff:a.b.c.d) and NAT64 (64:ff9b::a.b.c.d) carry an IPv4 address to check.
  const embedded = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (embedded) return forbidden.check(embedded[1]!, 'ipv4');
  const mappedHex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (mappedHex) {
    const value = (parseInt(mappedHex[1]!, 16) << 16) | parseInt(mappedHex[2]!, 16);
    return forbidden.check([value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.'), 'ipv4');
  }
  return forbidden.check(lower, 'ipv6');
}

export class TargetRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TargetRefusedError';
  }
}

/** An address that passed the check; the request connects to exactly this address. */
export interface PinnedTarget {
  address: string;
  family: 4 | 6;
}

/**
 * Resolves a webhook's host once and checks every address it resolves to (one bad address is
 * enough to refuse: DNS may answer differently next time). The caller connects to the returned
 * address, so a second resolution (DNS rebinding) cannot send the request elsewhere.
 */
export async function resolveTarget(hostname: string, allowPrivate: boolean): Promise<PinnedTarget> {
  const host = hostname.replace(/^\[|\]$/g, '');
  const literal = isIP(host);
  const addresses = literal ? [{ address: host, family: literal }] : await lookup(host, { all: true, verbatim: true });
  if (addresses.length === 0) throw new TargetRefusedError(`${host} does not resolve`);
  if (!allowPrivate) {
    const bad = addresses.find((a) => isPrivateAddress(a.address));
    if (bad) {
      throw new TargetRefusedError(
        `${host} resolves to ${bad.address}, a loopback, private, link-local or multicast address; set webhooks.allowPrivateTargets: true (STOWAGE_WEBHOOKS_ALLOW_PRIVATE=true) to allow such targets`,
      );
    }
  }
  const first = addresses[0]!;
  return { address: first.address, family: first.family === 6 ? 6 : 4 };
}
