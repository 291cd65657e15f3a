import { describe, expect, it } from 'vitest'
import { renderDriftChart } from '../../src/features/monitor-chart.js'
import type { MonitorRun } from '../../src/features/monitor.js'
import { chartFileName } from '../../src/cli/commands/ml.js'

const metric = (name: string, psi: number | null) => ({ name, psi: psi as number, ksD: 0, ksP: 1, nullsBefore: null, nullsNow: null, reasons: [], alarm: false })
const run = (at: string, metrics: ReturnType<typeof metric>[], alarms: string[] = []): MonitorRun => ({ id: at, version: 1, modelId: 1, at, runBy: 'me', currentRows: 100, alarms, metrics })

describe('the drift chart', () => {
  it('draws a line per metric, the threshold, and marks the runs that alarmed; names are escaped', () => {
    const runs = [
      run('2026-12-01T00:00:00.000Z', [metric('x<1>', 0.01), metric('prediction', 0.02)]),
      // PSI of a side without values is NaN, stored as null in jsonb: a gap, not a zero.
      run('2026-12-02T00:00:00.000Z', [metric('x<1>', null), metric('prediction', 0.03)]),
      run('2026-12-03T00:00:00.000Z', [metric('x<1>', 0.6), metric('prediction', 0.4)], ['x<1>', 'prediction']),
    ]
    const svg = renderDriftChart('churn "&" <script>', runs, 0.2)
    expect(svg).not.toMatch(/<script>|x<1>/)
    expect(svg).toContain('churn &quot;&amp;&quot; &lt;script&gt;')
    expect(svg.match(/<polyline /g)).toHaveLength(2)
    // The x<1> line has two points (the null is left out), prediction three.
    expect(svg.match(/<circle [^>]*r="2.5"/g)).toHaveLength(5)
    expect(svg.match(/<title>2026-12-03T00:00:00.000Z: x&lt;1&gt;, prediction<\/title>/g)).toHaveLength(1)
    expect(svg).toContain('alarm at PSI 0.2')
    // The y axis reaches the largest PSI: the 0.6 point is inside the plot.
    const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)" r="2.5"/g)].map((m) => Number(m[1]))
    expect(Math.min(...ys)).toBeGreaterThanOrEqual(40)
  })

  it('keeps a project name from writing outside the chart directory', () => {
    expect(chartFileName('../../etc/passwd')).toBe('.._.._etc_passwd'.replace(/^\./, '_'))
    expect(chartFileName('churn v2')).toBe('churn_v2')
    expect(chartFileName('prix-maison_été')).toBe('prix-maison_été')
  })
})
