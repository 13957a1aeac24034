/**
 * The piscina pool for stateless CPU tasks. Its queue is bounded: when it is full, `run` rejects with
 * MAILBOX_FULL and the caller answers SYSTEM_BUSY, as for a full actor mailbox.
 */
import { Piscina } from 'piscina';
import type { CpuTask } from './cpu-tasks.ts';
import { RuntimeError, RuntimeErrorCode } from './errors.ts';

const taskModule = new URL('./cpu-tasks.ts', import.meta.url).href;

/** A fixed-size pool of threads for CpuTasks. */
export class CpuPool {
  /** Number of threads. */
  readonly size: number;
  private readonly queueMax: number;
  private readonly piscina: Piscina;

  constructor(size: number, queueMax: number) {
    this.size = size;
    this.queueMax = queueMax;
    this.piscina = new Piscina({ filename: taskModule, minThreads: size, maxThreads: size, maxQueue: queueMax, idleTimeout: 2 ** 31 - 1 });
  }

  /** Runs one task; rejects with MAILBOX_FULL when the queue is at its bound. */
  run<R>(task: CpuTask): Promise<R> {
    if (this.piscina.queueSize >= this.queueMax) {
      return Promise.reject(new RuntimeError(RuntimeErrorCode.mailboxFull, `cpu task queue is at its bound of ${this.queueMax}`));
    }
    return this.piscina.run(task) as Promise<R>;
  }

  /** Thread ids of the pool's workers. */
  threadIds(): number[] {
    return this.piscina.threads.map((thread) => thread.threadId);
  }

  /** Stops the pool's threads. */
  close(): Promise<void> {
    return this.piscina.destroy();
  }
}
