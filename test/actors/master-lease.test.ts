/** The shared master-lease cell: none, closed, a deadline; and one cell seen by another thread. */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { createMasterLease, leaseGuardedAnswer, masterLeaseAllows, publishMasterLease } from '../../src/actors/master-lease.ts';
import { createRequest, createResponse, RequestCode, ResponseCode } from '../../src/net/remoting/remoting-command.ts';

describe('master lease cell', () => {
  it('lets every answer through without a cell, none while closed, and only before the deadline', () => {
    expect(masterLeaseAllows(undefined, 123)).toBe(true);
    const cell = createMasterLease();
    expect(masterLeaseAllows(cell, 1)).toBe(false);
    publishMasterLease(cell, 1_000);
    expect(masterLeaseAllows(cell, 999)).toBe(true);
    expect(masterLeaseAllows(cell, 1_000)).toBe(false);
    publishMasterLease(cell, 'closed');
    expect(masterLeaseAllows(cell, 999)).toBe(false);
  });

  it('turns a stored put\'s answer into SERVICE_NOT_AVAILABLE, same opaque, once the lease ran out', () => {
    const request = createRequest({ code: RequestCode.SEND_MESSAGE_V2, opaque: 42, extFields: {} });
    const stored = createResponse(request, ResponseCode.SUCCESS, undefined, { extFields: { msgId: 'M', queueOffset: '7' } });
    const cell = createMasterLease();
    publishMasterLease(cell, 1_000);
    expect(leaseGuardedAnswer(cell, stored, 999)).toBe(stored);
    const refused = leaseGuardedAnswer(cell, stored, 1_000);
    expect(refused.code).toBe(ResponseCode.SERVICE_NOT_AVAILABLE);
    expect(refused.opaque).toBe(42);
    expect(refused.extFields).toEqual({});
    expect(leaseGuardedAnswer(undefined, stored, 1_000_000)).toBe(stored);
  });

  it('is one cell for every thread: a deadline published here is read there', async () => {
    const cell = createMasterLease();
    publishMasterLease(cell, 5_000);
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const view = new BigInt64Array(workerData);
       parentPort.postMessage(String(Atomics.load(view, 0)));
       Atomics.store(view, 0, 0n);`,
      { eval: true, workerData: cell },
    );
    const seen = await new Promise<string>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await new Promise((resolve) => worker.once('exit', resolve));
    expect(seen).toBe('5000');
    // The worker closed it; this thread sees that.
    expect(masterLeaseAllows(cell, 1)).toBe(false);
  });
});
