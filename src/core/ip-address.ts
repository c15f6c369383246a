import { BlockList, isIP } from 'node:net';

/**
 * Client addresses and the `allow` / `trusted_proxies` lists of registry.toml: single
 * addresses ("10.1.2.3", "::1") or CIDR blocks ("10.0.0.0/8", "fd00::/8").
 */

export interface AddressBlock {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** One list entry, or undefined when it is not an address or block. */
export function parseAddressBlock(entry: string): AddressBlock | undefined {
  const [address = '', prefixText, ...rest] = entry.trim().split('/');
  if (rest.length > 0) return undefined;
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  if (prefixText !== undefined && !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (prefix > max) return undefined;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/**
 * An address as the lists compare it: an IPv4 client of a dual-stack socket shows up as
 * "::ffff:10.1.2.3", which must match "10.0.0.0/8".
 */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

export class AddressList {
  private readonly blocks = new BlockList();
  readonly size: number;

  /** Entries must have passed parseAddressBlock (the config schema checks them). */
  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const block = parseAddressBlock(entry);
      if (!block) throw new Error(`not an address or CIDR block: ${entry}`);
      this.blocks.addSubnet(block.address, block.prefix, block.family);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    const normalized = normalizeAddress(address);
    const version = isIP(normalized);
    if (version === 0) return false;
    return this.blocks.check(normalized, version === 4 ? 'ipv4' : 'ipv6');
  }
}
