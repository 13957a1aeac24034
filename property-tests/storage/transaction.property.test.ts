/**
 * Property: whatever mix of half messages (producers that will commit, roll back, or never answer),
 * END_TRANSACTION requests (the producer's own outcome, the opposite one as a confused producer would
 * send, as a check answer or not), answers to CHECK_TRANSACTION_STATE (some lost), producers going
 * offline, clock advances, clean restarts and kill -9 crashes at any turn (the store directory copied
 * as it is on disk at that instant, pending requests and answers lost) happens, under a simulated clock
 * and against a real store (SYNC_FLUSH, so an answered put is in the files), the broker's transactions
 * behave like this model:
 * - a transaction's message is in its real topic at most once, at every step;
 * - it is there exactly when it was committed: a SUCCESS answer to a COMMIT means it is there and stays,
 *   a SUCCESS answer to a ROLLBACK means it never is; no transaction gets SUCCESS for both;
 * - it is there only if some COMMIT was sent for it, and never when it was discarded;
 * - every op message about a transaction names the same outcome, and the outcome matches the topics
 *   (COMMIT: delivered; ROLLBACK: neither delivered nor discarded; DISCARD: copied to
 *   TRANS_CHECK_MAX_TIME_TOPIC, not delivered);
 * - liveness: once the producers come back and answer every check, every transaction ends: a producer
 *   that commits (and was never contradicted) gets its message delivered unless its checks ran out
 *   first, one that rolls back never does, one that never answers is discarded.
 * fast-check prints the seed; replay with FC_SEED / FC_PATH (see ../runtime/fc-parameters.ts).
 * Soak: TRANSACTION_PROP_RUNS=2000 vitest run property-tests/storage/transaction.property.test.ts
 */
import fs from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ResponseCode, RequestCode } from '../../src/net/remoting/remoting-command.ts';
import { ManualClock } from '../../src/runtime/clock.ts';
import { RMQ_SYS_TRANS_OP_HALF_TOPIC, TRANS_CHECK_MAX_TIME_TOPIC, readOpMessage, type TransactionOutcome } from '../../src/storage/transaction-message.ts';
import { TransactionHarness, type SentHalf } from '../../test/actors/fixtures/transaction-harness.ts';
import { replayableParameters } from '../runtime/fc-parameters.ts';

const NUM_RUNS = Number(process.env['TRANSACTION_PROP_RUNS'] ?? 200);
const T0 = 1_700_000_000_000;
const GROUP = 'PropProducerGroup';
const TOPIC = 'PropTopic';
const QUEUE_ID = 1;
const CHECK_MAX = 4;
const INTERVAL_MS = 1_000;
/** Rounds of the final phase before the model says something never ended. */
const FINAL_ROUNDS_MAX = 60;

type Decision = 'commit' | 'rollback' | 'silent';

type Command =
  | { readonly type: 'send'; readonly decision: Decision; readonly immunity: boolean }
  | { readonly type: 'end'; readonly pick: number; readonly conflict: boolean; readonly fromCheck: boolean }
  | { readonly type: 'answerChecks'; readonly lose: number }
  | { readonly type: 'advance'; readonly steps: number }
  | { readonly type: 'producers'; readonly online: boolean }
  | { readonly type: 'crash'; readonly turns: number; readonly microtasks: number; readonly duringRound: boolean }
  | { readonly type: 'endThenCrash'; readonly pick: number; readonly microtasks: number }
  | { readonly type: 'restart' };

const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      type: fc.constant('send' as const),
      decision: fc.constantFrom<Decision>('commit', 'commit', 'rollback', 'silent'),
      immunity: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    }),
  },
  { weight: 6, arbitrary: fc.record({ type: fc.constant('end' as const), pick: fc.nat(), conflict: fc.boolean(), fromCheck: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ type: fc.constant('answerChecks' as const), lose: fc.nat({ max: 255 }) }) },
  { weight: 5, arbitrary: fc.record({ type: fc.constant('advance' as const), steps: fc.integer({ min: 1, max: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('producers' as const), online: fc.boolean() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('crash' as const),
      // Mostly within the few microtasks one request takes: that is where the interesting cuts are.
      turns: fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }),
      microtasks: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 24 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 300 }) }),
      duringRound: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      type: fc.constant('endThenCrash' as const),
      pick: fc.nat(),
      // A commit takes a handful of microtasks from request to op message: cut mostly inside them.
      microtasks: fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 0, max: 8 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 32 }) }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ type: 'restart' as const }) },
);

