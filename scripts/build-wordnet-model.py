#!/usr/bin/python3
"""Builds pgml-kit/wordnet-static-128: a small static sentence-embedding model from WordNet 3.0.

A static model is a table of word vectors and mean pooling over the words of a text (like model2vec
or sentence-transformers' static embeddings): fast, and good enough for keyword-plus-meaning search.
The vectors come from WordNet alone (Debian's wordnet-base), so the model is built offline:

  1. Every synset is a context: its lemmas (weight 2 for a word's most frequent sense, less for its
     rarer ones: WordNet lists a word's senses most frequent first; 0.5 for the parts of a compound),
     the content words of its gloss and examples (weight 0.5), and the lemmas of the synsets it
     points to — hypernyms, hyponyms, similar, derivationally related, meronyms and holonyms, ...
     (weight 0.5). Words are reduced to their lemma first (WordNet's morphy: "families" → "family").
     Synsets of proper names (places, people) and of biological taxonomy (everything under
     taxonomic_group, `family Ranidae`, `genus …`) are left out: there are thousands of them, and
     they would pull "family", "park" or "order" away from the senses people search with.
  2. Vocabulary: the words that occur most (sense counts from cntlist.rev, gloss occurrences,
     synsets), 30,000 of them; stop words get no vector.
  3. Word × context matrix, weighted by positive pointwise mutual information, truncated SVD to 128
     dimensions (seeded: the same input gives the same model), each word vector normalised and then
     scaled by the word's inverse context frequency, so rarer words weigh more in the mean.
  4. Inflected forms (WordNet's exception lists, and regular plurals, verb forms and comparatives)
     are tokens of their own that share their lemma's vector: "homes" means what "home" means.
  5. Stored as int8 with one scale per row (a quarter of float32; cosine to the float vectors
     > 0.9999).

It is written as a model folder that transformers.js (onnxruntime) and pgml_compat both load
unchanged: onnx/model.onnx (input_ids, attention_mask → last_hidden_state: Gathers, a Cast and a
Mul), tokenizer.json (BERT normaliser and pre-tokeniser, WordPiece over whole words: a word that is
not in the vocabulary is [UNK], which has no vector), config.json, tokenizer_config.json,
1_Pooling/config.json (mean) and modules.json (with Normalize).

    /usr/bin/python3 scripts/build-wordnet-model.py [wordnet dir] [output dir]

Needs Debian's wordnet-base, python3-numpy, python3-scipy and python3-onnx; about 30 s. The
settings (WORDNET_DIMENSIONS, WORDNET_VOCABULARY, WORDNET_GLOSS_WEIGHT) were chosen on the tuning
queries of test/fixtures/relevance/city-services.json. The output is committed (5.4 MB) and ships
in the package.
"""
import collections
import json
import math
import os
import re
import sys
import unicodedata

import numpy as np
import onnx
import scipy.sparse as sp
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wordpiece_tokenizer import SPECIALS, tokenizer_json  # noqa: E402  (shared with the other model script)
from scipy.sparse.linalg import svds

WORDNET = sys.argv[1] if len(sys.argv) > 1 else '/usr/share/wordnet'
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'models', 'pgml-kit', 'wordnet-static-128')
DIMENSIONS = int(os.environ.get('WORDNET_DIMENSIONS', '128'))
# A word in a synset's gloss says less about the synset than its lemmas do.
GLOSS_WEIGHT = float(os.environ.get('WORDNET_GLOSS_WEIGHT', '0.5'))
VOCABULARY = int(os.environ.get('WORDNET_VOCABULARY', '30000'))
MAX_POSITIONS = 512
POS_FILES = {'n': 'noun', 'v': 'verb', 'a': 'adj', 's': 'adj', 'r': 'adv'}
LINKED = {'@', '@i', '~', '~i', '&', '^', '+', '\\', '#m', '#p', '#s', '%m', '%p', '%s', '=', '$', '*', '>', ';c', '-c'}
STOP = set("""a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
only or other our ours ourselves out over own same she should so some such than that the their theirs them themselves
then there these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours yourself yourselves one ones something someone somebody used esp usually often
especially etc e g i.e""".split())


