/**
 * Server-rendered SVG charts for the dashboard: no script, no inline style (the CSP allows neither), colours and
 * sizes from panel.css through classes. Bars scale to any width (a phone included); numbers and axis labels are
 * HTML around the SVG, so they stay readable whatever the scale. Pure functions returning markup.
 */

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
export const fmtInt = (n: number) => Math.round(n).toLocaleString('en-US');

export interface Series {
  key: string;
  label: string;
  /** CSS class giving the fill colour. */
  cls: string;
  /** One value per bucket. */
  values: number[];
}

export interface StackedChart {
  svg: string;
  max: number;
  legend: Array<{ label: string; cls: string; total: number }>;
  total: number;
}

const W = 600;
const H = 160;

/** A stacked bar chart: one bar per bucket, one segment per series. `labels` are the buckets' tooltips. */
export function stackedBars(title: string, series: readonly Series[], labels: readonly string[]): StackedChart {
  const n = labels.length;
  const sums = Array.from({ length: n }, (_, i) => series.reduce((a, s) => a + (s.values[i] ?? 0), 0));
  const max = Math.max(0, ...sums);
  const scale = max > 0 ? (H - 4) / niceMax(max) : 0;
  const bw = W / Math.max(1, n);
  const gap = bw > 6 ? bw * 0.15 : 0;
  const parts: string[] = [];
  for (let g = 1; g <= 3; g++) parts.push(`<line class="grid" x1="0" x2="${W}" y1="${(H * g) / 4}" y2="${(H * g) / 4}" vector-effect="non-scaling-stroke"/>`);
  for (let i = 0; i < n; i++) {
    let y = H;
    const tip = [labels[i]!, ...series.filter((s) => s.values[i]).map((s) => `${s.label}: ${fmtInt(s.values[i]!)}`)].join('\n');
    const segs: string[] = [];
    for (const s of series) {
      const v = s.values[i] ?? 0;
      if (!v) continue;
      const h = Math.max(1, v * scale);
      y -= h;
      segs.push(`<rect class="${esc(s.cls)}" x="${(i * bw + gap / 2).toFixed(2)}" y="${y.toFixed(2)}" width="${(bw - gap).toFixed(2)}" height="${h.toFixed(2)}"/>`);
    }
    if (segs.length) parts.push(`<g><title>${esc(tip)}</title>${segs.join('')}</g>`);
  }
  parts.push(`<line class="axis" x1="0" x2="${W}" y1="${H}" y2="${H}" vector-effect="non-scaling-stroke"/>`);
  const total = sums.reduce((a, b) => a + b, 0);
  const svg = `<svg class="bars" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(`${title}: ${fmtInt(total)} in total`)}">${parts.join('')}</svg>`;
  return {
    svg,
    max: max > 0 ? niceMax(max) : 0,
    total,
    legend: series.map((s) => ({ label: s.label, cls: s.cls, total: s.values.reduce((a, b) => a + b, 0) })).filter((l) => l.total > 0),
  };
}

/** A horizontal bar (for ranked lists): the bar is SVG, the label and number stay HTML. */
export function hbar(value: number, max: number, cls = 'bar'): string {
  const w = max > 0 ? Math.max(0.5, (value / max) * 100) : 0;
  return `<svg class="hbar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true"><rect class="${esc(cls)}" x="0" y="0" width="${w.toFixed(2)}" height="10"/></svg>`;
}

/** Rounds a maximum up to 1, 2 or 5 × 10^k so the grid lines land on round numbers. */
export function niceMax(v: number): number {
  if (v <= 0) return 0;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
