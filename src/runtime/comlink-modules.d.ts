// comlink ships ESM as .mjs files without an exports map; these declarations point at its own typings.
declare module 'comlink/dist/esm/comlink.mjs' {
  export * from 'comlink/dist/esm/comlink.js';
}
declare module 'comlink/dist/esm/node-adapter.mjs' {
  import type { Endpoint } from 'comlink/dist/esm/protocol.js';
  /** Adapts a Node MessagePort (on/off listeners) to comlink's Endpoint. */
  export default function nodeEndpoint(port: unknown): Endpoint;
}
