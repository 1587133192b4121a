/**
 * Password hashing: argon2id at OWASP's recommended parameters (19 MiB, t=2, p=1).
 *
 * Hashing runs through a small semaphore, so a login flood queues instead of starving the
 * event loop's CPU neighbours (/verify). Unknown users are checked against a dummy hash so
 * "no such user" and "wrong password" take the same time.
 */
import argon2 from 'argon2';

const PARAMS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

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

const hashing = new Semaphore(1, 256);
let dummyHash: Promise<string> | null = null;

export async function hashPassword(password: string): Promise<string> {
  return hashing.run(() => argon2.hash(password, PARAMS));
}

/**
 * Verifies a password against a stored hash, or against a dummy hash when the user does not exist
 * (`stored` null), so both paths cost the same. Returns false for the dummy path.
 */
export async function verifyPassword(stored: string | null, password: string): Promise<boolean> {
  dummyHash ??= argon2.hash('argos-dummy-password-for-timing-parity', PARAMS);
  const target = stored ?? (await dummyHash);
  const ok = await hashing.run(() => argon2.verify(target, password).catch(() => false));
  return stored !== null && ok;
}

/** Minimum password policy for accounts: length only (NIST 800-63B), with a clear message. */
export function passwordProblem(password: string): string | null {
  if (password.length < 10) return 'Password must be at least 10 characters.';
  if (password.length > 512) return 'Password must be at most 512 characters.';
  return null;
}

export const hashingQueue = hashing;
