#!/usr/bin/python3
"""Generates the small BERT-shaped ONNX models the tests and benchmarks use, under
test/fixtures/models/<id>/ in the layout Hugging Face uses (config.json, tokenizer.json,
tokenizer_config.json, vocab.txt, onnx/model.onnx, sentence-transformers pooling config).

Each is a real one-layer transformer encoder — token, position and type embeddings, LayerNorm,
single-head self-attention with the attention mask, a tanh feed-forward block, LayerNorm — with
fixed pseudo-random weights and a WordPiece vocabulary of letters, digits, punctuation, ## pieces
and common words. Not trained: the vectors mean nothing, but they are deterministic, depend on
every token and on the mask, and exercise the same code paths as MiniLM/e5/bge models.

Run with Debian's interpreter (python3-onnx, python3-numpy):  /usr/bin/python3 scripts/generate-fixture-models.py
The output is committed; tests never run this.
"""
import json
import os
import string
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wordpiece_tokenizer import SPECIALS, tokenizer_json  # noqa: E402  (shared with the other model script)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'models')
MAX_POSITIONS = 128
WORDS = """the of and to in a is that for it as was with be by on not he this are or his from at which but
have an they you were her she there been one all we their has would when if so no will more can
who what up out about into than them its only other new some time could these two may first then
do any like my now over such our man me even most made after also did many before must through back
years where much your way well down should because each just those people how too little state good
very make world still own see men work long get here between both life being under never day same
another know while last might us great old year off come since against go came right used take three
housing home homes family families affordable rent school schools health care city public park parks
water road roads tax taxes budget police fire safety library libraries transit bus train bike
energy power climate green tree trees waste recycling permit permits business jobs job wage wages
search vector vectors embedding embeddings model models query queries database table row rows column
postgres postgresql index indexes text document documents semantic hybrid neighbor nearest distance
cosine cat dog fish bird mouse horse cow""".split()


def vocabulary():
    tokens = list(SPECIALS)
    tokens += list(string.ascii_lowercase) + list(string.digits)
    tokens += list('.,;:!?\'"()[]{}-_/\\@#$%&*+=<>|~`^')
    tokens += ['##' + c for c in string.ascii_lowercase + string.digits]
    tokens += ['##s', '##es', '##ed', '##ing', '##ly', '##er', '##est', '##tion', '##ment']
    seen = set()
    out = []
    for t in tokens + WORDS:
        if t not in seen:
            seen.add(t)
            out.append(t)
    return out