/** One transaction as the producer and the model see it. */
type Tx = {
  readonly index: number;
  readonly body: string;
  readonly uniqKey: string;
  readonly decision: Decision;
  readonly half: SentHalf;
  commitSent: boolean;
  contradicted: boolean;
  okCommit: number;
  okRollback: number;
};

/** How often the interesting cases came up, printed after the run so that a weak generator shows. */
const seen = { commitsWithoutOp: 0, txs: 0, commits: 0, rollbacks: 0, refused: 0, checks: 0, checkAnswers: 0, crashes: 0, restarts: 0, discarded: 0, delivered: 0, repaired: 0 };

class Run {
  harness!: TransactionHarness;
  readonly clock = new ManualClock(T0);
  readonly txs: Tx[] = [];
  readonly byUniqKey = new Map<string, Tx>();
  /** END_TRANSACTION requests sent on the current harness, by opaque. */
  requests = new Map<number, { tx: Tx; commit: boolean }>();
  /** How much of the current harness's log the model has read. */
  logRead = 0;
  /** Checks received and not answered yet (they survive a crash: the producer still holds them). */
  readonly pendingChecks: Array<{ tx: Tx; half: SentHalf }> = [];
  readonly dirs: string[] = [];
  online = true;

  async start(dir?: string): Promise<void> {
    this.harness = await TransactionHarness.start({
      clock: this.clock,
      flushDiskType: 'SYNC_FLUSH',
      service: { transactionTimeOutMs: 3_000, transactionCheckIntervalMs: INTERVAL_MS, transactionCheckMax: CHECK_MAX, endedCacheMax: 4, flushOffsetIntervalMs: 700 },
      ...(dir === undefined ? {} : { dir }),
    });
    this.dirs.push(this.harness.dir);
    this.requests = new Map();
    this.logRead = 0;
    await this.harness.setProducers(GROUP, this.online ? [5] : []);
  }

  /** Reads the answers and checks the recorder handled so far, up to `upTo` entries of its log. */
  drain(upTo = this.harness.log.length): void {
    for (; this.logRead < upTo; this.logRead++) {
      const message = this.harness.log[this.logRead]!;
      if (message.type === 'respond') {
        const request = this.requests.get(message.response.opaque);
        if (request === undefined) continue;
        this.requests.delete(message.response.opaque);
        if (message.response.code !== ResponseCode.SUCCESS) {
          seen.refused++;
          continue;
        }
        if (request.commit) request.tx.okCommit++;
        else request.tx.okRollback++;
        seen[request.commit ? 'commits' : 'rollbacks']++;
        expect(request.tx.okCommit > 0 && request.tx.okRollback > 0, `transaction ${request.tx.index} got SUCCESS for both outcomes`).toBe(false);
      } else if (message.type === 'push' && message.request.code === RequestCode.CHECK_TRANSACTION_STATE) {
        const { half } = TransactionHarness.readCheck(message.request, GROUP);
        const tx = this.byUniqKey.get(half.uniqKey);
        expect(tx, 'a check names a transaction that was sent').toBeDefined();
        this.pendingChecks.push({ tx: tx!, half });
        seen.checks++;
      }
    }
  }

  async send(decision: Decision, immunity: boolean): Promise<void> {
    const index = this.txs.length;
    const body = `tx-${index}`;
    const uniqKey = `UNIQ-${index}`;
    const half = await this.harness.sendHalf({
      topic: TOPIC,
      queueId: QUEUE_ID,
      body,
      group: GROUP,
      uniqKey,
      ...(immunity ? { properties: { CHECK_IMMUNITY_TIME_IN_SECONDS: '5' } } : {}),
    });
    const tx: Tx = { index, body, uniqKey, decision, half, commitSent: false, contradicted: false, okCommit: 0, okRollback: 0 };
    this.txs.push(tx);
    this.byUniqKey.set(uniqKey, tx);
    seen.txs++;
  }

  /** The producer ends a transaction (with its own outcome, or the opposite one); no waiting. */
  end(tx: Tx, half: SentHalf, conflict: boolean, fromCheck: boolean): void {
    let state: 'COMMIT' | 'ROLLBACK' | 'UNKNOWN' = tx.decision === 'commit' ? 'COMMIT' : tx.decision === 'rollback' ? 'ROLLBACK' : 'UNKNOWN';
    if (conflict && state !== 'UNKNOWN') {
      state = state === 'COMMIT' ? 'ROLLBACK' : 'COMMIT';
      tx.contradicted = true;
    }
    if (state === 'COMMIT') tx.commitSent = true;
    const opaque = this.harness.sendEnd(this.harness.endHeader(half, state, fromCheck));
    if (state !== 'UNKNOWN') this.requests.set(opaque, { tx, commit: state === 'COMMIT' });
  }