def words_of(text):
    """Lowercase, accents stripped, split on anything that is not a letter or digit: what BERT's
    normaliser and pre-tokeniser give for plain words."""
    text = unicodedata.normalize('NFD', text.lower())
    text = ''.join(ch for ch in text if unicodedata.category(ch) != 'Mn')
    return re.findall(r'[a-z0-9]+', text)


def read_synsets():
    synsets = {}
    for pos_file in ('noun', 'verb', 'adj', 'adv'):
        with open(os.path.join(WORDNET, f'data.{pos_file}'), encoding='latin-1') as f:
            for line in f:
                if line.startswith('  '):
                    continue
                head, _, gloss = line.partition(' | ')
                fields = head.split()
                offset, pos = fields[0], fields[2]
                count = int(fields[3], 16)
                lemmas = [re.sub(r'\(.*\)$', '', fields[4 + 2 * i]) for i in range(count)]
                at = 4 + 2 * count
                pointers, hypernyms = [], []
                for i in range(int(fields[at])):
                    symbol, target, target_pos = fields[at + 1 + 4 * i], fields[at + 2 + 4 * i], fields[at + 3 + 4 * i]
                    target = (target, 'a' if target_pos == 's' else target_pos)
                    if symbol in LINKED:
                        pointers.append(target)
                    if symbol in ('@', '@i'):
                        hypernyms.append(target)
                key = (offset, 'a' if pos == 's' else pos)
                synsets[key] = {'lemmas': lemmas, 'pointers': pointers, 'hypernyms': hypernyms, 'gloss': gloss.strip()}
    # Biological taxa ("Ranidae", "a family of bacteria") are thousands of synsets under
    # taxonomic_group; they would pull "family", "order" or "class" away from the senses people
    # search with.
    taxon = ('07992450', 'n')
    memo = {}

    def under_taxon(key, depth=0):
        if key == taxon:
            return True
        if key not in memo:
            memo[key] = False
            memo[key] = depth < 40 and any(under_taxon(h, depth + 1) for h in synsets.get(key, {}).get('hypernyms', []))
        return memo[key]

    for key, synset in synsets.items():
        synset['taxon'] = under_taxon(key)
    return synsets


TAXONOMY = re.compile(r'^(family|genus|subfamily|superfamily|order|suborder|superorder|class|subclass|superclass|phylum|subphylum|division|subdivision|tribe|kingdom|subkingdom)_', re.I)


# "a fish of the family Cyprinidae": the rank word says nothing about the fish, and thousands of such
# glosses would make "family" mean taxonomy.
TAXON_NAME = re.compile(r'\b(family|genus|subfamily|order|suborder|class|subclass|phylum|tribe)\s+[A-Z][a-z]+')


def searchable(synset):
    """Not a proper name (every lemma capitalised) and not a taxonomic rank."""
    lemmas = synset['lemmas']
    if synset['taxon'] or all(l[:1].isupper() for l in lemmas):
        return False
    return not any(TAXONOMY.match(l) for l in lemmas)


def sense_counts():
    counts = collections.Counter()
    with open(os.path.join(WORDNET, 'cntlist.rev')) as f:
        for line in f:
            key, _, count = line.split()
            for word in words_of(key.split('%')[0].replace('_', ' ')):
                counts[word] += int(count)
    return counts


def sense_ranks():
    """(word, synset) → the sense's rank for that word, 0 for its most frequent (index.* order)."""
    ranks = {}
    for pos, name in (('n', 'noun'), ('v', 'verb'), ('a', 'adj'), ('r', 'adv')):
        with open(os.path.join(WORDNET, f'index.{name}'), encoding='latin-1') as f:
            for line in f:
                if line.startswith('  '):
                    continue
                fields = line.split()
                lemma, count = fields[0], int(fields[2])
                for rank, offset in enumerate(fields[-count:]):
                    ranks[(lemma, (offset, pos))] = rank
    return ranks


