// Line charts with the vendored uPlot (a global from its IIFE build).

const PALETTE = ["#2456c7", "#d9480f", "#2b8a3e", "#9c36b5", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#868e96"];

/**
 * A chart in a <figure>: `xs` are bucket starts in ms, `series` are
 * {label, values}. The figure carries data-chart (its name) and data-total
 * (the sum of every plotted value) so a reader, or a test, can tell what it
 * shows without reading pixels.
 */
export function lineChart(name, title, xs, series, fmt = (v) => v, { points = false } = {}) {
  const fig = document.createElement("figure");
  fig.className = "chart";
  fig.dataset.chart = name;
  let total = 0;
  for (const s of series) for (const v of s.values) total += v || 0;
  fig.dataset.total = String(Math.round(total * 1000) / 1000);
  fig.dataset.series = series.map((s) => s.label).join("|");
  const cap = document.createElement("figcaption");
  cap.textContent = title;
  fig.append(cap);
  const holder = document.createElement("div");
  fig.append(holder);
  const opts = {
    width: 460,
    height: 220,
    scales: { x: { time: true } },
    axes: [{}, { values: (u, vals) => vals.map((v) => fmt(v)), size: 70 }],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        // Percentiles are absent where a bucket had no first byte: join
        // across the gaps and mark each point, or a lone bucket draws nothing.
        spanGaps: points,
        points: points ? { show: true, size: 5 } : undefined,
        value: (u, v) => (v === null || v === undefined ? "–" : fmt(v)),
      })),
    ],
  };
  const data = [xs.map((ms) => ms / 1000), ...series.map((s) => s.values)];
  // eslint-disable-next-line no-undef
  requestAnimationFrame(() => {
    const w = Math.max(300, Math.min(640, holder.clientWidth || 460));
    opts.width = w;
    new uPlot(opts, data, holder);
  });
  return fig;
}