def build_graph(vocab_size, hidden, seed, layers=1, intermediate=None):
    intermediate = intermediate or 2 * hidden
    rng = np.random.default_rng(seed)
    w = lambda *shape: (rng.standard_normal(shape) * 0.2).astype(np.float32)
    inits = {
        'word_embeddings': w(vocab_size, hidden),
        'position_embeddings': w(MAX_POSITIONS, hidden),
        'token_type_embeddings': w(2, hidden),
        'ln0_gamma': (1 + w(hidden)).astype(np.float32), 'ln0_beta': w(hidden),
        'wq': w(hidden, hidden), 'wk': w(hidden, hidden), 'wv': w(hidden, hidden), 'wo': w(hidden, hidden),
        'ln1_gamma': (1 + w(hidden)).astype(np.float32), 'ln1_beta': w(hidden),
        'w1': w(hidden, intermediate), 'b1': w(intermediate), 'w2': w(intermediate, hidden), 'b2': w(hidden),
        'ln2_gamma': (1 + w(hidden)).astype(np.float32), 'ln2_beta': w(hidden),
        'zero': np.array(0, dtype=np.int64), 'one': np.array(1, dtype=np.int64), 'one_idx': np.array([1], dtype=np.int64),
        'scale': np.array(1.0 / np.sqrt(hidden), dtype=np.float32),
        'mask_one': np.array(1.0, dtype=np.float32), 'mask_neg': np.array(-10000.0, dtype=np.float32),
        'unsq_axes': np.array([1], dtype=np.int64),
    }
    n = helper.make_node
    nodes = [
        n('Gather', ['word_embeddings', 'input_ids'], ['we']),
        n('Shape', ['input_ids'], ['ids_shape']),
        n('Gather', ['ids_shape', 'one'], ['seq_len']),
        n('Range', ['zero', 'seq_len', 'one'], ['positions']),
        n('Gather', ['position_embeddings', 'positions'], ['pe']),
        n('Gather', ['token_type_embeddings', 'token_type_ids'], ['te']),
        n('Add', ['we', 'pe'], ['x0a']),
        n('Add', ['x0a', 'te'], ['x0b']),
        n('LayerNormalization', ['x0b', 'ln0_gamma', 'ln0_beta'], ['x0'], axis=-1, epsilon=1e-12),
    ]
    # Layer 0 keeps the names (and random draws) of the one-layer fixtures; further layers (the
    # benchmark's model) get suffixed copies of its weights' shapes and are chained after it.
    def layer(x, out, sfx):
        q = lambda name: name + sfx
        for name in ['wq', 'wk', 'wv', 'wo', 'ln1_gamma', 'ln1_beta', 'w1', 'b1', 'w2', 'b2', 'ln2_gamma', 'ln2_beta']:
            if sfx and q(name) not in inits:
                base = inits[name]
                inits[q(name)] = (1 + w(*base.shape)).astype(np.float32) if 'gamma' in name else w(*base.shape)
        return [
            # single-head self-attention; padded positions get -10000 before the softmax
            n('MatMul', [x, q('wq')], [q('q')]),
            n('MatMul', [x, q('wk')], [q('k')]),
            n('MatMul', [x, q('wv')], [q('v')]),
            n('Transpose', [q('k')], [q('kt')], perm=[0, 2, 1]),
            n('MatMul', [q('q'), q('kt')], [q('scores_raw')]),
            n('Mul', [q('scores_raw'), 'scale'], [q('scores_scaled')]),
        ] + ([
            n('Cast', ['attention_mask'], ['mask_f'], to=TensorProto.FLOAT),
            n('Sub', ['mask_one', 'mask_f'], ['mask_inv']),
            n('Mul', ['mask_inv', 'mask_neg'], ['mask_add2d']),
            n('Unsqueeze', ['mask_add2d', 'unsq_axes'], ['mask_add']),
        ] if not sfx else []) + [
            n('Add', [q('scores_scaled'), 'mask_add'], [q('scores')]),
            n('Softmax', [q('scores')], [q('probs')], axis=-1),
            n('MatMul', [q('probs'), q('v')], [q('ctx')]),
            n('MatMul', [q('ctx'), q('wo')], [q('attn_out')]),
            n('Add', [x, q('attn_out')], [q('x1a')]),
            n('LayerNormalization', [q('x1a'), q('ln1_gamma'), q('ln1_beta')], [q('x1')], axis=-1, epsilon=1e-12),
            n('MatMul', [q('x1'), q('w1')], [q('h1a')]),
            n('Add', [q('h1a'), q('b1')], [q('h1b')]),
            n('Tanh', [q('h1b')], [q('h1')]),
            n('MatMul', [q('h1'), q('w2')], [q('h2a')]),
            n('Add', [q('h2a'), q('b2')], [q('h2')]),
            n('Add', [q('x1'), q('h2')], [q('x2a')]),
            n('LayerNormalization', [q('x2a'), q('ln2_gamma'), q('ln2_beta')], [out], axis=-1, epsilon=1e-12),
        ]
    x = 'x0'
    for i in range(layers):
        out = 'last_hidden_state' if i == layers - 1 else f'x_l{i + 1}'
        nodes += layer(x, out, '' if i == 0 else f'_l{i}')
        x = out
    ids = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ['batch_size', 'sequence_length'])
    graph = helper.make_graph(
        nodes, 'tiny_bert',
        [ids('input_ids'), ids('attention_mask'), ids('token_type_ids')],
        [helper.make_tensor_value_info('last_hidden_state', TensorProto.FLOAT, ['batch_size', 'sequence_length', hidden])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)], producer_name='pgml-kit fixture generator')
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def write_json(path, value):
    with open(path, 'w') as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write('\n')


