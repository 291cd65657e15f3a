import { describe, expect, it } from 'vitest'
import { resolveConfig } from '../../src/model/resolve.js'
import { renderReviewMarkdown, reviewFiles } from '../../src/plan/review.js'
import { generatedSteps } from '../helpers/change-catalog.js'

const settings = resolveConfig({ tables: {} }).migrations

describe('plan --format markdown', () => {
  it('classes every statement of every kind of change, and renders one table row per statement', async () => {
    for (const step of generatedSteps()) {
      const reviews = await reviewFiles(step.files, { settings, configFile: 'pgml-kit.config.ts' })
      const statements = reviews.flatMap((r) => r.steps.flatMap((s) => s.up))
      expect(statements.filter((s) => s.privilege.startsWith('not classified')).map((s) => s.text)).toEqual([])
      const md = renderReviewMarkdown(step.plan, reviews, { settings, configFile: 'pgml-kit.config.ts' })
      // A hostile name stays inside its cell: every table row has as many cells as its header.
      for (const line of md.split('\n').filter((l) => l.startsWith('| '))) {
        const cells = line.replace(/\\\|/g, '').split('|').length
        expect(cells === 6 || cells === 7, line).toBe(true)
      }
      expect(md.match(/^\| \d+ \| `/gm)?.length).toBe(statements.length)
    }
  })

  it('says which steps rewrite, which need a superuser, and which locks one file holds together', async () => {
    const [create] = generatedSteps()
    const reviews = await reviewFiles(create!.files, { settings, configFile: 'pgml-kit.config.ts' })
    const md = renderReviewMarkdown(create!.plan, reviews, { settings, configFile: 'pgml-kit.config.ts' })
    expect(md).toContain('- Needs a superuser: make sure pgml.embed exists')
    expect(md).toMatch(/public\.documents is rewritten under ACCESS EXCLUSIVE, calling pgml\.embed once per row/)
    expect(md).toMatch(/one transaction takes locks that stop writers on 3 tables \(ACCESS EXCLUSIVE on Other Schema\.Odd "Table"; ACCESS EXCLUSIVE on public\.documents; SHARE ROW EXCLUSIVE on crm\.events\)/)
    expect(md).toContain('| **SHARE ROW EXCLUSIVE** on `public.documents` | instant |')
  })
})