def lemma_pos():
    """Which parts of speech each single word is a lemma of (for its inflected forms)."""
    out = collections.defaultdict(set)
    for pos, name in (('n', 'noun'), ('v', 'verb'), ('a', 'adj'), ('r', 'adv')):
        with open(os.path.join(WORDNET, f'index.{name}'), encoding='latin-1') as f:
            for line in f:
                if not line.startswith('  '):
                    lemma = line.split()[0]
                    if re.fullmatch(r'[a-z0-9]+', lemma):
                        out[lemma].add(pos)
    return out


def exceptions():
    """Irregular forms from the exception lists: form → lemma."""
    out = {}
    for name in ('noun', 'verb', 'adj', 'adv'):
        with open(os.path.join(WORDNET, f'{name}.exc')) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and re.fullmatch(r'[a-z0-9]+', parts[0]) and re.fullmatch(r'[a-z0-9]+', parts[1]):
                    out.setdefault(parts[0], parts[1])
    return out


MORPHY = [('s', ''), ('ses', 's'), ('xes', 'x'), ('zes', 'z'), ('ches', 'ch'), ('shes', 'sh'), ('men', 'man'), ('ies', 'y'),
          ('es', 'e'), ('es', ''), ('ed', 'e'), ('ed', ''), ('ing', 'e'), ('ing', ''), ('er', ''), ('est', ''), ('er', 'e'), ('est', 'e')]


def lemmatizer(lemmas, irregular):
    """WordNet's morphy, roughly: a word that is a lemma stays; an irregular form maps through the
    exception lists; otherwise the first suffix rule that gives a lemma. "families" → "family"."""
    memo = {}

    def lemma_of(word):
        if word not in memo:
            if word in lemmas:
                memo[word] = word
            elif word in irregular:
                memo[word] = irregular[word]
            else:
                memo[word] = next((word[:-len(a)] + b for a, b in MORPHY
                                   if word.endswith(a) and len(word) - len(a) + len(b) > 1 and word[:-len(a)] + b in lemmas), word)
        return memo[word]
    return lemma_of


def regular_forms(word, parts_of_speech):
    consonant_y = len(word) > 1 and word.endswith('y') and word[-2] not in 'aeiou'
    sibilant = word.endswith(('s', 'x', 'z', 'ch', 'sh'))
    forms = set()
    if 'n' in parts_of_speech or 'v' in parts_of_speech:
        forms.add(word[:-1] + 'ies' if consonant_y else word + ('es' if sibilant else 's'))
    if 'v' in parts_of_speech:
        stem = word[:-1] if word.endswith('e') and not word.endswith('ee') else word
        forms.add(word[:-1] + 'ied' if consonant_y else (word + 'd' if word.endswith('e') else word + 'ed'))
        forms.add(stem + 'ing')
    if 'a' in parts_of_speech and len(word) <= 7:
        base = word[:-1] + 'i' if consonant_y else (word[:-1] if word.endswith('e') else word)
        forms.update({base + 'er', base + 'est'})
    return forms