  answerChecks(lose: number): void {
    const checks = this.pendingChecks.splice(0);
    checks.forEach(({ tx, half }, i) => {
      // Bit i of `lose` drops the i-th answer (the producer crashed, or the network lost it).
      if (i < 8 && (lose & (1 << i)) !== 0) return;
      if (tx.decision === 'silent') return;
      seen.checkAnswers++;
      this.end(tx, half, false, true);
    });
  }

  async advance(steps: number): Promise<void> {
    for (let step = 0; step < steps; step++) {
      await this.harness.idle();
      this.clock.advance(INTERVAL_MS);
      await this.harness.idle();
      this.drain();
    }
  }

  /**
   * kill -9 after `turns` turns of the event loop and `microtasks` more microtasks (the actors on the
   * main thread run in microtasks), with a check round just started if `duringRound`, whatever is in
   * flight: only what reached the files survives.
   */
  async crash(turns: number, microtasks: number, duringRound: boolean): Promise<void> {
    if (duringRound) this.clock.advance(INTERVAL_MS);
    for (let turn = 0; turn < turns; turn++) await new Promise((resolve) => setImmediate(resolve));
    for (let task = 0; task < microtasks; task++) await Promise.resolve();
    const before = this.harness.log.length;
    const copy = this.harness.crashCopy();
    this.drain(before);
    seen.repaired += (await this.harness.stats()).repairedOps;
    await this.harness.stop();
    seen.crashes++;
    await this.start(copy);
    // A crash between a commit and its op message: the state the service must repair, not repeat.
    const { delivered, ops } = await this.observe();
    seen.commitsWithoutOp += this.txs.filter((tx) => delivered.has(tx.body) && !ops.has(tx.half.tranStateTableOffset)).length;
  }

  async restart(): Promise<void> {
    await this.harness.idle();
    this.drain();
    const dir = this.harness.dir;
    seen.repaired += (await this.harness.stats()).repairedOps;
    await this.harness.stop();
    seen.restarts++;
    this.dirs.pop();
    await this.start(dir);
  }

  async apply(cmd: Command): Promise<void> {
    switch (cmd.type) {
      case 'send':
        return this.send(cmd.decision, cmd.immunity);
      case 'end': {
        if (this.txs.length === 0) return;
        const tx = this.txs[cmd.pick % this.txs.length]!;
        return this.end(tx, tx.half, cmd.conflict, cmd.fromCheck);
      }
      case 'answerChecks':
        return this.answerChecks(cmd.lose);
      case 'advance':
        return this.advance(cmd.steps);
      case 'producers':
        this.online = cmd.online;
        await this.harness.setProducers(GROUP, cmd.online ? [5] : []);
        return;
      case 'crash':
        return this.crash(cmd.turns, cmd.microtasks, cmd.duringRound);
      case 'endThenCrash': {
        if (this.txs.length === 0) return;
        const tx = this.txs[cmd.pick % this.txs.length]!;
        this.end(tx, tx.half, false, true);
        return this.crash(0, cmd.microtasks, false);
      }
      case 'restart':
        return this.restart();
      default:
        throw new Error(`unknown command ${JSON.stringify(cmd)}`);
    }
  }

  /** Deliveries, discards and op outcomes, by transaction. */
  async observe(): Promise<{ delivered: Map<string, number>; discarded: Map<string, number>; ops: Map<number, TransactionOutcome[]> }> {
    const count = (bodies: string[]): Map<string, number> => {
      const out = new Map<string, number>();
      for (const body of bodies) out.set(body, (out.get(body) ?? 0) + 1);
      return out;
    };
    const delivered = count(await this.harness.bodies(TOPIC, QUEUE_ID));
    const discarded = count(await this.harness.bodies(TRANS_CHECK_MAX_TIME_TOPIC, 0));
    const ops = new Map<number, TransactionOutcome[]>();
    for (const view of await this.harness.read(RMQ_SYS_TRANS_OP_HALF_TOPIC, 0)) {
      const op = readOpMessage(view);
      expect(op).toBeDefined();
      expect(op!.outcome).toBeDefined();
      for (const id of op!.transactionIds) ops.set(id, [...(ops.get(id) ?? []), op!.outcome!]);
    }
    return { delivered, discarded, ops };
  }

