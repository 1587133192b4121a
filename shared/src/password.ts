/**
 * Password hashing: argon2id at OWASP's recommended parameters (19 MiB, t=2, p=1), PHC strings
 * (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`, 16-byte salt, 32-byte hash).
 *
 * Hashing runs on one dedicated thread (password-worker.mjs, a worker_threads Worker) that lowers its own
 * OS scheduling priority to nice 19, so when CPUs are contended the kernel runs the event loop (which
 * answers /verify, nice 0) first: under CFS a nice-19 thread weighs about 1/70 of a nice-0 one and is
 * preempted on wakeup. During a login flood logins slow down, not the request path. The thread hashes with
 * @node-rs/argon2's synchronous calls, so the work happens on that thread and not on libuv's shared
 * pool (which also serves SQLite and the file system at normal priority). It is started on first use, is
 * unref'd while idle (it never keeps a CLI command alive), and is started again if it dies; calls pending
 * on a thread that died fail (a verification then throws, it never answers true).
 *
 * Calls go through a small semaphore (one hash in flight, a bounded waiting line: HashQueueFull beyond
 * it), so a flood queues instead of piling up work. Unknown users are checked against a dummy hash so
 * "no such user" and "wrong password" take the same time. Hashes made by the `argon2` package (this
 * module's earlier implementation, parameters in the order m,p,t) verify unchanged.
 */
import { Worker } from 'node:worker_threads';

/** argon2id parameters (the algorithm and version 0x13 are fixed in the worker). */
const PARAMS = { memoryCost: 19_456, timeCost: 2, parallelism: 1, outputLen: 32 } as const;
const DUMMY_PASSWORD = 'argos-dummy-password-for-timing-parity';
const WORKER_URL = new URL('./password-worker.mjs', import.meta.url);

export class HashQueueFull extends Error {
  constructor() {
    super('password hashing queue is full');
    this.name = 'HashQueueFull';
  }
}

/** A counting semaphore with a bounded waiting line. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(
    readonly limit: number,
    readonly maxWaiting: number,
  ) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) {
      if (this.waiting.length >= this.maxWaiting) throw new HashQueueFull();
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.active++;
    }
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }

  get queued(): number {
    return this.waiting.length;
  }
}

type Job = { op: 'hash'; password: string } | { op: 'verify'; hash: string | null; password: string };
type Reply =
  | { ready: true; tid: number | null; nice: number | null; problem: string | null }
  | { ready?: undefined; id: number; value?: unknown; error?: string };

let priorityProblemLogged = false;

/** One hashing thread; a new one replaces it when it dies. */
class HashingThread {
  readonly worker: Worker;
  tid: number | null = null;
  nice: number | null = null;
  dead = false;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private failure: Error | null = null;

  constructor() {
    // An empty execArgv: the worker is plain JavaScript and needs no loader (tsx, test-runner flags).
    this.worker = new Worker(WORKER_URL, { workerData: { params: PARAMS, dummyPassword: DUMMY_PASSWORD }, execArgv: [] });
    this.worker.unref();
    this.worker.on('message', (m: Reply) => this.onMessage(m));
    this.worker.on('error', (e) => {
      this.failure = e;
      this.stop();
    });
    this.worker.on('exit', (code) => {
      this.stop();
      const why = this.failure ? `: ${this.failure.message}` : '';
      const err = new Error(`password hashing thread stopped (exit code ${code})${why}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    });
  }

  call(job: Job): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref(); // a pending call keeps the process alive until it is answered
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...job });
    });
  }

  private onMessage(m: Reply): void {
    if (m.ready) {
      this.tid = m.tid;
      this.nice = m.nice;
      if (m.problem && !priorityProblemLogged) {
        priorityProblemLogged = true;
        // Logged once per process: hashing still works, at the request path's priority.
        process.emitWarning(`${m.problem}; password hashing runs at normal priority`, 'ArgosPasswordHashing');
      }
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker.unref();
    if (m.error !== undefined) p.reject(new Error(`password hashing failed: ${m.error}`));
    else p.resolve(m.value);
  }

  /** Called when the thread dies: later calls go to a new thread; pending ones fail on 'exit'. */
  private stop(): void {
    this.dead = true;
    if (current === this) current = null;
  }
}

let current: HashingThread | null = null;

function hashingThread(): HashingThread {
  if (!current || current.dead) current = new HashingThread();
  return current;
}

const hashing = new Semaphore(1, 256);

export async function hashPassword(password: string): Promise<string> {
  const hash = await hashing.run(() => hashingThread().call({ op: 'hash', password }));
  if (typeof hash !== 'string') throw new Error('password hashing failed: no hash returned');
  return hash;
}

/**
 * Verifies a password against a stored hash, or against a dummy hash when the user does not exist
 * (`stored` null), so both paths cost the same. Returns false for the dummy path and for a stored hash
 * that cannot be parsed; throws if the hashing thread died during the check (or HashQueueFull).
 */
export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  const ok = await hashing.run(() => hashingThread().call({ op: 'verify', hash: stored, password }));
  return stored !== null && ok === true;
}

/** Minimum password policy for accounts: length only (NIST 800-63B), with a clear message. */
export function passwordProblem(password: string): string | null {
  if (password.length < 10) return 'Password must be at least 10 characters.';
  if (password.length > 512) return 'Password must be at most 512 characters.';
  return null;
}

export const hashingQueue = hashing;

/**
 * Diagnostics and tests: the current hashing thread (null before first use or after it died), with its OS
 * thread id and nice value once it has reported them (null where the priority could not be lowered).
 */
export function hashingThreadInfo(): { worker: Worker; tid: number | null; nice: number | null } | null {
  return current && !current.dead ? { worker: current.worker, tid: current.tid, nice: current.nice } : null;
}
