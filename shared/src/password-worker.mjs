/**
 * The password-hashing thread, started by password.ts (read its header first). Plain JavaScript so that it
 * loads without tsx (password.ts starts it with an empty execArgv).
 *
 * It lowers its own OS scheduling priority to nice 19 before it does anything else, then hashes and verifies
 * synchronously, one message at a time, on this thread: argon2id's CPU time is spent here and nowhere else, so
 * when CPUs are contended the kernel runs the request path's threads (nice 0) first. Only this thread is reniced (Linux:
 * setpriority(PRIO_PROCESS, tid)), never the process. If that fails, the first message says so and hashing
 * carries on at normal priority.
 *
 * Protocol: one { ready, tid, nice, problem } message at start; then, for each { id, op: 'hash', password } or
 * { id, op: 'verify', hash, password } received, one { id, value } or { id, error } reply. `verify` with hash
 * null checks the password against a dummy hash (made here on first use) and answers false: the same work as a
 * real verification. A stored hash that cannot be parsed answers false. Any other message is a programming
 * error: the thread throws and dies, and password.ts fails its pending calls and starts a new thread.
 */
import fs from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Algorithm, hashSync, verifySync } from '@node-rs/argon2';

/** @type {{ params: { memoryCost: number; timeCost: number; parallelism: number; outputLen: number }; dummyPassword: string }} */
const { params, dummyPassword } = workerData;
const OPTIONS = { algorithm: Algorithm.Argon2id, ...params };

function lowerPriority() {
  if (process.platform !== 'linux') return { tid: null, nice: null, problem: `thread priority is only lowered on Linux, not ${process.platform}` };
  let tid = null;
  try {
    // "<pid>/task/<tid>": this thread's own id, which setpriority(PRIO_PROCESS, …) accepts on Linux.
    tid = Number(fs.readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) throw new Error(`unexpected /proc/thread-self`);
    os.setPriority(tid, 19);
    const nice = os.getPriority(tid);
    return { tid, nice, problem: nice === 19 ? null : `thread nice value is ${nice} after setting 19` };
  } catch (e) {
    return { tid, nice: null, problem: `could not lower the hashing thread's priority: ${e instanceof Error ? e.message : String(e)}` };
  }
}

let dummyHash = null;

function verify(hash, password) {
  try {
    if (hash === null) {
      dummyHash ??= hashSync(dummyPassword, OPTIONS);
      verifySync(dummyHash, password);
      return false;
    }
    return verifySync(hash, password);
  } catch {
    return false; // an unparseable stored hash never verifies
  }
}

parentPort.postMessage({ ready: true, ...lowerPriority() });

parentPort.on('message', (m) => {
  if (m === null || typeof m !== 'object' || (m.op !== 'hash' && m.op !== 'verify')) {
    throw new Error('password hashing thread: unknown message');
  }
  let reply;
  try {
    reply = m.op === 'hash' ? { id: m.id, value: hashSync(m.password, OPTIONS) } : { id: m.id, value: verify(m.hash, m.password) };
  } catch (e) {
    reply = { id: m.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort.postMessage(reply);
});
