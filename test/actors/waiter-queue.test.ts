import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { WaiterQueue } from '../../src/actors/waiter-queue.ts';

describe('WaiterQueue', () => {
  it('releases waiters in the order they came, across compactions', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.nat(3)), { maxLength: 400 }), (steps) => {
        const queue = new WaiterQueue<{ endOffset: number; id: number }>('test waiters');
        const model: number[] = [];
        let offset = 0;
        let id = 0;
        for (const [grow, releases] of steps) {
          // Many pushes per step, so that the released front passes the compaction bound.
          for (let k = 0; k < 8; k++) {
            offset += grow;
            queue.push({ endOffset: offset, id });
            model.push(id++);
          }
          for (let k = 0; k < releases * 4 && model.length > 0; k++) expect(queue.shift().id).toBe(model.shift());
          expect(queue.length).toBe(model.length);
          expect(queue.first()?.id).toBe(model[0]);
        }
      }),
      { numRuns: 100 },
    );
  });

  it('refuses a waiter out of log order and a release from an empty queue', () => {
    const queue = new WaiterQueue<{ endOffset: number }>('test waiters');
    queue.push({ endOffset: 10 });
    expect(() => queue.push({ endOffset: 9 })).toThrow(/test waiters are in log order/);
    queue.shift();
    expect(queue.length).toBe(0);
    expect(queue.first()).toBeUndefined();
    expect(() => queue.shift()).toThrow(/empty queue of test waiters/);
    // Once empty, any offset may start the order again.
    queue.push({ endOffset: 1 });
    expect(queue.length).toBe(1);
  });
});
