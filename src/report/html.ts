/**
 * Renders a report as ONE self-contained HTML file: inline CSS, inline SVG charts, images as PNG data: URIs, no
 * scripts and no external assets (a Content-Security-Policy forbids loading any). Every figure carries its exact
 * value in a data- attribute (`data-value` on table cells and metrics, `data-x`/`data-y` on chart points), so a
 * test or a scraper can read the numbers the page shows and compare them with report.json.
 */
import { metricFormat } from './gates.js';
import { ATLAS_TECHNIQUES, DOMAINS, OWASP_ML_TOP10, atlasUrl, findingRule, owaspUrl } from './taxonomy.js';
import { SEVERITY_ORDER, type Block, type ChartSeries, type Finding, type GateResult, type Report, type ReportSection, type ValueFormat } from './types.js';

/** Escapes text for HTML content and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Formats a value the way the report shows it. */
export function formatValue(v: number | string | null | undefined, format: ValueFormat = 'number'): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  switch (format) {
    case 'percent':
      return `${(100 * v).toFixed(1)}%`;
    case 'count':
      return Math.round(v).toLocaleString('en-US');
    case 'seconds':
      return v < 1 ? `${(v * 1000).toFixed(0)} ms` : v < 120 ? `${v.toFixed(1)} s` : `${Math.floor(v / 60)} min ${Math.round(v % 60)} s`;
    case 'text':
      return String(v);
    default:
      return Number.isInteger(v) ? String(v) : String(+v.toPrecision(4));
  }
}

/** The raw value of a cell as written in data-value: the shortest round-trip form of a number, or the text. */
function rawValue(v: number | string | null | undefined): string {
  if (v === null || v === undefined) return '';
  return String(v);
}

const e = escapeHtml;

const CSS = `
:root{--fg:#1b1f24;--muted:#5b6570;--line:#d7dde3;--bg:#fff;--panel:#f6f8fa;--critical:#8b0000;--high:#c62828;--medium:#e08600;--low:#2b7bb9;--info:#6b7785;--pass:#2e7d32;--warn:#e08600;--fail:#c62828}
*{box-sizing:border-box}body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;padding-top:12px;border-top:1px solid var(--line)}h3{font-size:15px;margin:20px 0 6px}
.muted{color:var(--muted)}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;vertical-align:middle}
.sev-critical{background:var(--critical)}.sev-high{background:var(--high)}.sev-medium{background:var(--medium)}.sev-low{background:var(--low)}.sev-info{background:var(--info)}
.st-pass{background:var(--pass)}.st-warn{background:var(--warn)}.st-fail,.st-error{background:var(--fail)}.st-skipped{background:var(--info)}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:13px}th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}th{background:var(--panel);font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{text-align:left;color:var(--muted);padding:4px 0;caption-side:top}
.metrics{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:8px 0 16px}.metric{background:var(--panel);border-radius:6px;padding:8px 10px}.metric .v{font-size:20px;font-weight:650}.metric .l{color:var(--muted);font-size:12px}
.chart{margin:8px 0 16px}.chart svg{max-width:100%;height:auto;background:#fff}
.images{display:grid;grid-template-columns:repeat(auto-fill,minmax(500px,1fr));gap:12px;margin:8px 0 16px}.imgrow{display:flex;align-items:center;gap:12px}.imgrow .lbl{width:170px;font-size:12px}
figure{margin:0;text-align:center}figure img{width:84px;height:84px;image-rendering:pixelated;border:1px solid var(--line);display:block}figcaption{font-size:11px;color:var(--muted);max-width:110px}
.summary{background:var(--panel);border-radius:8px;padding:12px 16px;margin:12px 0}code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}a{color:#0b5cad}
`;

/**
 * Renders the report as a self-contained HTML page.
 * @param r the report (as written to report.json)
 * @returns the HTML text
 * @example writeFileAtomic('report.html', renderHtml(report));
 */
