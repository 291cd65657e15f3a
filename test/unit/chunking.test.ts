import { readFileSync } from 'node:fs'
import { RecursiveCharacterTextSplitter } from '@langchain/textsplitters'
import { describe, expect, it } from 'vitest'
import { MARKDOWN_SEPARATORS, RECURSIVE_SEPARATORS, sections, splitDocument, splitText } from '../../src/chunking/split.js'
import { chunkHash, formatChunk, planChunks, type NextChunk } from '../../src/chunking/plan.js'
import { generator } from '../../bench/datasets/anisotropic.js'

const cases = JSON.parse(readFileSync(new URL('../fixtures/chunking/python-splits.json', import.meta.url), 'utf8')) as {
  text: string; size: number; overlap: number; separators: string[] | null; chunks: string[]
}[]
const codePoints = (t: string) => Array.from(t).length

describe('splitting text into chunks', () => {
  it('splits as pgml.chunk does (pgml_compat\'s splitter, which follows Python\'s LangChain), code points and runs of separators included', () => {
    expect(cases.length).toBe(200)
    for (const c of cases) {
      expect(splitText(c.text, { size: c.size, overlap: c.overlap, ...(c.separators ? { separators: c.separators } : {}) }), JSON.stringify(c.text)).toEqual(c.chunks)
    }
    // A run of a separator longer than it: cut at non-overlapping matches, as Python's re.split.
    expect(splitText('a\n\n\nb', { size: 2, overlap: 0 })).toEqual(['a', 'b'])
  })

  it('splits as LangChain.js where the two LangChains agree, with the markdown splitter\'s separators', async () => {
    const rng = generator(29)
    const words = ['a', 'to', 'the', 'park', 'housing', 'affordable', '## Heading', '### Sub', '```', '---']
    const gaps = [' ', '\n', '\n\n']
    const overlaps = (text: string, sep: string) => {
      if (sep.length < 2) return false
      for (let at = text.indexOf(sep); at >= 0; at = text.indexOf(sep, at + 1)) {
        const again = text.indexOf(sep, at + 1)
        if (again >= 0 && again < at + sep.length) return true
      }
      return false
    }
    let compared = 0
    let skipped = 0
    for (let i = 0; i < 200; i++) {
      const parts: string[] = []
      for (let w = Math.floor(rng.uniform() * 80); w > 0; w--) parts.push(words[Math.floor(rng.uniform() * words.length)]!, gaps[Math.floor(rng.uniform() * gaps.length)]!)
      // No run of separators longer than one (where LangChain.js cuts at every position).
      const text = parts.join('').replace(/\n{3,}/g, '\n\n').replace(/ {2,}/g, ' ')
      const size = 5 + Math.floor(rng.uniform() * 120)
      const overlap = Math.floor(rng.uniform() * (size / 2))
      for (const separators of [RECURSIVE_SEPARATORS, MARKDOWN_SEPARATORS]) {
        // Where a separator's occurrences overlap, the two LangChains differ (see split.ts): not compared.
        if (separators.some((sep) => overlaps(text, sep))) {
          skipped++
          continue
        }
        compared++
        const theirs = await new RecursiveCharacterTextSplitter({ chunkSize: size, chunkOverlap: overlap, separators: [...separators], lengthFunction: codePoints }).splitText(text)
        expect(splitText(text, { size, overlap, separators }), JSON.stringify({ text, size, overlap })).toEqual(theirs)
      }
    }
    expect(compared).toBeGreaterThan(3 * skipped)
  })

  it('measures by any length, so a tokenizer\'s count keeps every chunk within the model\'s window', () => {
    const tokens = (t: string) => t.split(/\s+/).filter(Boolean).length
    const text = Array.from({ length: 500 }, (_, i) => `word${i}`).join(' ')
    const chunks = splitText(text, { size: 64, overlap: 8, length: tokens })
    expect(chunks.length).toBeGreaterThan(7)
    expect(Math.max(...chunks.map(tokens))).toBeLessThanOrEqual(64)
    // Every word is in some chunk, in order.
    expect(chunks.join(' ').split(' ').filter((w, i, all) => all.indexOf(w) === i)).toEqual(text.split(' '))
  })

  it('cuts a document into sections by content alone: an edit moves no boundary outside its own section', () => {
    const paragraphs = Array.from({ length: 200 }, (_, i) => `paragraph ${i} ${'text '.repeat(i % 7)}`)
    const cut = sections(paragraphs.join('\n\n'), 4)
    // About one section per four paragraphs, and nothing lost.
    expect(cut.length).toBeGreaterThan(30)
    expect(cut.length).toBeLessThan(80)
    expect(cut.join('\n\n')).toBe(paragraphs.join('\n\n'))
    // Editing paragraph 100 changes at most the section holding it (and merges with the next when the edit removed its anchor).
    const edited = [...paragraphs]
    edited[100] = 'something else entirely'
    const after = sections(edited.join('\n\n'), 4)
    const changed = after.filter((s) => !cut.includes(s))
    expect(changed.length).toBeLessThanOrEqual(2)
    // A heading always starts a section; 1: a paragraph each; 0: the whole text.
    expect(sections('intro\n\n## Parks\n\nabout parks', 1000003)).toEqual(['intro', '## Parks\n\nabout parks'])
    expect(sections('a\n\nb\n\nc', 1)).toEqual(['a', 'b', 'c'])
    expect(sections('a\n\nb', 0)).toEqual(['a\n\nb'])
    expect(() => sections('a', -1)).toThrow(/sectionEvery must be a whole number of 0 or more, got -1/)
    // splitDocument: each section split on its own, within the size.
    const chunks = splitDocument(paragraphs.join('\n\n'), { size: 120, overlap: 20 })
    expect(Math.max(...chunks.map((c) => c.length))).toBeLessThanOrEqual(120)
  })

  it('refuses a size or overlap that cannot split, naming it', () => {
    expect(() => splitText('x', { size: 0, overlap: 0 })).toThrow(/chunk size must be a whole number of 1 or more, got 0/)
    expect(() => splitText('x', { size: 10, overlap: 11 })).toThrow(/chunk overlap must be a whole number from 0 to the size \(10\), got 11/)
    expect(splitText('', { size: 10, overlap: 0 })).toEqual([])
    expect(splitText(' \n\n ', { size: 10, overlap: 0 })).toEqual([])
  })
})