def generate(model_id, hidden, pooling, seed, prompts=None, layers=1, intermediate=None, root=ROOT):
    out = os.path.join(root, model_id)
    os.makedirs(os.path.join(out, 'onnx'), exist_ok=True)
    os.makedirs(os.path.join(out, '1_Pooling'), exist_ok=True)
    vocab = vocabulary()
    onnx.save(build_graph(len(vocab), hidden, seed, layers, intermediate), os.path.join(out, 'onnx', 'model.onnx'))
    with open(os.path.join(out, 'vocab.txt'), 'w') as f:
        f.write('\n'.join(vocab) + '\n')
    write_json(os.path.join(out, 'tokenizer.json'), tokenizer_json(vocab))
    write_json(os.path.join(out, 'tokenizer_config.json'), {
        'tokenizer_class': 'BertTokenizer', 'do_lower_case': True, 'model_max_length': MAX_POSITIONS,
        'cls_token': '[CLS]', 'sep_token': '[SEP]', 'pad_token': '[PAD]', 'unk_token': '[UNK]', 'mask_token': '[MASK]',
    })
    write_json(os.path.join(out, 'config.json'), {
        'model_type': 'bert', 'architectures': ['BertModel'], 'hidden_size': hidden, 'num_hidden_layers': layers,
        'num_attention_heads': 1, 'intermediate_size': intermediate or 2 * hidden, 'max_position_embeddings': MAX_POSITIONS,
        'vocab_size': len(vocab), 'type_vocab_size': 2, 'layer_norm_eps': 1e-12, 'hidden_act': 'tanh',
        'pad_token_id': 0,
    })
    write_json(os.path.join(out, '1_Pooling', 'config.json'), {
        'word_embedding_dimension': hidden,
        'pooling_mode_cls_token': pooling == 'cls', 'pooling_mode_mean_tokens': pooling == 'mean',
        'pooling_mode_max_tokens': False, 'pooling_mode_mean_sqrt_len_tokens': False,
    })
    write_json(os.path.join(out, 'modules.json'), [
        {'idx': 0, 'name': '0', 'path': '', 'type': 'sentence_transformers.models.Transformer'},
        {'idx': 1, 'name': '1', 'path': '1_Pooling', 'type': 'sentence_transformers.models.Pooling'},
    ])  # no Normalize module: normalisation follows the caller's normalize_embeddings
    print(f'{model_id}: hidden {hidden}, vocab {len(vocab)}, pooling {pooling}', file=sys.stderr)
    if prompts:
        with open(os.path.join(out, 'config_sentence_transformers.json'), 'w') as f:
            json.dump({'prompts': prompts, 'default_prompt_name': None}, f, indent=2)
            f.write('\n')


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--bench':
        # bench/backfill.ts: a model with MiniLM-L6's shape and cost (6 layers, 384 wide, 1536 feed-forward),
        # written to a scratch directory at benchmark time (about 45 MB; not committed).
        generate('pgml-kit/bench-bert-384', 384, 'mean', 384, layers=6, intermediate=1536, root=sys.argv[2])
        sys.exit(0)
    # tiny-bert-16 is used with e5-style prefixes; its prompts are what `prompt_name` selects.
    generate('pgml-kit/tiny-bert-16', 16, 'mean', 16, prompts={'query': 'query: ', 'passage': 'passage: '})
    generate('pgml-kit/tiny-bert-32', 32, 'cls', 32)
