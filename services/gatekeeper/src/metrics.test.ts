import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics } from './metrics.ts';

/** The value of one exposition line, e.g. `argos_decisions_total{reason="x",verdict="allow"}`. */
function value(text: string, line: string): number | undefined {
  const hit = text.split('\n').find((l) => l.startsWith(line + ' '));
  return hit === undefined ? undefined : Number(hit.slice(line.length + 1));
}

test('metrics: decisions are counted by verdict and reason, and the latency histogram is cumulative with sum and count', async () => {
  const m = new Metrics({ argos_test_gauge: { help: 'a gauge', get: () => 42 } });
  const now = performance.now();
  m.decision('allow', 'authenticated', now);
  m.decision('allow', 'authenticated', now);
  m.decision('login', 'not_authenticated', now);
  // A slow decision: 50 ms ago lands between the 25 ms and 100 ms bounds.
  const slowUs = m.decision('deny', 'geo_denied', now - 50);
  assert.ok(slowUs >= 50_000 && slowUs < 100_000, `latency in µs: ${slowUs}`);

  let text = await m.render();
  assert.match(text, /# TYPE argos_decisions_total counter/);
  assert.equal(value(text, 'argos_decisions_total{verdict="allow",reason="authenticated"}'), 2);
  assert.equal(value(text, 'argos_decisions_total{verdict="login",reason="not_authenticated"}'), 1);
  assert.equal(value(text, 'argos_decisions_total{verdict="deny",reason="geo_denied"}'), 1);
  assert.match(text, /# TYPE argos_verify_duration_seconds histogram/);
  assert.equal(value(text, 'argos_verify_duration_seconds_bucket{le="0.025"}'), 3, 'the three fast ones');
  assert.equal(value(text, 'argos_verify_duration_seconds_bucket{le="0.1"}'), 4);
  assert.equal(value(text, 'argos_verify_duration_seconds_bucket{le="+Inf"}'), 4);
  assert.equal(value(text, 'argos_verify_duration_seconds_count'), 4);
  assert.ok(value(text, 'argos_verify_duration_seconds_sum')! >= 0.05);
  assert.equal(value(text, 'argos_test_gauge'), 42);

  // A second scrape reports totals, not deltas (a counter never goes back).
  m.decision('allow', 'authenticated', performance.now());
  text = await m.render();
  assert.equal(value(text, 'argos_decisions_total{verdict="allow",reason="authenticated"}'), 3);
  assert.equal(value(text, 'argos_verify_duration_seconds_count'), 5);
});