describe('which chunks an edit embeds again', () => {
  const doc = (texts: string[]): NextChunk[] => texts.map((text) => ({ text, hash: chunkHash(text) }))
  const stored = (texts: string[]) => texts.map((text, seq) => ({ seq, hash: chunkHash(text) }))

  it('embeds only the chunks whose text is new; the rest keep their vectors, moved when an edit before them moved them', () => {
    const before = ['intro', 'one', 'two', 'three', 'end']
    // An edit in the middle: one chunk.
    expect(planChunks(stored(before), doc(['intro', 'one', 'TWO', 'three', 'end']))).toEqual({
      embed: [{ seq: 2, text: 'TWO', hash: chunkHash('TWO') }], keep: [0, 1, 3, 4].map((s) => ({ from: s, to: s })), remove: [2],
    })
    // A paragraph inserted at the start: one new chunk, every other moves by one, none embedded again.
    const inserted = planChunks(stored(before), doc(['new', ...before]))
    expect(inserted.embed.map((e) => e.seq)).toEqual([0])
    expect(inserted.keep).toEqual(before.map((_, i) => ({ from: i, to: i + 1 })))
    expect(inserted.remove).toEqual([])
    // Cut at the end: the chunks past the new end go.
    expect(planChunks(stored(before), doc(['intro', 'one']))).toMatchObject({ embed: [], remove: [2, 3, 4] })
    // Unchanged: nothing. Emptied: everything goes.
    expect(planChunks(stored(before), doc(before))).toMatchObject({ embed: [], remove: [] })
    expect(planChunks(stored(before), [])).toMatchObject({ embed: [], keep: [], remove: [0, 1, 2, 3, 4] })
  })

  it('matches a repeated text as many times as it is stored, the same position first, then the nearest', () => {
    const plan = planChunks(stored(['x', 'y', 'x']), doc(['x', 'x', 'x', 'y']))
    // x at 0 and 2 stay; y moves from 1 to 3; the third x (at 1) is new.
    expect(plan.keep).toEqual([{ from: 0, to: 0 }, { from: 2, to: 2 }, { from: 1, to: 3 }])
    expect(plan.embed.map((e) => e.seq)).toEqual([1])
    expect(plan.remove).toEqual([])
    expect(() => planChunks([{ seq: 1, hash: 'a' }, { seq: 1, hash: 'b' }], [])).toThrow(/two stored chunks at position 1/)
  })

  it('formats a chunk with the row\'s columns, so an edit of a column the template uses changes every chunk\'s hash', () => {
    const row = { title: 'Parks', year: 2026, note: null }
    expect(formatChunk('{title} ({year}){note}: {chunk} {{literal}}', 'text', row)).toBe('Parks (2026): text {literal}')
    expect(() => formatChunk('{titel}: {chunk}', 'text', row)).toThrow(/names \{titel\}, which is not a column of the row \(columns: title, year, note\)/)
    const a = planChunks(stored(['A', 'B'].map((c) => formatChunk('{title}: {chunk}', c, row))), doc(['A', 'B'].map((c) => formatChunk('{title}: {chunk}', c, { ...row, title: 'Gardens' }))))
    expect(a.embed).toHaveLength(2)
  })
})
