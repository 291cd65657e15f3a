"""Writes test/fixtures/chunking/python-splits.json: texts split by pgml_compat's splitter (the
algorithm of pgml.chunk, which follows Python's LangChain), for test/unit/chunking.test.ts to
check that src/chunking/split.ts splits every one the same way.

    python3 scripts/build-chunk-fixtures.py     (needs numpy, which pgml_compat imports)
"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'extensions', 'pgml_compat', 'python'))
import pgml_compat  # noqa: E402

rng = random.Random(20261207)
WORDS = ['a', 'to', 'the', 'park', 'housing', 'affordable', 'municipal', 'über', 'naïve', 'café', '東京', '🙂', 'x' * 30]
GAPS = [' ', ' ', ' ', ' ', '  ', '\n', '\n\n', '\n\n\n', '\t', ' \n ']


def text():
    out = []
    for _ in range(rng.randint(0, 60)):
        out.append(rng.choice(WORDS))
        out.append(rng.choice(GAPS))
    return ''.join(out)


cases = []
for i in range(200):
    size = rng.choice([1, 2, 5, 10, 20, 40, 80, 200])
    overlap = rng.randint(0, size // 2) if size > 1 else 0
    separators = None if i % 3 else rng.choice([['\n\n', '\n', ' ', ''], ['\n', ''], [' '], ['. ', ' ', '']])
    args = {'chunk_size': size, 'chunk_overlap': overlap}
    if separators is not None:
        args['separators'] = separators
    t = text()
    chunks = pgml_compat._Splitter('recursive_character', args).split(t)
    cases.append({'text': t, 'size': size, 'overlap': overlap, 'separators': separators, 'chunks': chunks})

with open(os.path.join(HERE, '..', 'test', 'fixtures', 'chunking', 'python-splits.json'), 'w', encoding='utf-8') as f:
    json.dump(cases, f, ensure_ascii=False, indent=0)
    f.write('\n')
print('%d cases' % len(cases))
