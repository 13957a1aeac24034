/** The Proxy's route cache: TTL, bound, and forgetting the routes of a broker that failed over. */
import { describe, expect, it } from 'vitest';
import { proxyRouteOf, RouteCache } from '../../../src/net/grpc/proxy-routes.ts';
import type { TopicRouteData } from '../../../src/net/remoting/namesrv-protocol.ts';

function routeData(brokers: Record<string, string>): TopicRouteData {
  return {
    queueDatas: Object.keys(brokers).map((brokerName) => ({ brokerName, readQueueNums: 4, writeQueueNums: 4, perm: 6, topicSysFlag: 0 })),
    brokerDatas: Object.entries(brokers).map(([brokerName, addr]) => ({ cluster: 'c', brokerName, brokerAddrs: { '0': addr }, enableActingMaster: false })),
    filterServerTable: {},
  };
}

describe('RouteCache', () => {
  it('serves a route until its TTL, then forgets it', () => {
    const cache = new RouteCache(1_000, 10);
    cache.put(proxyRouteOf('T', routeData({ a: '127.0.0.1:1' }), 'NORMAL'), 0);
    expect(cache.get('T', 999)?.brokers.get('a')?.masterAddr).toBe('127.0.0.1:1');
    expect(cache.get('T', 1_000)).toBeUndefined();
  });

  it('serves a route with a masterless broker set for at most a second', () => {
    const cache = new RouteCache(60_000, 10);
    const data = routeData({ a: '127.0.0.1:1' });
    const masterless = { ...data, brokerDatas: data.brokerDatas.map((broker) => ({ ...broker, brokerAddrs: { '1': '127.0.0.1:9' } })) };
    cache.put(proxyRouteOf('T', masterless, 'NORMAL'), 0);
    expect(cache.get('T', 999)).toBeDefined();
    expect(cache.get('T', 1_000)).toBeUndefined();
  });

  it('keeps at most topicsMax routes, evicting the oldest', () => {
    const cache = new RouteCache(60_000, 2);
    for (const topic of ['A', 'B', 'C']) cache.put(proxyRouteOf(topic, routeData({ a: '127.0.0.1:1' }), 'NORMAL'), 0);
    expect(cache.get('A', 1)).toBeUndefined();
    expect(cache.get('B', 1)).toBeDefined();
    expect(cache.get('C', 1)).toBeDefined();
  });

  it('forgets exactly the routes whose master is a failed broker address', () => {
    const cache = new RouteCache(60_000, 10);
    cache.put(proxyRouteOf('OnA', routeData({ a: '127.0.0.1:1' }), 'NORMAL'), 0);
    cache.put(proxyRouteOf('OnAB', routeData({ a: '127.0.0.1:1', b: '127.0.0.1:2' }), 'NORMAL'), 0);
    cache.put(proxyRouteOf('OnB', routeData({ b: '127.0.0.1:2' }), 'NORMAL'), 0);
    cache.forgetBroker('127.0.0.1:1');
    expect(cache.get('OnA', 1)).toBeUndefined();
    expect(cache.get('OnAB', 1)).toBeUndefined();
    expect(cache.get('OnB', 1)?.brokers.get('b')?.masterAddr).toBe('127.0.0.1:2');
    expect(cache.brokerAddr('a', 1)).toBeUndefined();
    expect(cache.brokerAddr('b', 1)).toBe('127.0.0.1:2');
  });
});
