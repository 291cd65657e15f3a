import type { MonitorRun } from './monitor.js'

/**
 * `pgml-kit monitor --history --chart <dir>`: one SVG per project — each compared feature's and
 * the predictions' PSI over the recorded runs, the alarm threshold as a dashed line, and the runs
 * that alarmed marked in red. Plain SVG, no script, readable in a browser or a pull request.
 */

const WIDTH = 760
const HEIGHT = 340
const MARGIN = { left: 56, right: 190, top: 40, bottom: 44 }
const PALETTE = ['#1f77b4', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f', '#ff7f0e', '#393b79']

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
    // Control characters are not allowed in XML 1.0.
    // eslint-disable-next-line no-control-regex
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '\uFFFD')
}

const fixed = (n: number) => n.toFixed(1)

export function renderDriftChart(project: string, runs: readonly MonitorRun[], psiThreshold: number): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom
  const names = [...new Set(runs.flatMap((r) => r.metrics.map((m) => m.name)))]
  const value = (run: MonitorRun, name: string) => {
    const psi = run.metrics.find((m) => m.name === name)?.psi
    return typeof psi === 'number' && Number.isFinite(psi) ? psi : null
  }
  const all = runs.flatMap((r) => names.map((n) => value(r, n))).filter((v): v is number => v !== null)
  const yMax = Math.max(psiThreshold * 1.5, ...all) * 1.05
  const times = runs.map((r) => Date.parse(r.at))
  const t0 = Math.min(...times)
  const t1 = Math.max(...times)
  const x = (t: number) => MARGIN.left + (t1 === t0 ? plotW / 2 : ((t - t0) / (t1 - t0)) * plotW)
  const y = (v: number) => MARGIN.top + plotH - (v / yMax) * plotH
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="11">`,
    `<title>${escapeXml(`pgml-kit monitor: ${project}`)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${MARGIN.left}" y="22" font-size="14" font-weight="bold">${escapeXml(`${project}: drift (PSI) per run`)}</text>`,
  ]
  // Axes and grid.
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${fixed(y(v))}" y2="${fixed(y(v))}" stroke="#eee"/>`)
    out.push(`<text x="${MARGIN.left - 6}" y="${fixed(y(v) + 4)}" text-anchor="end">${v.toFixed(2)}</text>`)
  }
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#333"/>`)
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="#333"/>`)
  if (runs.length > 0) {
    const first = runs[0]!.at.slice(0, 16).replace('T', ' ')
    const last = runs[runs.length - 1]!.at.slice(0, 16).replace('T', ' ')
    out.push(`<text x="${MARGIN.left}" y="${HEIGHT - 22}">${escapeXml(first)}</text>`)
    if (runs.length > 1) out.push(`<text x="${MARGIN.left + plotW}" y="${HEIGHT - 22}" text-anchor="end">${escapeXml(last)}</text>`)
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 8}" text-anchor="middle" fill="#555">${escapeXml(`${runs.length} run(s), UTC`)}</text>`)
  // The threshold.
  out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${fixed(y(psiThreshold))}" y2="${fixed(y(psiThreshold))}" stroke="#d62728" stroke-dasharray="6 4"/>`)
  out.push(`<text x="${MARGIN.left + plotW - 4}" y="${fixed(y(psiThreshold) - 4)}" text-anchor="end" fill="#d62728">${escapeXml(`alarm at PSI ${psiThreshold}`)}</text>`)
  // One line per metric.
  names.forEach((name, i) => {
    const color = PALETTE[i % PALETTE.length]!
    const points = runs.map((r, j) => [times[j]!, value(r, name)] as const).filter((p): p is readonly [number, number] => p[1] !== null)
    if (points.length > 1) out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.8" points="${points.map(([t, v]) => `${fixed(x(t))},${fixed(y(v))}`).join(' ')}"/>`)
    for (const [t, v] of points) out.push(`<circle cx="${fixed(x(t))}" cy="${fixed(y(v))}" r="2.5" fill="${color}"/>`)
    const ly = MARGIN.top + 14 * i
    out.push(`<line x1="${WIDTH - MARGIN.right + 16}" x2="${WIDTH - MARGIN.right + 34}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"/>`)
    out.push(`<text x="${WIDTH - MARGIN.right + 40}" y="${ly + 4}">${escapeXml(name.length > 24 ? `${name.slice(0, 23)}…` : name)}</text>`)
  })
  // Runs that alarmed (for any reason: PSI, KS, NULL shares, skew), marked on the axis.
  runs.forEach((r, j) => {
    if (r.alarms.length === 0) return
    out.push(`<circle cx="${fixed(x(times[j]!))}" cy="${MARGIN.top + plotH}" r="4" fill="#d62728"><title>${escapeXml(`${r.at}: ${r.alarms.join(', ')}`)}</title></circle>`)
  })
  const ly = MARGIN.top + 14 * names.length + 10
  out.push(`<circle cx="${WIDTH - MARGIN.right + 25}" cy="${ly}" r="4" fill="#d62728"/><text x="${WIDTH - MARGIN.right + 40}" y="${ly + 4}">a run that alarmed</text>`)
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