export function renderHtml(r: Report): string {
  const status = r.summary.gatesPassed ? (r.summary.maxSeverity === 'critical' || r.summary.maxSeverity === 'high' ? 'fail' : r.summary.maxSeverity === 'medium' ? 'warn' : 'pass') : 'fail';
  const counts = SEVERITY_ORDER.map((s) => `<span class="badge sev-${s}" data-severity="${s}" data-value="${r.summary.counts[s]}">${r.summary.counts[s]} ${s}</span>`).join(' ');
  const parts: string[] = [];
  parts.push('<!DOCTYPE html>');
  parts.push('<html lang="en"><head><meta charset="utf-8">');
  parts.push(`<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">`);
  parts.push('<meta name="viewport" content="width=device-width, initial-scale=1">');
  parts.push(`<meta name="generator" content="bulwark ${e(r.tool.version)}">`);
  parts.push(`<title>Bulwark report: ${e(r.subject.model)}</title><style>${CSS}</style></head><body><main>`);
  parts.push(`<h1>Bulwark security assessment <span class="badge st-${status}" data-status="${status}">${status}</span></h1>`);
  parts.push(`<p class="muted">model <code>${e(r.subject.model)}</code> (sha256 <code>${e(r.subject.sha256.slice(0, 16))}…</code>, input ${e(JSON.stringify(r.subject.inputShape))}, ${r.subject.numClasses} classes, ${e(r.subject.outputKind)}) · data <code>${e(r.data.spec)}</code> (${r.data.n} of ${r.data.total} examples) · budget ${e(r.settings.budget)} · ${r.settings.norm === 'inf' ? 'L∞' : 'L2'} eps ${r.settings.eps} · seed ${r.settings.seed} · ${e(r.createdAt)}</p>`);
  parts.push('<div class="summary">');
  parts.push(`<p><b>Findings:</b> ${counts}</p>`);
  parts.push(`<p>${r.sections.map((s) => `<b>${e(s.title)}</b> <span class="badge st-${s.status}" data-section-status="${e(s.id)}">${s.status}</span>`).join(' · ')}</p>`);
  if (!r.summary.reliable) parts.push('<p><b>Gradient masking suspected:</b> the robustness figures may be overstated; see the evasion section.</p>');
  parts.push('</div>');
  if (r.gates.length > 0) parts.push(gatesTable(r.gates));
  parts.push(renderBlock({ kind: 'metrics', id: 'headline', items: r.sections.flatMap((s) => Object.entries(s.metrics).map(([k, v]) => ({ label: k, value: v, format: metricFormat(k), metric: k }))) }));
  parts.push('<h2>Findings</h2>');
  parts.push(findingsTable(r.findings, 'all-findings'));
  for (const s of r.sections) parts.push(renderSection(s));
  parts.push('<h2>Taxonomy</h2>');
  parts.push(taxonomyTable(r.findings));
  parts.push('<h2>Timings</h2>');
  parts.push(renderBlock({ kind: 'table', id: 'timings', caption: 'Wall-clock time per section', columns: [{ key: 'section', label: 'section', format: 'text' }, { key: 'seconds', label: 'time', format: 'seconds' }], rows: [...Object.entries(r.timings.sections).map(([section, seconds]) => ({ section, seconds })), { section: 'total', seconds: r.timings.totalSeconds }] }));
  parts.push(`<p class="muted">Generated by Bulwark ${e(r.tool.version)}. This page is self-contained: it loads nothing and runs no scripts. The same data is in report.json; findings in SARIF 2.1.0 are in report.sarif.</p>`);
  parts.push('</main></body></html>');
  return parts.join('\n') + '\n';
}

