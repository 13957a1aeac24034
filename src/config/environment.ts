// The facts about the machine that some defaults depend on. They are read once, here, and passed
// around as a plain object so that tests (and the docs table) never depend on the machine they run on.

import os from 'node:os';

/** The roles a node can start in; `start` runs NameServer, broker and proxy in one process. */
export const ROLES = ['start', 'namesrv', 'broker', 'proxy', 'controller'] as const;

/** A node's role. */
export type Role = (typeof ROLES)[number];

/** Everything a default may depend on besides other keys. */
export interface DefaultContext {
  /** The role being started. */
  readonly role: Role;
  /** `os.availableParallelism()`, at least 1. */
  readonly cores: number;
  /** The user's home directory (Java's `user.home`). */
  readonly homeDir: string;
  /** The host name (RocketMQ's `InetAddress.getLocalHost().getHostName()`). */
  readonly hostName: string;
  /** This host's preferred address (RocketMQ's `NetworkUtil.getLocalAddress()`). */
  readonly localAddress: string;
  /** The `NAMESRV_ADDR` environment variable, which RocketMQ uses as namesrvAddr's default. */
  readonly namesrvAddrEnv: string | undefined;
}

/** True for a role name. */
export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** Reads the default context from this machine and process; `overrides` replace single facts (tests use them). */
export function machineDefaultContext(role: Role, overrides: Partial<Omit<DefaultContext, 'role'>> = {}): DefaultContext {
  return {
    role,
    cores: overrides.cores ?? Math.max(1, os.availableParallelism()),
    homeDir: overrides.homeDir ?? os.homedir(),
    hostName: overrides.hostName ?? os.hostname(),
    localAddress: overrides.localAddress ?? preferredLocalAddress(),
    namesrvAddrEnv: 'namesrvAddrEnv' in overrides ? overrides.namesrvAddrEnv : process.env['NAMESRV_ADDR'],
  };
}

const PRIVATE_IPV4 = [/^10\./, /^172\.(1[6-9]|2\d|3[01])\./, /^192\.168\./, /^169\.254\./];

/** A simplified `NetworkUtil.getLocalAddress()`: a public IPv4 first, else the last private IPv4, else an IPv6 in brackets, else 127.0.0.1. */
export function preferredLocalAddress(): string {
  let interfaces: ReturnType<typeof os.networkInterfaces>;
  try {
    interfaces = os.networkInterfaces();
  } catch {
    return '127.0.0.1';
  }
  const ipv4: string[] = [];
  const ipv6: string[] = [];
  for (const addresses of Object.values(interfaces)) {
    for (const info of addresses ?? []) {
      if (info.internal) continue;
      if (info.family === 'IPv4') ipv4.push(info.address);
      else if (!info.address.startsWith('fe80:')) ipv6.push(`[${info.address}]`);
    }
  }
  const publicIpv4 = ipv4.find((a) => !PRIVATE_IPV4.some((p) => p.test(a)));
  return publicIpv4 ?? ipv4.at(-1) ?? ipv6[0] ?? '127.0.0.1';
}