def build():
    synsets = read_synsets()
    keys = sorted(k for k, s in synsets.items() if searchable(s))
    ranks = sense_ranks()
    parts = lemma_pos()
    irregular = exceptions()
    lemma_of = lemmatizer(parts, irregular)
    # Contexts: synset → {word: weight}.
    contexts = []
    gloss_counts = collections.Counter()
    synset_counts = collections.Counter()
    for key in keys:
        s = synsets[key]
        bag = collections.defaultdict(float)
        for lemma in s['lemmas']:
            # A word's own rare senses count less than its common ones; a part of a compound
            # ("school" in "school_of_thought") is only loosely about the synset.
            words = [lemma_of(w) for w in words_of(lemma.replace('_', ' '))]
            rank = ranks.get((lemma.lower(), key))
            weight = 2.0 / (1 + rank) if rank is not None and len(words) == 1 else 0.5
            for w in words:
                bag[w] = max(bag[w], weight)
                synset_counts[w] += 1
        for w in words_of(TAXON_NAME.sub(' ', s['gloss'])):
            w = lemma_of(w)
            gloss_counts[w] += 1
            if w not in STOP:
                bag[w] = max(bag[w], GLOSS_WEIGHT)
        for target in s['pointers']:
            linked = synsets.get(target)
            if linked and searchable(linked):
                for lemma in linked['lemmas']:
                    for w in map(lemma_of, words_of(lemma.replace('_', ' '))):
                        bag[w] = max(bag[w], 0.5)
        contexts.append(bag)

    senses = sense_counts()
    candidates = {w for w in set(gloss_counts) | set(synset_counts) if w not in STOP and not w.isdigit() and len(w) > 1}
    score = lambda w: (2 * senses[w] + gloss_counts[w] + synset_counts[w], w)
    vocabulary = sorted(candidates, key=score, reverse=True)[:VOCABULARY]
    vocabulary.sort()
    index = {w: i for i, w in enumerate(vocabulary)}

    rows, cols, vals = [], [], []
    for c, bag in enumerate(contexts):
        for w, weight in bag.items():
            i = index.get(w)
            if i is not None:
                rows.append(i)
                cols.append(c)
                vals.append(weight)
    m = sp.csr_matrix((np.array(vals, dtype=np.float64), (rows, cols)), shape=(len(vocabulary), len(contexts)))
    # Positive pointwise mutual information.
    total = m.sum()
    word_sums = np.asarray(m.sum(axis=1)).ravel()
    context_sums = np.asarray(m.sum(axis=0)).ravel()
    coo = m.tocoo()
    pmi = np.log((coo.data * total) / (word_sums[coo.row] * context_sums[coo.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=m.shape)
    # Truncated SVD, seeded, so the same input gives the same model.
    v0 = np.random.default_rng(0).standard_normal(min(ppmi.shape))
    u, sigma, _ = svds(ppmi, k=DIMENSIONS, v0=v0)
    order = np.argsort(-sigma)
    vectors = u[:, order] * np.sqrt(sigma[order])
    # A sign per dimension fixed by the data (ARPACK may return either).
    vectors *= np.sign(vectors.sum(axis=0) + 1e-12)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.clip(norms, 1e-12, None)
    df = np.asarray((m > 0).sum(axis=1)).ravel()
    idf = np.log((len(contexts) + 1) / (df + 1))
    vectors *= (idf / idf.mean())[:, None]

    # Rows: 0 is zero ([PAD], and [UNK]: stop words and unknown words say nothing), 1 is [CLS]'s,
    # [SEP]'s and [MASK]'s (see below), then one per word.
    # Tokens: specials, the vocabulary, and inflected forms sharing their lemma's row.
    tokens = list(SPECIALS) + vocabulary
    token_rows = [{'[PAD]': 0, '[UNK]': 0}.get(t, 1) for t in SPECIALS] + [i + 2 for i in range(len(vocabulary))]
    taken = set(tokens)
    forms = []
    for form, lemma in sorted(irregular.items()):
        if lemma in index and form not in taken:
            forms.append((form, index[lemma] + 2))
            taken.add(form)
    for word in vocabulary:
        for form in sorted(regular_forms(word, parts.get(word, set()))):
            if form not in taken:
                forms.append((form, index[word] + 2))
                taken.add(form)
    for form, row in forms:
        tokens.append(form)
        token_rows.append(row)
    # [CLS] and [SEP], in every text, share a very short vector in the direction of the average
    # word: a text with no known word (empty, only stop words, another language) still gets a unit
    # vector rather than zeros, which normalise to NaN; beside any real word it weighs nothing.
    mean = vectors.mean(axis=0)
    specials = mean / np.linalg.norm(mean) * 1e-3
    table = np.vstack([np.zeros((1, DIMENSIONS)), specials[None, :], vectors])
    return tokens, np.array(token_rows, dtype=np.int32), quantise(table), len(forms)


def quantise(table):
    """int8 codes with one float32 scale per row (symmetric): a quarter of float32's size; the
    vectors it gives back are within half a step (max |v| / 254) of the originals."""
    peak = np.abs(table).max(axis=1)
    scales = np.where(peak > 0, peak / 127, 1.0).astype(np.float32)
    codes = np.clip(np.rint(table / scales[:, None]), -127, 127).astype(np.int8)
    return codes, scales


def graph(token_rows, table):
    codes, scales = table
    input_ids = helper.make_tensor_value_info('input_ids', TensorProto.INT64, ['batch', 'sequence'])
    attention_mask = helper.make_tensor_value_info('attention_mask', TensorProto.INT64, ['batch', 'sequence'])
    output = helper.make_tensor_value_info('last_hidden_state', TensorProto.FLOAT, ['batch', 'sequence', codes.shape[1]])
    # token → row; row → int8 codes × the row's scale.
    nodes = [
        helper.make_node('Gather', ['token_rows', 'input_ids'], ['rows'], axis=0),
        helper.make_node('Gather', ['word_codes', 'rows'], ['codes'], axis=0),
        helper.make_node('Cast', ['codes'], ['codes_float'], to=TensorProto.FLOAT),
        helper.make_node('Gather', ['row_scales', 'rows'], ['scales'], axis=0),
        helper.make_node('Unsqueeze', ['scales', 'last_axis'], ['scales_column']),
        helper.make_node('Mul', ['codes_float', 'scales_column'], ['last_hidden_state']),
    ]
    g = helper.make_graph(nodes, 'wordnet-static', [input_ids, attention_mask], [output], [
        numpy_helper.from_array(token_rows, 'token_rows'), numpy_helper.from_array(codes, 'word_codes'),
        numpy_helper.from_array(scales, 'row_scales'), numpy_helper.from_array(np.array([-1], dtype=np.int64), 'last_axis')])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)], producer_name='pgml-kit build-wordnet-model')
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_json(path, value, indent=2):
    with open(path, 'w') as f:
        json.dump(value, f, indent=indent, sort_keys=True, separators=(',', ':') if indent is None else None)
        f.write('\n')