function gatesTable(gates: GateResult[]): string {
  const rows = gates.map((g) => `<tr data-gate="${e(g.metric)}" data-passed="${g.passed}"><td>--${e(g.op)} ${e(g.metric)}=${g.value}</td><td class="num" data-value="${rawValue(g.actual)}">${formatValue(g.actual, metricFormat(g.metric))}</td><td><span class="badge st-${g.passed ? 'pass' : 'fail'}">${g.passed ? 'passed' : 'failed'}</span></td><td>${e(g.message)}</td></tr>`);
  return `<table data-block="gates"><caption>CI gates</caption><thead><tr><th>gate</th><th>value</th><th>result</th><th></th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function findingsTable(findings: Finding[], id: string): string {
  if (findings.length === 0) return `<p class="muted" data-block="${e(id)}" data-count="0">No findings.</p>`;
  const rows = findings.map((f) => {
    const atlas = f.atlas.map((a) => `<a href="${e(atlasUrl(a))}" title="${e(ATLAS_TECHNIQUES[a] ?? a)}">${e(a)}</a>`).join(' ');
    const owasp = f.owasp.map((o) => `<a href="${e(owaspUrl(o))}" title="${e(OWASP_ML_TOP10[o]?.name ?? o)}">${e(o)}</a>`).join(' ');
    const val = typeof f.value === 'number' ? formatValue(f.value) : e(String(f.value));
    const thr = f.threshold === null ? '–' : typeof f.threshold === 'number' ? formatValue(f.threshold) : e(f.threshold);
    return `<tr data-finding="${e(f.id)}"><td><span class="badge sev-${f.severity}">${f.severity}</span></td><td><code>${e(f.id)}</code><br>${e(f.title)}</td><td><code>${e(f.metric)}</code></td><td class="num" data-value="${e(rawValue(f.value))}">${val}</td><td class="num">${thr}</td><td>${atlas}</td><td>${owasp}</td></tr>`;
  });
  return `<table data-block="${e(id)}" data-count="${findings.length}"><thead><tr><th>severity</th><th>finding</th><th>metric</th><th>value</th><th>threshold</th><th>MITRE ATLAS</th><th>OWASP ML</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function taxonomyTable(findings: Finding[]): string {
  const ids = [...new Set(findings.map((f) => f.id))];
  if (ids.length === 0) return '<p class="muted">No findings to map.</p>';
  const rows = ids.map((id) => {
    const rule = findingRule(id);
    const f = findings.find((x) => x.id === id)!;
    const atlas = f.atlas.map((a) => `${e(a)} ${e(ATLAS_TECHNIQUES[a] ?? '')}`).join('<br>');
    const owasp = f.owasp.map((o) => `${e(o)} ${e(OWASP_ML_TOP10[o]?.name ?? '')}`).join('<br>');
    return `<tr><td><code>${e(id)}</code></td><td>${e(DOMAINS[rule?.domain ?? '']?.title ?? rule?.domain ?? '')}</td><td>${atlas}</td><td>${owasp}</td><td>${e(rule?.help ?? '')}</td></tr>`;
  });
  return `<table data-block="taxonomy"><thead><tr><th>rule</th><th>domain</th><th>MITRE ATLAS</th><th>OWASP ML Top 10</th><th>what it means</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function renderSection(s: ReportSection): string {
  const out: string[] = [];
  out.push(`<section data-section="${e(s.id)}">`);
  out.push(`<h2>${e(s.title)} <span class="badge st-${s.status}">${s.status}</span></h2>`);
  out.push(`<p>${e(s.summary)}</p>`);
  if (s.error) out.push(`<p><b>Error:</b> <code>${e(s.error.code)}</code> ${e(s.error.message)}</p>`);
  for (const b of s.blocks) out.push(renderBlock(b));
  out.push(`<h3>Findings (${s.findings.length})</h3>`);
  out.push(findingsTable(s.findings, `${s.id}-findings`));
  out.push(`<p class="muted">${formatValue(s.seconds, 'seconds')}</p>`);
  out.push('</section>');
  return out.join('\n');
}

/** Renders one block. */
export function renderBlock(b: Block): string {
  switch (b.kind) {
    case 'text':
      return `<p>${e(b.text)}</p>`;
    case 'metrics':
      return `<div class="metrics" data-block="${e(b.id)}">${b.items.map((m) => `<div class="metric"${m.metric ? ` data-metric="${e(m.metric)}"` : ''} data-value="${e(rawValue(m.value))}"><div class="v">${e(formatValue(m.value, m.format))}</div><div class="l">${e(m.label)}</div></div>`).join('')}</div>`;
    case 'table': {
      const head = b.columns.map((c) => `<th>${e(c.label)}</th>`).join('');
      const rows = b.rows.map((row) => `<tr>${b.columns.map((c) => {
        const v = row[c.key];
        const num = typeof v === 'number';
        return `<td${num ? ' class="num"' : ''} data-key="${e(c.key)}" data-value="${e(rawValue(v))}">${e(formatValue(v, c.format))}</td>`;
      }).join('')}</tr>`).join('');
      return `<table data-block="${e(b.id)}"><caption>${e(b.caption)}</caption><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table>`;
    }
    case 'chart':
      return `<figure class="chart" data-block="${e(b.id)}">${lineChart(b.series, b.xLabel, b.yLabel, b.yRange, b.yFormat ?? 'number')}<figcaption style="max-width:none">${e(b.caption)}</figcaption></figure>`;
    case 'images':
      return `<div data-block="${e(b.id)}"><p class="muted">${e(b.caption)}</p><div class="images">${b.rows.map((r) => `<div class="imgrow"><div class="lbl">${e(r.label)}</div>${r.images.map((im) => `<figure><img src="${e(im.png)}" width="${im.width}" height="${im.height}" alt="${e(im.caption)}"><figcaption>${e(im.caption)}</figcaption></figure>`).join('')}</div>`).join('')}</div></div>`;
  }
}

const PALETTE = ['#1565c0', '#c62828', '#2e7d32', '#6a1b9a', '#ef6c00'];

/** Ticks at "nice" steps covering [lo, hi]. */
function niceTicks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(10));
  return out;
}

/** An SVG line chart; every point is a circle with its exact data in data-x / data-y. */
export function lineChart(series: ChartSeries[], xLabel: string, yLabel: string, yRange: [number, number] | undefined, yFormat: ValueFormat): string {
  const W = 640;
  const H = 340;
  const m = { l: 64, r: 150, t: 16, b: 48 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => s.points.map((p) => p.y));
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(...xs, x0 + 1e-9);
  const [y0, y1] = yRange ?? [Math.min(0, ...ys), Math.max(...ys, 1e-9)];
  const sx = (v: number) => m.l + ((v - x0) / (x1 - x0)) * pw;
  const sy = (v: number) => m.t + (1 - (v - y0) / (y1 - y0 || 1)) * ph;
  const f = (v: number) => v.toFixed(2);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${e(yLabel)} against ${e(xLabel)}">`);
  for (const t of niceTicks(y0, y1)) {
    out.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#e3e7eb"/>`);
    out.push(`<text x="${m.l - 6}" y="${f(sy(t) + 4)}" font-size="11" text-anchor="end" fill="#5b6570">${e(formatValue(t, yFormat === 'percent' ? 'percent' : 'number').replace('.0%', '%'))}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    out.push(`<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${m.t}" y2="${m.t + ph}" stroke="#eef1f4"/>`);
    out.push(`<text x="${f(sx(t))}" y="${m.t + ph + 16}" font-size="11" text-anchor="middle" fill="#5b6570">${e(formatValue(t))}</text>`);
  }
  out.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#9aa5b1"/>`);
  out.push(`<text x="${m.l + pw / 2}" y="${H - 10}" font-size="12" text-anchor="middle" fill="#1b1f24">${e(xLabel)}</text>`);
  out.push(`<text x="16" y="${m.t + ph / 2}" font-size="12" text-anchor="middle" fill="#1b1f24" transform="rotate(-90 16 ${m.t + ph / 2})">${e(yLabel)}</text>`);
  series.forEach((s, k) => {
    const color = PALETTE[k % PALETTE.length]!;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    out.push(`<g data-series="${e(s.name)}">`);
    if ((s.style ?? 'line') === 'line' && pts.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${f(sx(p.x))},${f(sy(p.y))}`).join(' ')}"/>`);
    for (const p of pts) {
      const filled = (s.style ?? 'line') === 'line';
      out.push(`<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="${filled ? 3.5 : 5}" fill="${filled ? color : 'none'}" stroke="${color}" stroke-width="1.5" data-x="${rawValue(p.x)}" data-y="${rawValue(p.y)}"><title>${e(`${s.name}: ${formatValue(p.x)} → ${formatValue(p.y, yFormat)}`)}</title></circle>`);
    }
    out.push('</g>');
    const ly = m.t + 14 + k * 20;
    out.push(`<line x1="${m.l + pw + 14}" x2="${m.l + pw + 34}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${(s.style ?? 'line') === 'line' ? '' : ' stroke-dasharray="2 3"'}/>`);
    out.push(`<text x="${m.l + pw + 40}" y="${ly + 4}" font-size="11" fill="#1b1f24">${e(s.name)}</text>`);
  });
  out.push('</svg>');
  return out.join('');
}
