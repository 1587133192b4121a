/** Small statistics and the A/B round runner shared by the scenarios. */

export function median(xs: readonly number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export const round = (x: number, digits = 2): number => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);

export interface Variant<R> {
  name: string;
  /** Optional untimed warm-up before each measured run (its result is discarded). */
  warmup?: () => Promise<unknown>;
  run: () => Promise<R>;
}

export interface Rounds<R> {
  a: R[];
  b: R[];
  /** Execution order, for the record: e.g. ["A", "B", "B", "A", …]. */
  order: string[];
}

/**
 * Runs A and B alternately for `rounds` rounds, in ABBA order (A,B then B,A …) so a slow drift of the machine
 * (other load, thermal, caches) does not favour one side. Warm-ups run right before each measured run and are excluded.
 */
export async function alternate<R>(
  rounds: number,
  a: Variant<R>,
  b: Variant<R>,
  onResult?: (variant: 'A' | 'B', round: number, r: R) => void,
): Promise<Rounds<R>> {
  const out: Rounds<R> = { a: [], b: [], order: [] };
  for (let i = 0; i < rounds; i++) {
    const seq: ['A' | 'B', Variant<R>][] =
      i % 2 === 0
        ? [
            ['A', a],
            ['B', b],
          ]
        : [
            ['B', b],
            ['A', a],
          ];
    for (const [tag, v] of seq) {
      if (v.warmup) await v.warmup();
      const r = await v.run();
      (tag === 'A' ? out.a : out.b).push(r);
      out.order.push(tag);
      onResult?.(tag, i, r);
    }
  }
  return out;
}