  /** Safety, at any step. */
  async checkSafety(): Promise<void> {
    await this.harness.idle();
    this.drain();
    const { delivered, discarded, ops } = await this.observe();
    for (const tx of this.txs) {
      const v = delivered.get(tx.body) ?? 0;
      const d = discarded.get(tx.body) ?? 0;
      const outcomes = new Set(ops.get(tx.half.tranStateTableOffset) ?? []);
      const what = `transaction ${tx.index} (${tx.decision}${tx.contradicted ? ', contradicted' : ''}): delivered ${v}, discarded ${d}, ops ${[...outcomes].join('/')}, ok commit ${tx.okCommit}, ok rollback ${tx.okRollback}`;
      expect(v <= 1, `${what}: delivered more than once`).toBe(true);
      expect(tx.okCommit > 0 && tx.okRollback > 0, `${what}: both outcomes answered SUCCESS`).toBe(false);
      if (tx.okCommit > 0) expect(v === 1 && d === 0, `${what}: an answered commit is not delivered`).toBe(true);
      if (tx.okRollback > 0) expect(v === 0 && d === 0, `${what}: an answered rollback is delivered or discarded`).toBe(true);
      if (v === 1) expect(tx.commitSent && d === 0, `${what}: delivered without a commit, or discarded too`).toBe(true);
      expect(outcomes.size <= 1, `${what}: op messages disagree`).toBe(true);
      if (outcomes.has('COMMIT')) expect(v, `${what}: op says COMMIT`).toBe(1);
      if (outcomes.has('ROLLBACK')) expect(v === 0 && d === 0, `${what}: op says ROLLBACK`).toBe(true);
      if (outcomes.has('DISCARD')) expect(v === 0 && d >= 1, `${what}: op says DISCARD`).toBe(true);
    }
  }

  /** Liveness: producers back, every check answered, until every transaction has ended. */
  async finish(): Promise<void> {
    this.online = true;
    await this.harness.setProducers(GROUP, [5]);
    let ended = false;
    for (let round = 0; round < FINAL_ROUNDS_MAX && !ended; round++) {
      this.answerChecks(0);
      await this.advance(1);
      const { delivered, discarded, ops } = await this.observe();
      ended = this.txs.every((tx) => (delivered.get(tx.body) ?? 0) > 0 || (discarded.get(tx.body) ?? 0) > 0 || (ops.get(tx.half.tranStateTableOffset) ?? []).length > 0);
      ended &&= (await this.harness.stats()).tracked === 0;
    }
    expect(ended, 'every transaction ends once producers answer').toBe(true);
    await this.checkSafety();
    const { delivered, discarded, ops } = await this.observe();
    for (const tx of this.txs) {
      const v = delivered.get(tx.body) ?? 0;
      const d = discarded.get(tx.body) ?? 0;
      const what = `transaction ${tx.index} (${tx.decision}${tx.contradicted ? ', contradicted' : ''}): delivered ${v}, discarded ${d}`;
      seen.delivered += v;
      seen.discarded += d > 0 ? 1 : 0;
      if (tx.contradicted) continue;
      if (tx.decision === 'commit') expect(v === 1 || d >= 1, `${what}: a commit that ran out of checks is discarded, else delivered`).toBe(true);
      if (tx.decision === 'rollback') expect(v, what).toBe(0);
      if (tx.decision === 'silent') expect(v === 0 && d >= 1, `${what}: a producer that never answers is discarded`).toBe(true);
      if (d > 0) expect(ops.get(tx.half.tranStateTableOffset) ?? ['DISCARD'], what).toContain('DISCARD');
    }
    seen.repaired += (await this.harness.stats()).repairedOps;
  }

  async dispose(): Promise<void> {
    await this.harness.stop().catch(() => undefined);
    for (const dir of this.dirs) fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('transactions under crashes (property)', () => {
  it('a transaction message is delivered exactly once if committed, never otherwise', { timeout: 1_800_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 5, maxLength: 40 }), async (commands) => {
        const run = new Run();
        await run.start();
        try {
          for (const cmd of commands) {
            await run.apply(cmd);
            // Requests and answers stay in flight into the next command (a crash may cut them short).
            if (cmd.type !== 'end' && cmd.type !== 'answerChecks') await run.checkSafety();
          }
          await run.finish();
        } finally {
          await run.dispose();
        }
      }),
      replayableParameters('transactions under crashes', NUM_RUNS),
    );
    console.log('[transactions under crashes] seen', seen);
    expect(seen.txs).toBeGreaterThan(0);
  });
});
