// Address lists as RocketMQ writes them: `host:port[;host:port...]`, as in namesrvAddr and
// controllerAddr. RocketMQ splits each entry at its last ':' (NetworkUtil.string2SocketAddress),
// so a bracketed IPv6 host such as `[::1]:9876` works; we accept that form and host names.

/** One `host:port` entry of an address list. */
export interface HostPort {
  /** Host name or IP address; an IPv6 address keeps its brackets. */
  readonly host: string;
  /** Port number 0..65535. */
  readonly port: number;
}

/** The most entries an address list may have; a real cluster has a handful of NameServers. */
export const ADDRESS_LIST_ENTRIES_MAX = 64;

const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?$/;
const IPV6_BRACKETED = /^\[[0-9A-Fa-f:.]+\]$/;
const PORT_TEXT = /^\d{1,5}$/;
const PORT_MAX = 65535;

/** Parses one `host:port` entry, or returns undefined when it is malformed. */
export function parseHostPort(entry: string): HostPort | undefined {
  const split = entry.lastIndexOf(':');
  if (split <= 0) return undefined;
  const host = entry.slice(0, split);
  const portText = entry.slice(split + 1);
  if (!PORT_TEXT.test(portText)) return undefined;
  const port = Number(portText);
  if (port > PORT_MAX) return undefined;
  if (!HOST_NAME.test(host) && !IPV6_BRACKETED.test(host)) return undefined;
  return { host, port };
}

/** Parses `host:port[;host:port...]`; returns undefined when any entry is malformed or the list is empty or too long. */
export function parseAddressList(text: string): readonly HostPort[] | undefined {
  const entries = text.split(';');
  if (entries.length === 0 || entries.length > ADDRESS_LIST_ENTRIES_MAX) return undefined;
  const parsed: HostPort[] = [];
  for (const entry of entries) {
    const hostPort = parseHostPort(entry.trim());
    if (hostPort === undefined) return undefined;
    parsed.push(hostPort);
  }
  return parsed;
}