def main():
    tokens, token_rows, table, inflected = build()
    os.makedirs(os.path.join(OUT, 'onnx'), exist_ok=True)
    os.makedirs(os.path.join(OUT, '1_Pooling'), exist_ok=True)
    onnx.save(graph(token_rows, table), os.path.join(OUT, 'onnx', 'model.onnx'))
    write_json(os.path.join(OUT, 'tokenizer.json'), tokenizer_json(tokens), indent=None)
    write_json(os.path.join(OUT, 'tokenizer_config.json'), {
        'tokenizer_class': 'BertTokenizer', 'do_lower_case': True, 'model_max_length': MAX_POSITIONS,
        'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', 'unk_token': '[UNK]', 'mask_token': '[MASK]',
    })
    write_json(os.path.join(OUT, 'config.json'), {
        'model_type': 'bert', 'architectures': ['BertModel'], 'hidden_size': DIMENSIONS, 'max_position_embeddings': MAX_POSITIONS,
        'vocab_size': len(tokens), 'pad_token_id': 0,
        'pgml_kit': 'static word vectors from WordNet 3.0 (scripts/build-wordnet-model.py); mean pooling, normalised',
    })
    write_json(os.path.join(OUT, '1_Pooling', 'config.json'), {
        'word_embedding_dimension': DIMENSIONS, 'pooling_mode_cls_token': False, 'pooling_mode_mean_tokens': True,
        'pooling_mode_max_tokens': False, 'pooling_mode_mean_sqrt_len_tokens': False,
    })
    write_json(os.path.join(OUT, 'modules.json'), [
        {'idx': 0, 'name': '0', 'path': '', 'type': 'sentence_transformers.models.Transformer'},
        {'idx': 1, 'name': '1', 'path': '1_Pooling', 'type': 'sentence_transformers.models.Pooling'},
        {'idx': 2, 'name': '2', 'path': '2_Normalize', 'type': 'sentence_transformers.models.Normalize'},
    ])
    print(f'{os.path.basename(os.path.normpath(OUT))}: {len(tokens)} tokens ({inflected} inflected forms), {table[0].shape[0] - 2} word vectors of {DIMENSIONS}', file=sys.stderr)


if __name__ == '__main__':
    main()
