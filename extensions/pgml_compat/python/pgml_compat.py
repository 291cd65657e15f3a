"""pgml_compat: the part of PostgresML's `pgml` SQL API that pgml-kit generates, for stock
PostgreSQL with PL/Python. Loaded once per backend into PL/Python's GD by the extension's SQL
functions (see pgml_compat--*.sql); `plpy` is passed in by each call.

Embeddings run BERT-family sentence-embedding models from local files (`config.json`,
`tokenizer.json`, `onnx/model.onnx`, optional `1_Pooling/config.json`) — the same files the
Node embedder reads — with onnxruntime (CPU) when the Python module is installed, which runs any
exported graph including onnxruntime's contrib operators, and otherwise with a small numpy
evaluator for the ONNX operators BERT-family graphs use. `SET pgml_compat.engine = 'numpy'` or
`'onnxruntime'` chooses one (default `auto`).
Training and prediction use scikit-learn and xgboost.
"""
import json
import math
import operator
import os
import re
import pickle
import time
import unicodedata

import numpy as np

VERSION = '0.4.0'

# ---------------------------------------------------------------------------------------------
# Models directory


_models_dirs = {}


def models_dir(plpy):
    """Where model files come from: pgml_compat.models_dir as the server's configuration files set
    it (postgresql.conf, its includes, ALTER SYSTEM). pgml.embed runs as the extension's owner, so a
    value any role can give — SET in a session, ALTER ROLE/DATABASE ... SET, PGOPTIONS — must not
    steer what it loads; those are ignored. The configured value is read once per value the
    session reports (cheap), so a reload is seen by the next call."""
    seen = plpy.execute("SELECT pg_catalog.current_setting('pgml_compat.models_dir', true) AS dir")[0]['dir']
    if seen in _models_dirs:
        return _models_dirs[seen]
    rows = plpy.execute("""SELECT setting FROM pg_catalog.pg_show_all_file_settings()
                           WHERE name = 'pgml_compat.models_dir' AND error IS NULL ORDER BY applied DESC, seqno DESC LIMIT 1""")
    directory = rows[0]['setting'] if rows else None
    if not directory:
        raise plpy.Error(
            'pgml_compat.models_dir is not set in the server\'s configuration: add it to postgresql.conf (or ALTER SYSTEM SET it) and reload, '
            "e.g. pgml_compat.models_dir = '/var/lib/pgml-kit/models' (model ids are subdirectories: <dir>/intfloat/e5-small-v2/onnx/model.onnx; "
            'several directories: <dir>:<dir>). A value SET in a session or with ALTER DATABASE/ROLE ... SET is not used: '
            'pgml.embed runs as the extension owner, and any role can set those')
    _models_dirs[seen] = directory
    return directory


def model_path(plpy, model_id):
    """pgml_compat.models_dir is a list of directories separated by ':' (like PATH): the first
    that holds <model id>/onnx/model.onnx wins."""
    parts = model_id.split('/')
    if not model_id or model_id.startswith('/') or any(p in ('', '.', '..') for p in parts) or '\\' in model_id or '\x00' in model_id:
        raise plpy.Error('pgml_compat: invalid model id %r (a model id is a relative path such as intfloat/e5-small-v2)' % model_id)
    candidates = [os.path.join(d, model_id) for d in models_dir(plpy).split(':') if d]
    for path in candidates:
        if os.path.isfile(os.path.join(path, 'onnx', 'model.onnx')):
            return path
    raise plpy.Error('pgml_compat: model %r not found: expected %s (pgml_compat runs local models only; copy the model folder there)'
                     % (model_id, ' or '.join(os.path.join(p, 'onnx', 'model.onnx') for p in candidates)))


# ---------------------------------------------------------------------------------------------
# Tokenizer: the BERT WordPiece pipeline as described by tokenizer.json


def _is_punctuation(ch):
    cp = ord(ch)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(ch).startswith('P')


# Format characters Unicode added after 8.0: Hugging Face's tokenizers classify by Unicode 8.0
# tables and keep them (they become [UNK]); a newer unicodedata would call them control characters.
_FORMAT_AFTER_UNICODE_8 = frozenset([0x0890, 0x0891, 0x08E2, 0x110CD] + list(range(0x13430, 0x13440)))


def _is_chinese(cp):
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F)
            or (0x2B740 <= cp <= 0x2B81F) or (0x2B920 <= cp <= 0x2CEAF) or (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


class _DecidedTable(dict):
    """A str.translate table that computes the entry of a code point the first time it is looked up."""

    def __init__(self, decide):
        super().__init__()
        self._decide = decide

    def __missing__(self, cp):
        value = self._decide(cp)
        self[cp] = value
        return value


class WordPieceTokenizer:
    def __init__(self, path):
        with open(os.path.join(path, 'tokenizer.json'), encoding='utf-8') as f:
            spec = json.load(f)
        model = spec['model']
        if model.get('type') != 'WordPiece':
            raise ValueError('pgml_compat supports WordPiece (BERT-family) tokenizers, not %s' % model.get('type'))
        self.vocab = model['vocab']
        self.unk = model.get('unk_token', '[UNK]')
        self.prefix = model.get('continuing_subword_prefix', '##')
        self.max_chars = model.get('max_input_chars_per_word', 100)
        norm = spec.get('normalizer') or {}
        self.lowercase = norm.get('lowercase', True)
        self.clean_text = norm.get('clean_text', True)
        self.chinese = norm.get('handle_chinese_chars', True)
        strip = norm.get('strip_accents')
        self.strip_accents = self.lowercase if strip is None else strip
        # Added tokens ([CLS], [SEP], [MASK], ...) written in the text are found before anything
        # else and become their own ids, as Hugging Face's tokenizers do (leftmost, longest first).
        added = sorted((t for t in spec.get('added_tokens', []) if not t.get('normalized', False)),
                       key=lambda t: -len(t['content']))
        self.added = {t['content']: t['id'] for t in added}
        self.added_pattern = re.compile('|'.join(
            '%s(%s)%s' % (r'\s*' if t.get('lstrip') else '', re.escape(t['content']), r'\s*' if t.get('rstrip') else '')
            if not t.get('single_word') else r'(?<!\w)%s(%s)%s(?!\w)' % (r'\s*' if t.get('lstrip') else '', re.escape(t['content']), r'\s*' if t.get('rstrip') else '')
            for t in added)) if added else None
        self.cls_id = self.vocab.get('[CLS]')
        self.sep_id = self.vocab.get('[SEP]')
        self.pad_id = self.vocab.get('[PAD]', 0)
        max_length = 512
        config_path = os.path.join(path, 'tokenizer_config.json')
        if os.path.isfile(config_path):
            with open(config_path, encoding='utf-8') as f:
                max_length = int(json.load(f).get('model_max_length', max_length) or max_length)
        with open(os.path.join(path, 'config.json'), encoding='utf-8') as f:
            max_length = min(max_length, int(json.load(f).get('max_position_embeddings', max_length)))
        self.max_length = max_length
        self._chars = _DecidedTable(self._decide_char)
        self._marks = _DecidedTable(lambda cp: None if unicodedata.category(chr(cp)) == 'Mn' else chr(cp))
        self._chunks = {}

    def _decide_char(self, cp):
        """What the normaliser makes of one code point before accents are stripped: None (removed),
        or the text it becomes. Decided once per code point (see _normalize)."""
        ch = chr(cp)
        if self.clean_text:
            # Hugging Face removes control, format, private-use and surrogate characters (as of
            # Unicode 8.0), but keeps code points with no character assigned (they become [UNK]).
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch) in ('Cc', 'Cf', 'Co', 'Cs') and ch not in '\t\n\r'
                                            and cp not in _FORMAT_AFTER_UNICODE_8):
                return None
            if ch in '\t\n\r\u2028\u2029' or unicodedata.category(ch) == 'Zs':
                ch = ' '
        if self.chinese and _is_chinese(cp):
            return ' %s ' % ch
        return ch

    def _normalize(self, text):
        # str.translate with tables that decide each code point on first sight: C speed per
        # character, Python only for a character not seen before in this backend.
        text = text.translate(self._chars)
        if self.strip_accents and not text.isascii():
            text = unicodedata.normalize('NFD', text).translate(self._marks)
        if self.lowercase:
            text = text.lower()
        return text

    def _split_punctuation(self, chunk):
        words = []
        current = ''
        for ch in chunk:
            if _is_punctuation(ch):
                if current:
                    words.append(current)
                    current = ''
                words.append(ch)
            else:
                current += ch
        if current:
            words.append(current)
        return words

    def _pre_tokenize(self, text):
        words = []
        for chunk in text.split():
            words.extend(self._split_punctuation(chunk))
        return words

    def _chunk_ids(self, chunk):
        """The ids of one whitespace-separated chunk of normalised text (punctuation split off, then
        word pieces), cached: words repeat, and the cache turns most of a text into dict lookups."""
        ids = self._chunks.get(chunk)
        if ids is None:
            ids = []
            for word in self._split_punctuation(chunk):
                ids.extend(self._word_pieces(word))
            if len(self._chunks) >= 100_000:
                self._chunks.clear()
            self._chunks[chunk] = ids
        return ids

    def _word_pieces(self, word):
        if len(word) > self.max_chars:
            return [self.vocab[self.unk]]
        pieces = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.vocab[self.unk]]
            pieces.append(found)
            start = end
        return pieces

    def _segments(self, text):
        """(text, None) for plain text, (None, id) for an added token found in it."""
        if self.added_pattern is None:
            return [(text, None)]
        out, at = [], 0
        for match in self.added_pattern.finditer(text):
            if match.start() > at:
                out.append((text[at:match.start()], None))
            token = next(g for g in match.groups() if g is not None)
            out.append((None, self.added[token]))
            at = match.end()
        if at < len(text):
            out.append((text[at:], None))
        return out

    def encode(self, text):
        ids = []
        for segment, added_id in self._segments(text):
            if added_id is not None:
                ids.append(added_id)
                continue
            for chunk in self._normalize(segment).split():
                ids.extend(self._chunk_ids(chunk))
        ids = ids[:self.max_length - 2]
        return [self.cls_id] + ids + [self.sep_id]


# ---------------------------------------------------------------------------------------------
# ONNX evaluator: the operators BERT-family encoder exports use, in numpy (float32)


def _erf(x):
    # Abramowitz–Stegun 7.1.26 is not exact enough; use math.erf elementwise (vectorised).
    return np.vectorize(math.erf, otypes=[np.float32])(x).astype(np.float32)


def _np_dtype(onnx_type):
    import onnx
    if hasattr(onnx.helper, 'tensor_dtype_to_np_dtype'):  # onnx >= 1.13
        return onnx.helper.tensor_dtype_to_np_dtype(onnx_type)
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[onnx_type]


class OnnxModel:
    def __init__(self, path):
        import onnx
        from onnx import numpy_helper
        model = onnx.load(path)
        self.graph = model.graph
        self.init = {t.name: numpy_helper.to_array(t) for t in self.graph.initializer}
        self.inputs = [i.name for i in self.graph.input if i.name not in self.init]
        self.outputs = [o.name for o in self.graph.output]
        self.numpy_helper = numpy_helper
        self.nodes = []
        for node in self.graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))

    def run(self, feeds):
        env = dict(self.init)
        env.update(feeds)
        for op, inputs, outputs, attrs in self.nodes:
            args = [env[name] if name else None for name in inputs]
            result = self._op(op, args, attrs)
            if not isinstance(result, tuple):
                result = (result,)
            for name, value in zip(outputs, result):
                if name:
                    env[name] = value
        return {name: env[name] for name in self.outputs}

    def _op(self, op, a, at):
        f32 = np.float32
        if op == 'Gather':
            return np.take(a[0], a[1].astype(np.int64), axis=at.get('axis', 0))
        if op == 'Shape':
            return np.array(a[0].shape, dtype=np.int64)
        if op == 'Add':
            return a[0] + a[1]
        if op == 'Sub':
            return a[0] - a[1]
        if op == 'Mul':
            return a[0] * a[1]
        if op == 'Div':
            return a[0] / a[1] if a[0].dtype.kind == 'f' else a[0] // a[1]
        if op == 'Pow':
            return np.power(a[0], a[1]).astype(a[0].dtype)
        if op == 'Sqrt':
            return np.sqrt(a[0])
        if op == 'Neg':
            return -a[0]
        if op == 'Tanh':
            return np.tanh(a[0])
        if op == 'Erf':
            return _erf(a[0])
        if op == 'Relu':
            return np.maximum(a[0], 0)
        if op == 'Sigmoid':
            return (1 / (1 + np.exp(-a[0]))).astype(a[0].dtype)
        if op == 'MatMul':
            return np.matmul(a[0], a[1])
        if op == 'Gemm':
            x = a[0].T if at.get('transA', 0) else a[0]
            w = a[1].T if at.get('transB', 0) else a[1]
            y = at.get('alpha', 1.0) * (x @ w)
            if len(a) > 2 and a[2] is not None:
                y = y + at.get('beta', 1.0) * a[2]
            return y.astype(a[0].dtype)
        if op == 'Transpose':
            return np.transpose(a[0], at.get('perm'))
        if op == 'Softmax':
            axis = at.get('axis', -1)
            e = np.exp(a[0] - np.max(a[0], axis=axis, keepdims=True))
            return (e / np.sum(e, axis=axis, keepdims=True)).astype(a[0].dtype)
        if op == 'ReduceMean':
            axes = at.get('axes', list(a[1]) if len(a) > 1 and a[1] is not None else None)
            return np.mean(a[0], axis=tuple(axes) if axes is not None else None, keepdims=bool(at.get('keepdims', 1))).astype(a[0].dtype)
        if op == 'ReduceSum':
            axes = list(a[1]) if len(a) > 1 and a[1] is not None else at.get('axes')
            return np.sum(a[0], axis=tuple(axes) if axes is not None else None, keepdims=bool(at.get('keepdims', 1)))
        if op == 'LayerNormalization':
            axis = at.get('axis', -1)
            eps = at.get('epsilon', 1e-5)
            axes = tuple(range(axis if axis >= 0 else a[0].ndim + axis, a[0].ndim))
            mean = np.mean(a[0], axis=axes, keepdims=True)
            var = np.mean(np.square(a[0] - mean), axis=axes, keepdims=True)
            y = (a[0] - mean) / np.sqrt(var + f32(eps)) * a[1]
            if len(a) > 2 and a[2] is not None:
                y = y + a[2]
            return y.astype(a[0].dtype)
        if op == 'Cast':
            return a[0].astype(_np_dtype(at['to']))
        if op == 'Unsqueeze':
            axes = list(a[1]) if len(a) > 1 and a[1] is not None else at['axes']
            out = a[0]
            for axis in sorted(int(x) if x >= 0 else int(x) + out.ndim + 1 for x in axes):
                out = np.expand_dims(out, axis)
            return out
        if op == 'Squeeze':
            axes = list(a[1]) if len(a) > 1 and a[1] is not None else at.get('axes')
            return np.squeeze(a[0], axis=tuple(int(x) for x in axes) if axes is not None else None)
        if op == 'Concat':
            return np.concatenate(a, axis=at['axis'])
        if op == 'Reshape':
            shape = [int(s) for s in a[1]]
            shape = [a[0].shape[i] if s == 0 and not at.get('allowzero', 0) else s for i, s in enumerate(shape)]
            return np.reshape(a[0], shape)
        if op == 'Slice':
            starts, ends = a[1], a[2]
            axes = a[3] if len(a) > 3 and a[3] is not None else range(len(starts))
            steps = a[4] if len(a) > 4 and a[4] is not None else [1] * len(starts)
            index = [slice(None)] * a[0].ndim
            for s, e, ax, st in zip(starts, ends, axes, steps):
                index[int(ax)] = slice(int(s), int(max(min(e, 2 ** 62), -2 ** 62)), int(st))
            return a[0][tuple(index)]
        if op == 'Range':
            return np.arange(a[0], a[1], a[2]).astype(a[0].dtype)
        if op == 'Constant':
            return self.numpy_helper.to_array(at['value']) if 'value' in at else np.array(at.get('value_float', at.get('value_int')))
        if op == 'ConstantOfShape':
            value = self.numpy_helper.to_array(at['value']) if 'value' in at else np.array([0], dtype=f32)
            return np.full([int(s) for s in a[0]], value.reshape(-1)[0], dtype=value.dtype)
        if op == 'Expand':
            return a[0] * np.ones([int(s) for s in a[1]], dtype=a[0].dtype)
        if op == 'Where':
            return np.where(a[0], a[1], a[2])
        if op == 'Equal':
            return np.equal(a[0], a[1])
        if op == 'Less':
            return np.less(a[0], a[1])
        if op == 'Greater':
            return np.greater(a[0], a[1])
        if op == 'Not':
            return np.logical_not(a[0])
        if op == 'Identity':
            return a[0]
        if op == 'Max':
            return np.maximum.reduce(a)
        if op == 'Min':
            return np.minimum.reduce(a)
        raise ValueError('pgml_compat cannot run ONNX operator %s (supported: BERT-family encoder graphs)' % op)


class OrtModel:
    """The same interface as OnnxModel, run by onnxruntime on the CPU."""

    def __init__(self, path):
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, feeds):
        values = self.session.run(self.outputs, {name: value for name, value in feeds.items() if name in self.inputs})
        return dict(zip(self.outputs, values))


ENGINES = ('auto', 'onnxruntime', 'numpy')


def engine(plpy):
    """The engine embeddings run on: the pgml_compat.engine setting, `auto` choosing onnxruntime when importable."""
    choice = (plpy.execute("SELECT current_setting('pgml_compat.engine', true) AS e")[0]['e'] or 'auto').strip().lower()
    if choice not in ENGINES:
        raise plpy.Error('pgml_compat.engine must be one of %s, not %r' % (', '.join(ENGINES), choice))
    if choice == 'numpy':
        return 'numpy'
    try:
        import onnxruntime  # noqa: F401
        return 'onnxruntime'
    except ImportError:
        if choice == 'onnxruntime':
            raise plpy.Error('pgml_compat.engine is onnxruntime, but the Python module onnxruntime cannot be imported by PL/Python '
                             '(Debian: apt-get install python3-onnxruntime); or SET pgml_compat.engine = \'numpy\'')
        return 'numpy'


# ---------------------------------------------------------------------------------------------
# Sentence embedding


class SentenceEmbedder:
    def __init__(self, path, engine_name='numpy'):
        self.tokenizer = WordPieceTokenizer(path)
        graph = os.path.join(path, 'onnx', 'model.onnx')
        self.model = OrtModel(graph) if engine_name == 'onnxruntime' else OnnxModel(graph)
        self.pooling = 'mean'
        pooling_path = os.path.join(path, '1_Pooling', 'config.json')
        if os.path.isfile(pooling_path):
            with open(pooling_path) as f:
                pooling = json.load(f)
            if pooling.get('pooling_mode_cls_token'):
                self.pooling = 'cls'
        self.prompts = {}
        st_config = os.path.join(path, 'config_sentence_transformers.json')
        if os.path.isfile(st_config):
            with open(st_config, encoding='utf-8') as f:
                self.prompts = dict(json.load(f).get('prompts') or {})
        self.always_normalize = False
        modules_path = os.path.join(path, 'modules.json')
        if os.path.isfile(modules_path):
            with open(modules_path) as f:
                self.always_normalize = any(m.get('type', '').endswith('Normalize') for m in json.load(f))

    def encode(self, texts, normalize=False, batch_size=32):
        out = []
        for start in range(0, len(texts), batch_size):
            encoded = [self.tokenizer.encode(t) for t in texts[start:start + batch_size]]
            width = max(len(e) for e in encoded)
            ids = np.full((len(encoded), width), self.tokenizer.pad_id, dtype=np.int64)
            mask = np.zeros((len(encoded), width), dtype=np.int64)
            for i, e in enumerate(encoded):
                ids[i, :len(e)] = e
                mask[i, :len(e)] = 1
            feeds = {'input_ids': ids, 'attention_mask': mask}
            if 'token_type_ids' in self.model.inputs:
                feeds['token_type_ids'] = np.zeros_like(ids)
            hidden = self.model.run(feeds)[self.model.outputs[0]].astype(np.float32)
            if self.pooling == 'cls':
                pooled = hidden[:, 0, :]
            else:
                m = mask[:, :, None].astype(np.float32)
                pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            if normalize or self.always_normalize:
                pooled = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            out.extend(pooled.astype(np.float32))
        return out


_embedders = {}


def embedder(plpy, model_id):
    path = model_path(plpy, model_id)
    name = engine(plpy)
    key = (model_id, name)
    cached = _embedders.get(key)
    if cached is None or cached[0] != path:
        cached = (path, SentenceEmbedder(path, name))
        _embedders[key] = cached
    return cached[1]


EMBED_KWARGS = ('normalize_embeddings', 'prompt', 'prompt_name', 'batch_size', 'device', 'precision', 'trust_remote_code', 'revision')


def _embed_kwargs(plpy, kwargs):
    """sentence-transformers' encode() keyword arguments, as PostgresML passes them: each one works
    as there, or is refused with the reason; nothing is accepted and ignored."""
    try:
        options = json.loads(kwargs) if kwargs else {}
    except ValueError:
        raise plpy.Error('pgml_compat.embed: kwargs must be a JSON object, got %r' % kwargs)
    if not isinstance(options, dict):
        raise plpy.Error('pgml_compat.embed: kwargs must be a JSON object such as \'{"normalize_embeddings": true}\', got %s' % kwargs)
    unknown = set(options) - set(EMBED_KWARGS)
    if unknown:
        raise plpy.Error('pgml_compat.embed: unsupported kwargs %s (supported: %s)' % (', '.join(sorted(unknown)), ', '.join(EMBED_KWARGS)))
    for name in ('normalize_embeddings', 'trust_remote_code'):
        if name in options and not isinstance(options[name], bool):
            raise plpy.Error('pgml_compat.embed: kwargs %s must be true or false, got %s' % (name, json.dumps(options[name])))
    for name in ('prompt', 'prompt_name'):
        if options.get(name) is not None and not isinstance(options[name], str):
            raise plpy.Error('pgml_compat.embed: kwargs %s must be a string, got %s' % (name, json.dumps(options[name])))
    if 'prompt' in options and 'prompt_name' in options:
        raise plpy.Error('pgml_compat.embed: give prompt or prompt_name, not both')
    if 'batch_size' in options:
        size = options['batch_size']
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise plpy.Error('pgml_compat.embed: kwargs batch_size must be a positive integer, got %s' % json.dumps(size))
    if options.get('device') not in (None, 'cpu'):
        raise plpy.Error('pgml_compat.embed: device %s is not available: pgml_compat runs models on the CPU (drop device, or use "cpu")' % json.dumps(options['device']))
    if options.get('precision') not in (None, 'float32'):
        raise plpy.Error('pgml_compat.embed: precision %s is not supported: pgml_compat returns float32 vectors (drop precision, or use "float32")' % json.dumps(options['precision']))
    if options.get('revision') is not None:
        raise plpy.Error('pgml_compat.embed: revision %s cannot be honoured: pgml_compat loads the model folder under pgml_compat.models_dir, '
                         'which has no revisions (put that revision\'s files there and drop revision)' % json.dumps(options['revision']))
    return options


def _prompt(plpy, model, transformer, options):
    name = options.get('prompt_name')
    if name is None:
        return options.get('prompt') or ''
    if name not in model.prompts:
        raise plpy.Error('pgml_compat.embed: model %r has no prompt named %r (%s)' % (
            transformer, name, 'its prompts: ' + ', '.join(sorted(model.prompts)) if model.prompts else 'it defines no prompts in config_sentence_transformers.json'))
    return model.prompts[name]


def embed(plpy, transformer, text, kwargs):
    options = _embed_kwargs(plpy, kwargs)
    model = embedder(plpy, transformer)
    [vector] = model.encode([_prompt(plpy, model, transformer, options) + text], normalize=bool(options.get('normalize_embeddings')))
    return [float(x) for x in vector]


def embed_batch(plpy, transformer, inputs, kwargs):
    options = _embed_kwargs(plpy, kwargs)
    model = embedder(plpy, transformer)
    prompt = _prompt(plpy, model, transformer, options)
    texts = [prompt + (t if t is not None else '') for t in inputs]
    vectors = model.encode(texts, normalize=bool(options.get('normalize_embeddings')), batch_size=int(options.get('batch_size', 32)))
    return [[float(x) for x in v] for v in vectors]


def normalize_l2(vector):
    v = np.asarray(vector, dtype=np.float64)
    norm = np.linalg.norm(v)
    return [float(x) for x in (v / norm if norm > 0 else v)]


# ---------------------------------------------------------------------------------------------
# Training


SUPPORTED = {
    'regression': ['linear', 'xgboost', 'random_forest', 'svm', 'ridge', 'lasso', 'elastic_net', 'gradient_boosting_trees'],
    'classification': ['linear', 'xgboost', 'random_forest', 'svm', 'ridge', 'lasso', 'elastic_net', 'gradient_boosting_trees'],
}
KEY_METRIC = {'regression': 'r2', 'classification': 'f1'}


def _estimator(plpy, task, algorithm, hyperparams):
    estimator = _make_estimator(plpy, task, algorithm, {})
    params = dict(hyperparams or {})
    unknown = sorted(set(params) - set(estimator.get_params()))
    if unknown:
        raise plpy.Error('pgml.train: hyperparams %s %s not a parameter of %s (%s); its parameters: %s' % (
            ', '.join(unknown), 'is' if len(unknown) == 1 else 'are', algorithm, type(estimator).__name__, ', '.join(sorted(estimator.get_params()))))
    try:
        return estimator.set_params(**params) if params else estimator
    except (TypeError, ValueError) as error:
        raise plpy.Error('pgml.train: hyperparams for %s: %s' % (algorithm, error))


def _make_estimator(plpy, task, algorithm, hyperparams):
    if task not in SUPPORTED:
        raise plpy.Error('pgml_compat trains tasks %s, not %r' % (' and '.join(SUPPORTED), task))
    if algorithm not in SUPPORTED[task]:
        raise plpy.Error('pgml_compat does not support algorithm %r for %s; supported: %s'
                         % (algorithm, task, ', '.join(SUPPORTED[task])))
    from sklearn import ensemble, linear_model, svm
    import xgboost
    params = dict(hyperparams or {})
    regression = task == 'regression'
    if algorithm == 'linear':
        # scikit-learn's own defaults, as PostgresML passes them.
        return linear_model.LinearRegression(**params) if regression else linear_model.LogisticRegression(**params)
    if algorithm == 'xgboost':
        return xgboost.XGBRegressor(**params) if regression else xgboost.XGBClassifier(**params)
    if algorithm == 'random_forest':
        return ensemble.RandomForestRegressor(**params) if regression else ensemble.RandomForestClassifier(**params)
    if algorithm == 'svm':
        return svm.SVR(**params) if regression else svm.SVC(**{'probability': True, **params})
    if algorithm == 'ridge':
        return linear_model.Ridge(**params) if regression else linear_model.RidgeClassifier(**params)
    if algorithm == 'lasso':
        # Classification: L1-regularised logistic regression.
        return linear_model.Lasso(**params) if regression else linear_model.LogisticRegression(**{'penalty': 'l1', 'solver': 'liblinear', **params})
    if algorithm == 'elastic_net':
        return linear_model.ElasticNet(**params) if regression else linear_model.LogisticRegression(**{'penalty': 'elasticnet', 'solver': 'saga', 'l1_ratio': 0.5, 'max_iter': 5000, **params})
    if algorithm == 'gradient_boosting_trees':
        return ensemble.GradientBoostingRegressor(**params) if regression else ensemble.GradientBoostingClassifier(**params)
    raise plpy.Error('unreachable algorithm %r' % algorithm)


def _quote_ident(name):
    return '"%s"' % name.replace('"', '""')


def resolve_relation(plpy, relation_name, caller_search_path=None):
    """The relation as PostgreSQL resolves the name for the caller — quoting rules, temporary
    tables, pg_catalog, and the caller's search_path (passed in, since these functions pin theirs) —
    returned schema-qualified and quoted."""
    found = None
    if caller_search_path is not None:
        # Resolve under the caller's search_path, then put the pinned one back.
        pinned = plpy.execute("SELECT current_setting('search_path') AS p")[0]['p']
        try:
            plpy.execute(plpy.prepare("SELECT set_config('search_path', $1, true)", ['text']), [caller_search_path])
            found = plpy.execute(plpy.prepare('SELECT to_regclass($1)::oid AS oid', ['text']), [relation_name])[0]['oid']
        except plpy.SPIError:
            found = None
        finally:
            plpy.execute(plpy.prepare("SELECT set_config('search_path', $1, true)", ['text']), [pinned])
    if found is None:
        try:
            found = plpy.execute(plpy.prepare('SELECT to_regclass($1)::oid AS oid', ['text']), [relation_name])[0]['oid']
        except plpy.SPIError:
            raise plpy.Error('pgml.train: %r is not a valid relation name' % relation_name)
    if found is None:
        raise plpy.Error('pgml.train: relation %r does not exist (looked up as PostgreSQL does for you: search_path %s, and temporary tables)'
                         % (relation_name, caller_search_path or 'pg_catalog, pg_temp'))
    return plpy.execute(plpy.prepare(
        """SELECT format('%I.%I', n.nspname, c.relname) AS name FROM pg_catalog.pg_class c
           JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1""", ['oid']), [found])[0]['name']


def _relation_columns(plpy, relation):
    plan = plpy.prepare(
        """SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typcategory AS category, t.typelem <> 0 AS is_array
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""", ['text'])
    return [dict(r) for r in plpy.execute(plan, [relation])]


def _flatten(value):
    """A multidimensional array (nested lists from PL/Python) as one flat list, row-major."""
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(_flatten(v))
        return out
    return [value]


def _load_dataset(plpy, relation_name, y_columns, columns):
    features = [c for c in columns if c['name'] not in y_columns]
    for name in y_columns:
        label = next(c for c in columns if c['name'] == name)
        if label['category'] not in ('N', 'B'):
            raise plpy.Error('pgml.train: label column %r is %s; pgml_compat learns numeric or boolean labels '
                             '(map text classes to integers in a view, e.g. CASE ... WHEN \'spam\' THEN 1 ... END)' % (name, label['type']))
    for c in features:
        if c['category'] not in ('N', 'B') and not (c['is_array'] and c['category'] == 'A'):
            raise plpy.Error('pgml_compat trains on numeric, boolean and numeric-array columns; column %r is %s (encode it in a view first)' % (c['name'], c['type']))
    names = [c['name'] for c in features] + list(y_columns)
    rows = plpy.execute('SELECT %s FROM %s' % (', '.join(_quote_ident(n) for n in names), relation_name))
    x_rows, y_rows = [], []
    for row in rows:
        values = []
        for c in features:
            values.extend(float('nan') if e is None else float(e) for e in _flatten(row[c['name']]))
        x_rows.append(values)
        y_rows.append([row[n] for n in y_columns])
    if not x_rows:
        raise plpy.Error('pgml.train: relation %r has no rows' % relation_name)
    missing = sum(1 for r in y_rows if any(v is None for v in r))
    if missing:
        raise plpy.Error('pgml.train: label column %s is NULL in %d of %d rows; train on the labelled rows (a view WHERE %s IS NOT NULL)'
                         % (', '.join(y_columns), missing, len(y_rows), ' IS NOT NULL AND '.join(_quote_ident(n) for n in y_columns)))
    widths = set(len(r) for r in x_rows)
    if len(widths) > 1:
        raise plpy.Error('pgml.train: rows of %s have different numbers of features (%s): array columns must have the same length in every row'
                         % (relation_name, ', '.join(str(w) for w in sorted(widths))))
    x = np.asarray(x_rows, dtype=np.float64)
    y = np.asarray(y_rows, dtype=np.float64)
    if y.shape[1] == 1:
        y = y[:, 0]
    return x, y, [c['name'] for c in features]


class Preprocessor:
    """pgml's per-column `preprocess` for numeric columns: impute and scale."""

    def __init__(self, plpy, spec, feature_names):
        self.spec = spec or {}
        for name, options in self.spec.items():
            if options.get('encode') not in (None, 'none'):
                raise plpy.Error('pgml_compat: preprocess encode=%r is not supported (features are numeric); column %r' % (options.get('encode'), name))
        self.names = feature_names
        self.fill = {}
        self.scalers = {}

    def fit(self, x):
        from sklearn import preprocessing
        for i, name in enumerate(self.names):
            options = self.spec.get(name, {})
            column = x[:, i]
            impute = options.get('impute', 'error')
            if impute != 'error':
                finite = column[~np.isnan(column)]
                values = {'mean': np.mean, 'median': np.median, 'min': np.min, 'max': np.max, 'zero': lambda c: 0.0,
                          'mode': lambda c: float(np.bincount(c.astype(np.int64) - int(c.min())).argmax() + int(c.min())) if c.size else 0.0}
                self.fill[i] = float(values[impute](finite)) if finite.size else 0.0
            scale = options.get('scale', 'preserve')
            if scale != 'preserve':
                scaler = {'standard': preprocessing.StandardScaler, 'min_max': preprocessing.MinMaxScaler,
                          'max_abs': preprocessing.MaxAbsScaler, 'robust': preprocessing.RobustScaler}[scale]()
                scaler.fit(self._impute_column(i, column).reshape(-1, 1))
                self.scalers[i] = scaler
        return self

    def state(self):
        """Plain data (and fitted scikit-learn scalers) to pickle: this module is loaded with exec,
        so its own classes cannot be unpickled by reference."""
        return {'names': self.names, 'fill': self.fill, 'scalers': self.scalers}

    @classmethod
    def from_state(cls, state):
        pre = cls.__new__(cls)
        pre.spec, pre.names, pre.fill, pre.scalers = {}, state['names'], state['fill'], state['scalers']
        return pre

    def _impute_column(self, i, column):
        if i in self.fill:
            column = np.where(np.isnan(column), self.fill[i], column)
        return column

    def transform(self, x):
        x = np.array(x, dtype=np.float64, copy=True)
        for i in range(min(x.shape[1], len(self.names))):
            x[:, i] = self._impute_column(i, x[:, i])
            if i in self.scalers:
                x[:, i] = self.scalers[i].transform(x[:, i].reshape(-1, 1))[:, 0]
        return x


class TrainError(Exception):
    """An error raised where plpy is not at hand; train() turns it into plpy.Error."""


def plpy_error(message):
    return TrainError(message)


def _test_rows(n, test_size):
    """PostgresML's test-set size: (rows × test_size) in float32, rounded half away from zero."""
    return int(math.floor(float(np.float32(n) * np.float32(test_size)) + 0.5))


def _split(x, y, test_size, sampling, task):
    from sklearn.model_selection import train_test_split
    n = x.shape[0]
    n_test = _test_rows(n, test_size)
    if n_test < 1 or n_test >= n:
        raise plpy_error('pgml.train: test_size %s leaves %d of %d rows for testing; it needs at least one row to test on and one to train on' % (test_size, n_test, n))
    if sampling == 'last':
        return x[:-n_test], x[-n_test:], y[:-n_test], y[-n_test:]
    stratify = y if sampling == 'stratified' and task == 'classification' else None
    try:
        return train_test_split(x, y, test_size=n_test, random_state=0, stratify=stratify)
    except ValueError:
        return train_test_split(x, y, test_size=n_test, random_state=0)


def _metrics(task, estimator, x_test, y_test):
    """PostgresML's metrics: r2, mean absolute and squared error for regression; for classification
    f1, precision and recall as macro averages (binary too), accuracy, mcc, and roc_auc and
    log_loss from the class probabilities where the model gives them."""
    from sklearn import metrics
    started = time.perf_counter()
    y_hat = estimator.predict(x_test)
    score_time = time.perf_counter() - started
    if task == 'regression':
        return {'r2': float(metrics.r2_score(y_test, y_hat)), 'mean_absolute_error': float(metrics.mean_absolute_error(y_test, y_hat)),
                'mean_squared_error': float(metrics.mean_squared_error(y_test, y_hat)), 'score_time': score_time}
    scores = {'f1': float(metrics.f1_score(y_test, y_hat, average='macro', zero_division=0)),
              'precision': float(metrics.precision_score(y_test, y_hat, average='macro', zero_division=0)),
              'recall': float(metrics.recall_score(y_test, y_hat, average='macro', zero_division=0)),
              'accuracy': float(metrics.accuracy_score(y_test, y_hat)), 'mcc': float(metrics.matthews_corrcoef(y_test, y_hat)), 'score_time': score_time}
    classes = list(getattr(estimator, 'classes_', []))
    if hasattr(estimator, 'predict_proba') and len(classes) >= 2 and len(np.unique(y_test)) >= 2:
        try:
            proba = estimator.predict_proba(x_test)
            scores['log_loss'] = float(metrics.log_loss(y_test, proba, labels=classes))
            if len(classes) == 2:
                scores['roc_auc'] = float(metrics.roc_auc_score(y_test, proba[:, 1]))
            elif set(np.unique(y_test)) == set(classes):
                scores['roc_auc'] = float(metrics.roc_auc_score(y_test, proba, multi_class='ovr', average='macro', labels=classes))
        except (AttributeError, ValueError):
            pass
    return scores


def _json_object(plpy, name, value):
    try:
        parsed = json.loads(value) if value else {}
    except ValueError:
        raise plpy.Error('pgml.train: %s must be a JSON object, got %r' % (name, value))
    if not isinstance(parsed, dict):
        raise plpy.Error('pgml.train: %s must be a JSON object such as \'{"key": 1}\', got %s' % (name, value))
    return parsed


class _Interrupted(BaseException):
    """Raised in the training thread when PostgreSQL was asked to cancel the statement or end the
    backend (a BaseException: library code that catches Exception cannot swallow it)."""


def _interrupt_flags():
    """PostgreSQL's interrupt flags (miscadmin.h), read from the server's own symbols: its signal
    handlers set them when pg_cancel_backend, a client's cancel request (Ctrl-C in psql),
    statement_timeout or pg_terminate_backend arrives. None where they cannot be read."""
    flags = _module_cache.get('interrupt_flags')
    if flags is None:
        try:
            import ctypes
            server = ctypes.CDLL(None)
            flags = (ctypes.c_int.in_dll(server, 'QueryCancelPending'), ctypes.c_int.in_dll(server, 'ProcDiePending'))
        except (OSError, ValueError, AttributeError):
            flags = ()
        _module_cache['interrupt_flags'] = flags
    return flags or None


_module_cache = {}


def _interruptible(plpy, what, fit):
    """Runs fit() (scikit-learn or xgboost: C code that never checks PostgreSQL's interrupts) so
    that a cancel, a statement_timeout or a terminate stops it: a watcher thread polls the server's
    interrupt flags every 50 ms and raises _Interrupted in this thread, which takes effect at the
    next Python step of the fit (every boosting round, tree, solver iteration or search candidate;
    a single C call such as libsvm's runs to its end). PostgreSQL then acts on the interrupt itself:
    the statement fails with its own error (57014, or the backend ends) and the transaction rolls
    back, so nothing of the run is stored."""
    flags = _interrupt_flags()
    if flags is None:
        return fit()
    import ctypes
    import signal
    import threading
    stop = threading.Event()
    target = threading.get_ident()

    def watch():
        while not stop.wait(0.05):
            if flags[0].value or flags[1].value:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(_Interrupted))
                return

    # The watcher must not receive the server's signals (its handlers belong to the backend's
    # thread): it starts with every signal blocked.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        watcher = threading.Thread(target=watch, name='pgml_compat interrupt watcher', daemon=True)
        watcher.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    interrupted = False
    result = None
    try:
        try:
            result = fit()
        finally:
            stop.set()
            watcher.join()
            # The watcher has ended: clear an exception it raised that has not been delivered yet.
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
    except _Interrupted:
        interrupted = True
    if interrupted or flags[0].value or flags[1].value:
        # Any statement checks for interrupts: PostgreSQL raises the cancel or ends the backend.
        plpy.execute('SELECT 1')
        if interrupted:
            raise plpy.Error('%s was interrupted' % what)
    return result


def train(plpy, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args,
          test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path=None):
    try:
        return _train(plpy, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args,
                      test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path)
    except TrainError as error:
        raise plpy.Error(str(error))


def _train(plpy, project_name, task, relation_name, y_column_name, algorithm, hyperparams, search, search_params, search_args,
           test_size, test_sampling, runtime, automatic_deploy, materialize_snapshot, preprocess, caller_search_path):
    if runtime not in (None, 'python'):
        raise plpy.Error("pgml_compat runs the 'python' runtime only")
    hyperparams = _json_object(plpy, 'hyperparams', hyperparams)
    search_params = _json_object(plpy, 'search_params', search_params)
    search_args = _json_object(plpy, 'search_args', search_args)
    preprocess = _json_object(plpy, 'preprocess', preprocess)
    if relation_name is not None and (test_size is None or not (0 < test_size < 1)):
        raise plpy.Error('pgml.train: test_size must be a fraction between 0 and 1 (exclusive), got %s' % test_size)
    unknown_args = set(search_args) - {'n_iter', 'cv'}
    if unknown_args:
        raise plpy.Error('pgml.train: search_args accepts only n_iter and cv, not %s' % ', '.join(sorted(unknown_args)))

    project = plpy.execute(plpy.prepare('SELECT id, task::text AS task FROM pgml.projects WHERE name = $1', ['text']), [project_name])
    if project:
        project_id, project_task = project[0]['id'], project[0]['task']
        if task is not None and task != project_task:
            raise plpy.Error('pgml.train: project %r is a %s project, not %s' % (project_name, project_task, task))
        task = project_task
    else:
        if task is None:
            raise plpy.Error('pgml.train: project %r does not exist; give its task (regression or classification) on the first call' % project_name)
        project_id = None  # created by _record_training, with the model
    if task not in SUPPORTED:
        raise plpy.Error('pgml_compat trains tasks %s, not %r' % (' and '.join(SUPPORTED), task))
    _estimator(plpy, task, algorithm, hyperparams)  # validates the algorithm and its hyperparameters before any work

    if relation_name is not None:
        if y_column_name is None:
            raise plpy.Error('pgml.train: y_column_name is required with relation_name')
        relation_name = resolve_relation(plpy, relation_name, caller_search_path)
        columns = _relation_columns(plpy, relation_name)
        if y_column_name not in [c['name'] for c in columns]:
            raise plpy.Error('pgml.train: relation %r has no column %r' % (relation_name, y_column_name))
        snapshot_id = None  # written by _record_training
        snapshot = {'relation_name': relation_name, 'y_column_name': y_column_name, 'test_size': test_size, 'test_sampling': test_sampling,
                    'columns': columns, 'materialized': bool(materialize_snapshot)}
    else:
        # A follow-up run: the project's last snapshot, with its test size and sampling, so every
        # model of the project is scored on the same test set (as PostgresML does).
        last = plpy.execute(plpy.prepare(
            """SELECT s.id, s.relation_name, s.y_column_name, s.columns, s.test_size, s.test_sampling::text AS test_sampling
               FROM pgml.snapshots s JOIN pgml.models m ON m.snapshot_id = s.id
               WHERE m.project_id = $1 ORDER BY s.id DESC LIMIT 1""", ['bigint']), [project_id])
        if not last:
            raise plpy.Error('pgml.train: project %r has no snapshot yet; give relation_name and y_column_name' % project_name)
        snapshot_id, snapshot = last[0]['id'], None
        # The stored name is resolved again as a name (never pasted into SQL as it is stored), and
        # read with the caller's privileges, like a first run.
        relation_name = resolve_relation(plpy, last[0]['relation_name'])
        y_column_name = last[0]['y_column_name'][0]
        columns = json.loads(last[0]['columns'])
        test_size, test_sampling = last[0]['test_size'], last[0]['test_sampling']

    x, y, feature_names = _load_dataset(plpy, relation_name, [y_column_name], columns)
    x_train, x_test, y_train, y_test = _split(x, y, test_size, test_sampling, task)
    pre = Preprocessor(plpy, preprocess, feature_names).fit(x_train)
    x_train, x_test = pre.transform(x_train), pre.transform(x_test)
    if np.isnan(x_train).any():
        raise plpy.Error('pgml.train: features contain NULLs; give preprocess => \'{"<column>": {"impute": "mean"}}\'')

    if task == 'classification' and not np.all(np.equal(np.mod(y, 1), 0)):
        raise plpy.Error('pgml.train: classification labels must be whole numbers (class ids); %s has fractional values' % y_column_name)
    estimator = _estimator(plpy, task, algorithm, hyperparams)
    started = time.perf_counter()
    chosen = dict(hyperparams)
    if search is not None:
        from sklearn.model_selection import GridSearchCV, RandomizedSearchCV
        scoring = 'r2' if task == 'regression' else 'f1_macro'
        cv = int(search_args.get('cv', 3))
        if search == 'grid':
            searcher = GridSearchCV(estimator, search_params, cv=cv, scoring=scoring)
        else:
            searcher = RandomizedSearchCV(estimator, search_params, n_iter=int(search_args.get('n_iter', 10)), cv=cv, scoring=scoring, random_state=0)
        _interruptible(plpy, 'pgml.train', lambda: searcher.fit(x_train, y_train))
        estimator = searcher.best_estimator_
        chosen.update(searcher.best_params_)
    else:
        _interruptible(plpy, 'pgml.train', lambda: estimator.fit(x_train, y_train))
    fit_time = time.perf_counter() - started
    scores = _metrics(task, estimator, x_test, y_test)
    scores['fit_time'] = fit_time
    classes = [float(c) for c in getattr(estimator, 'classes_', [])]

    # Everything so far ran as the caller: the relation was read with the caller's privileges. What
    # is written to pgml's tables is written by pgml._record_training, which runs as the extension's
    # owner and takes the trained model from this backend's memory by a one-time token: no role can
    # hand it bytes to store, and nothing is deserialised on the way.
    token = os.urandom(16).hex()
    _pending[token] = {
        'project_name': project_name, 'project_id': project_id, 'task': task, 'snapshot_id': snapshot_id, 'snapshot': snapshot,
        'num_features': x.shape[1], 'algorithm': algorithm, 'hyperparams': chosen, 'metrics': scores, 'search': search,
        'search_params': search_params, 'search_args': search_args, 'automatic_deploy': bool(automatic_deploy),
        # The estimator pickled on its own (a prediction that does not need it never imports its
        # library), and the per-row path as plain data (see _fast_spec).
        'artifact': {'estimator_bytes': pickle.dumps(estimator), 'fast_spec': _fast_spec(estimator, pre, x.shape[1]),
                     'preprocessor': pre.state(), 'features': feature_names, 'num_features': x.shape[1],
                     'task': task, 'classes': classes, 'pgml_compat': VERSION},
    }
    try:
        deployed = plpy.execute(plpy.prepare('SELECT pgml._record_training($1) AS deployed', ['text']), [token])[0]['deployed']
    finally:
        _pending.pop(token, None)
    return [(project_name, task, algorithm, deployed)]


_pending = {}


def record_training(plpy, token):
    """pgml._record_training (SECURITY DEFINER): stores the model pgml.train trained in this
    backend — project, snapshot, model row, the pickled estimator with its signature, and the
    automatic deployment. Returns whether the model was deployed."""
    pending = _pending.pop(token, None) if isinstance(token, str) else None
    if pending is None:
        raise plpy.Error('pgml._record_training stores what pgml.train trained in the same call; call pgml.train')
    project_id = pending['project_id']
    if project_id is None:
        # Two first calls for one project at once: the second finds the first's row.
        rows = plpy.execute(plpy.prepare('INSERT INTO pgml.projects (name, task) VALUES ($1, $2::pgml.task) ON CONFLICT (name) DO NOTHING RETURNING id',
                                         ['text', 'text']), [pending['project_name'], pending['task']])
        if not rows:
            rows = plpy.execute(plpy.prepare('SELECT id, task::text AS task FROM pgml.projects WHERE name = $1', ['text']), [pending['project_name']])
            if rows[0]['task'] != pending['task']:
                raise plpy.Error('pgml.train: project %r is a %s project, not %s' % (pending['project_name'], rows[0]['task'], pending['task']))
        project_id = rows[0]['id']
    snapshot_id = pending['snapshot_id']
    if snapshot_id is None:
        snap = pending['snapshot']
        snapshot_id = plpy.execute(plpy.prepare(
            """INSERT INTO pgml.snapshots (relation_name, y_column_name, test_size, test_sampling, status, columns, materialized)
               VALUES ($1, ARRAY[$2], $3, $4::pgml.sampling, 'successful', $5::jsonb, $6) RETURNING id""",
            ['text', 'text', 'real', 'text', 'text', 'bool']),
            [snap['relation_name'], snap['y_column_name'], snap['test_size'], snap['test_sampling'], json.dumps(snap['columns']), snap['materialized']])[0]['id']
    model_id = plpy.execute(plpy.prepare(
        """INSERT INTO pgml.models (project_id, snapshot_id, num_features, algorithm, runtime, hyperparams, status, metrics, search, search_params, search_args)
           VALUES ($1, $2, $3, $4::pgml.algorithm, 'python', $5::jsonb, 'successful', $6::jsonb, $7::pgml.search, $8::jsonb, $9::jsonb) RETURNING id""",
        ['bigint', 'bigint', 'int', 'text', 'text', 'text', 'text', 'text', 'text']),
        [project_id, snapshot_id, pending['num_features'], pending['algorithm'], json.dumps(pending['hyperparams']), json.dumps(pending['metrics']),
         pending['search'], json.dumps(pending['search_params']), json.dumps(pending['search_args'])])[0]['id']
    data = pickle.dumps(pending['artifact'])
    plpy.execute(plpy.prepare('INSERT INTO pgml.files (model_id, path, part, data) VALUES ($1, $2, 0, $3)', ['bigint', 'text', 'bytea']),
                 [model_id, ARTIFACT_PATH, data])
    _sign(plpy, model_id, data)

    deployed = False
    scores = pending['metrics']
    if pending['automatic_deploy']:
        key = KEY_METRIC[pending['task']]
        current = plpy.execute(plpy.prepare(
            """SELECT (m.metrics->>$2)::float8 AS score FROM pgml.deployments d JOIN pgml.models m ON m.id = d.model_id
               WHERE d.project_id = $1 ORDER BY d.id DESC LIMIT 1""", ['bigint', 'text']), [project_id, key])
        # Deploy when at least as good as the deployed model (PostgresML deploys on ties).
        if not current or current[0]['score'] is None or scores[key] >= current[0]['score']:
            plpy.execute(plpy.prepare("INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES ($1, $2, 'new_score')", ['bigint', 'bigint']), [project_id, model_id])
            _forget_deployments()
            deployed = True
    plpy.execute(plpy.prepare('UPDATE pgml.projects SET updated_at = now() WHERE id = $1', ['bigint']), [project_id])
    return deployed


# ---------------------------------------------------------------------------------------------
# Model signatures: pgml.predict deserialises a model (pickle runs code) only if its bytes carry an
# HMAC made with a key only the extension's owner can read. pgml.train's records are signed as they
# are written; bytes written any other way — a role granted INSERT on pgml.files, a restored or
# copied row, a truncated or altered one — are refused before anything is loaded.


ARTIFACT_PATH = 'estimator.pickle'
_SIGNATURE_CONTEXT = b'pgml_compat model signature v1\x00'
_keys = {}


def _model_keys(plpy, key_id=None):
    if key_id is None or key_id not in _keys:
        for row in plpy.execute('SELECT id, key FROM pgml._model_keys'):
            _keys[row['id']] = bytes(row['key'])
    return _keys


def _digest(key, model_id, path, data):
    import hashlib
    import hmac
    message = _SIGNATURE_CONTEXT + b'%d\x00%s\x00' % (int(model_id), path.encode('utf-8')) + hashlib.sha256(data).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


def _sign(plpy, model_id, data):
    keys = _model_keys(plpy)
    if not keys:
        raise plpy.Error('pgml_compat: pgml._model_keys holds no key, so models cannot be signed; as the extension owner: '
                         'SELECT pgml._add_model_key()')
    key_id = max(keys)
    plpy.execute(plpy.prepare(
        """INSERT INTO pgml._model_signatures (model_id, path, key_id, digest) VALUES ($1, $2, $3, $4)
           ON CONFLICT (model_id, path) DO UPDATE SET key_id = excluded.key_id, digest = excluded.digest, signed_at = pg_catalog.now()""",
        ['bigint', 'text', 'integer', 'bytea']), [model_id, ARTIFACT_PATH, key_id, _digest(keys[key_id], model_id, ARTIFACT_PATH, data)])


def _verified_model_bytes(plpy, model_id):
    """The model's file, only if its parts are whole (0, 1, ... with none missing) and their bytes
    are the ones signed for this model id."""
    import hmac
    rows = plpy.execute(_plan(plpy, 'files', """SELECT f.part, f.data, s.key_id, s.digest FROM pgml.files f
           LEFT JOIN pgml._model_signatures s ON s.model_id = f.model_id AND s.path = f.path
           WHERE f.model_id = $1 AND f.path = $2 ORDER BY f.part""", ['pg_catalog.int8', 'pg_catalog.text']), [model_id, ARTIFACT_PATH])
    if not rows:
        raise plpy.Error('pgml.predict: model %s has no stored estimator' % model_id)
    refuse = ('pgml_compat: model %s is refused, nothing of it was loaded: %%s. Models are stored only by pgml.train (and signed as they are); '
              'retrain it, or, as the extension owner and only for bytes you trust, SELECT pgml.sign_model(%s)' % (model_id, model_id))
    if [r['part'] for r in rows] != list(range(len(rows))):
        raise plpy.Error(refuse % ('its file has parts %s, not 0 to %d' % (', '.join(str(r['part']) for r in rows), len(rows) - 1)))
    if rows[0]['digest'] is None:
        raise plpy.Error(refuse % 'it carries no signature (written outside pgml.train, or trained before pgml_compat 0.3.0)')
    data = b''.join(bytes(r['data']) for r in rows)
    key = _model_keys(plpy, rows[0]['key_id']).get(rows[0]['key_id'])
    if key is None or not hmac.compare_digest(_digest(key, model_id, ARTIFACT_PATH, data), bytes(rows[0]['digest'])):
        raise plpy.Error(refuse % 'its bytes do not match its signature (altered, truncated or copied from another model or database)')
    return data


def sign_model(plpy, model_id):
    """pgml.sign_model (the extension owner only): vouches for a model's stored bytes as they are."""
    rows = plpy.execute(plpy.prepare('SELECT data FROM pgml.files WHERE model_id = $1 AND path = $2 ORDER BY part', ['bigint', 'text']), [model_id, ARTIFACT_PATH])
    if not rows:
        raise plpy.Error('pgml.sign_model: model %s has no stored estimator' % model_id)
    _sign(plpy, model_id, b''.join(bytes(r['data']) for r in rows))
    _artifacts.pop(model_id, None)
    return True


def deploy_model(plpy, model_id):
    row = plpy.execute(plpy.prepare(
        """SELECT p.id AS project_id, p.name, m.algorithm::text AS algorithm FROM pgml.models m JOIN pgml.projects p ON p.id = m.project_id WHERE m.id = $1""",
        ['bigint']), [model_id])
    if not row:
        raise plpy.Error('pgml.deploy: no model with id %s' % model_id)
    plpy.execute(plpy.prepare("INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES ($1, $2, 'specific')", ['bigint', 'bigint']), [row[0]['project_id'], model_id])
    _forget_deployments()
    return [(row[0]['name'], 'specific', row[0]['algorithm'])]


def deploy_strategy(plpy, project_name, strategy, algorithm):
    project = plpy.execute(plpy.prepare('SELECT id, task::text AS task FROM pgml.projects WHERE name = $1', ['text']), [project_name])
    if not project:
        raise plpy.Error('pgml.deploy: project %r does not exist' % project_name)
    project_id, task = project[0]['id'], project[0]['task']
    if strategy == 'rollback':
        # The most recent deployment of a model other than the one deployed now (of `algorithm` when given).
        rows = plpy.execute(plpy.prepare(
            """WITH current AS (SELECT model_id FROM pgml.deployments WHERE project_id = $1 ORDER BY id DESC LIMIT 1)
               SELECT d.model_id FROM pgml.deployments d JOIN pgml.models m ON m.id = d.model_id, current
               WHERE d.project_id = $1 AND d.model_id <> current.model_id AND ($2::text IS NULL OR m.algorithm::text = $2)
               ORDER BY d.id DESC LIMIT 1""", ['bigint', 'text']), [project_id, algorithm])
        if not rows:
            raise plpy.Error('pgml.deploy: project %r has no earlier deployed model%s to roll back to'
                             % (project_name, '' if algorithm is None else ' trained with %s' % algorithm))
        model_id = rows[0]['model_id']
    elif strategy in ('best_score', 'most_recent'):
        order = "(m.metrics->>'%s')::float8 DESC NULLS LAST, m.id DESC" % KEY_METRIC[task] if strategy == 'best_score' else 'm.id DESC'
        rows = plpy.execute(plpy.prepare(
            'SELECT m.id FROM pgml.models m WHERE m.project_id = $1 AND ($2::text IS NULL OR m.algorithm::text = $2) ORDER BY %s LIMIT 1' % order,
            ['bigint', 'text']), [project_id, algorithm])
        if not rows:
            raise plpy.Error('pgml.deploy: project %r has no model%s' % (project_name, '' if algorithm is None else ' trained with %s' % algorithm))
        model_id = rows[0]['id']
    else:
        raise plpy.Error("pgml.deploy: strategy must be best_score, most_recent or rollback, not %r" % strategy)
    plpy.execute(plpy.prepare('INSERT INTO pgml.deployments (project_id, model_id, strategy) VALUES ($1, $2, $3::pgml.strategy)', ['bigint', 'bigint', 'text']),
                 [project_id, model_id, strategy])
    _forget_deployments()
    algo = plpy.execute(plpy.prepare('SELECT algorithm::text AS a FROM pgml.models WHERE id = $1', ['bigint']), [model_id])[0]['a']
    return [(project_name, strategy, algo)]


# ---------------------------------------------------------------------------------------------
# Datasets


# PostgresML's tables for the scikit-learn datasets: (column, type) in its order.
_DATASETS = {
    'breast_cancer': [(n, 'FLOAT4') for n in (
        'mean radius', 'mean texture', 'mean perimeter', 'mean area', 'mean smoothness', 'mean compactness', 'mean concavity',
        'mean concave points', 'mean symmetry', 'mean fractal dimension', 'radius error', 'texture error', 'perimeter error',
        'area error', 'smoothness error', 'compactness error', 'concavity error', 'concave points error', 'symmetry error',
        'fractal dimension error', 'worst radius', 'worst texture', 'worst perimeter', 'worst area', 'worst smoothness',
        'worst compactness', 'worst concavity', 'worst concave points', 'worst symmetry', 'worst fractal dimension')] + [('malignant', 'BOOLEAN')],
    'diabetes': [(n, 'FLOAT4') for n in ('age', 'sex', 'bmi', 'bp', 's1', 's2', 's3', 's4', 's5', 's6', 'target')],
    'digits': [('image', 'SMALLINT[][]'), ('target', 'SMALLINT')],
    'iris': [(n, 'FLOAT4') for n in ('sepal_length', 'sepal_width', 'petal_length', 'petal_width')] + [('target', 'INT4')],
    'linnerud': [(n, 'FLOAT4') for n in ('chins', 'situps', 'jumps', 'weight', 'waist', 'pulse')],
    'wine': [(n, 'FLOAT4') for n in ('alcohol', 'malic_acid', 'ash', 'alcalinity_of_ash', 'magnesium', 'total_phenols', 'flavanoids',
                                      'nonflavanoid_phenols', 'proanthocyanins', 'hue', 'color_intensity', 'od280/od315_of_diluted_wines', 'proline')]
            + [('target', 'INT4')],
}


def _dataset_columns(source):
    """{column: list of values} for one of scikit-learn's bundled datasets (no download)."""
    from sklearn import datasets
    if source == 'digits':
        d = datasets.load_digits()
        return {'image': [[[int(v) for v in row] for row in image] for image in d.images], 'target': [int(t) for t in d.target]}
    if source == 'linnerud':
        d = datasets.load_linnerud()
        out = {name.lower(): [float(v) for v in d.data[:, i]] for i, name in enumerate(d.feature_names)}
        out.update({name.lower(): [float(v) for v in d.target[:, i]] for i, name in enumerate(d.target_names)})
        return out
    if source == 'diabetes':
        d = datasets.load_diabetes(scaled=False)
    else:
        d = {'breast_cancer': datasets.load_breast_cancer, 'iris': datasets.load_iris, 'wine': datasets.load_wine}[source]()
    names = [n.replace(' (cm)', '').replace(' ', '_') if source == 'iris' else n for n in d.feature_names]
    out = {name: [float(v) for v in d.data[:, i]] for i, name in enumerate(names)}
    if source == 'breast_cancer':
        out['malignant'] = [bool(t == 0) for t in d.target]  # scikit-learn's class 0 is malignant
    else:
        out['target'] = [float(t) if source == 'diabetes' else int(t) for t in d.target]
    return out


def load_dataset(plpy, source, subset, limit, kwargs):
    """pgml.load_dataset for the datasets scikit-learn ships: the table PostgresML creates
    (pgml.<source>, same columns and types), filled from scikit-learn's copy."""
    if source not in _DATASETS:
        raise plpy.Error('pgml_compat: dataset %r is not available: pgml_compat loads the datasets scikit-learn ships (%s); '
                         'Hugging Face datasets and california_housing need a download, which pgml_compat never does'
                         % (source, ', '.join(sorted(_DATASETS))))
    if subset is not None:
        raise plpy.Error('pgml_compat: dataset %r has no subsets (subset is for Hugging Face datasets)' % source)
    if kwargs and json.loads(kwargs):
        raise plpy.Error('pgml_compat: load_dataset kwargs are for Hugging Face datasets; %r takes none' % source)
    if limit is not None and limit < 0:
        raise plpy.Error('pgml_compat: load_dataset limit must be 0 or more, got %s' % limit)
    columns = _DATASETS[source]
    data = _dataset_columns(source)
    count = len(next(iter(data.values())))
    if limit is not None:
        count = min(count, int(limit))
    table = 'pgml.%s' % _quote_ident(source)
    plpy.execute('DROP TABLE IF EXISTS %s' % table)
    plpy.execute('CREATE TABLE %s (%s)' % (table, ', '.join('%s %s' % (_quote_ident(n), t) for n, t in columns)))
    # load_dataset runs as the owner (pgml_trainer's members call it): scikit-learn's public
    # datasets are readable by every role that may use schema pgml, as in PostgresML.
    plpy.execute('GRANT SELECT ON %s TO PUBLIC' % table)
    names = [n for n, _ in columns]
    if source == 'digits':
        texts = [json.dumps(image).replace('[', '{').replace(']', '}') for image in data['image'][:count]]
        plan = plpy.prepare('INSERT INTO %s (image, target) SELECT i::smallint[], t FROM unnest($1::text[], $2::smallint[]) AS u(i, t)' % table, ['text[]', 'smallint[]'])
        plpy.execute(plan, [texts, data['target'][:count]])
    else:
        types = ['%s[]' % ('boolean' if t == 'BOOLEAN' else 'real' if t == 'FLOAT4' else 'integer') for _, t in columns]
        plan = plpy.prepare('INSERT INTO %s (%s) SELECT * FROM unnest(%s)' % (
            table, ', '.join(_quote_ident(n) for n in names), ', '.join('$%d::%s' % (i + 1, t) for i, t in enumerate(types))), types)
        plpy.execute(plan, [data[n][:count] for n in names])
    return [('pgml.%s' % source, count)]


# ---------------------------------------------------------------------------------------------
# Prediction


_artifacts = {}
_plans = {}


def _plan(plpy, key, sql, types):
    """A statement prepared once per backend (a per-row prediction runs its lookup as a cached plan)."""
    plan = _plans.get(key)
    if plan is None:
        plan = _plans[key] = plpy.prepare(sql, types)
    return plan


_deployed = {}
_last_call = [0.0]
# Within one scan, calls come microseconds apart; between statements there is at least a round
# trip to the client. Only back-to-back calls, for at most 2 ms, skip the check below.
_BACK_TO_BACK = 50e-6
_REUSE_AT_MOST = 2e-3


def _deployed_artifact(plpy, project_name):
    # A new deployment, in any backend, takes effect for the next statement: the deployment looked
    # up last is reused only while pgml._deployment_generation (bumped by every change to
    # pgml.deployments; xmin tells a rolled-back bump apart) shows the same row version, and that
    # check itself is skipped only for calls that follow each other within one scan.
    now = time.perf_counter()
    back_to_back = now - _last_call[0] < _BACK_TO_BACK
    _last_call[0] = now
    cached = _deployed.get(project_name)
    if cached is not None and back_to_back and now - cached[2] < _REUSE_AT_MOST:
        return _artifact(plpy, cached[1])
    version = plpy.execute(_plan(plpy, 'generation', 'SELECT generation, xmin::text AS x FROM pgml._deployment_generation', []))
    key = (version[0]['generation'], version[0]['x']) if version else None
    if cached is not None and key is not None and cached[0] == key:
        _deployed[project_name] = (key, cached[1], now)
        _last_call[0] = time.perf_counter()
        return _artifact(plpy, cached[1])
    rows = plpy.execute(_plan(plpy, 'deployed', """SELECT d.model_id FROM pgml.deployments d JOIN pgml.projects p ON p.id = d.project_id
           WHERE p.name = $1 ORDER BY d.id DESC LIMIT 1""", ['pg_catalog.text']), [project_name], 1)
    if not rows:
        raise plpy.Error('pgml.predict: project %r has no deployed model (pgml.train it first)' % project_name)
    _deployed[project_name] = (key, rows[0]['model_id'], now)
    _last_call[0] = time.perf_counter()
    return _artifact(plpy, rows[0]['model_id'])


def _forget_deployments():
    """train and deploy in this backend: the next prediction looks its deployment up again."""
    _deployed.clear()
    _last_call[0] = 0.0


def _artifact(plpy, model_id):
    cached = _artifacts.get(model_id)
    if cached is None:
        cached = pickle.loads(_verified_model_bytes(plpy, model_id))
        cached['preprocessor'] = Preprocessor.from_state(cached['preprocessor'])
        if 'fast_spec' in cached:
            spec = cached['fast_spec']  # stored by 0.4.0 and later: the estimator stays pickled until needed
        else:
            spec = _fast_spec(cached['estimator'], cached['preprocessor'], cached['num_features'])
        cached['fast'] = _fast_predictor(spec, cached['num_features'])
        _artifacts[model_id] = cached
    return cached


_LINEAR_REGRESSORS = ('LinearRegression', 'Ridge', 'Lasso', 'ElasticNet')
_LINEAR_CLASSIFIERS = ('LogisticRegression', 'RidgeClassifier')


def _forest(trees, width):
    """An xgboost model's trees (its JSON dump) as one generated Python function of a row —
    straight-line comparisons, no per-call setup — that returns each tree's leaf value, in tree
    order (xgboost's own predict costs about 150 µs of fixed overhead a call)."""
    from array import array
    f32 = lambda v: array('f', [v])[0]
    # Features in local variables (the fastest names in CPython).
    lines = ['def forest(x):', '    %s, = x' % ', '.join('x%d' % i for i in range(width))]

    def emit(node, depth, tree):
        pad = '    ' * depth
        if 'leaf' in node:
            lines.append('%st%d = %r' % (pad, tree, f32(float(node['leaf']))))
            return
        feature = int(node['split'].lstrip('f'))
        if feature >= width:
            raise ValueError('split on feature %d of %d' % (feature, width))
        threshold = f32(float(node['split_condition']))
        children = {c['nodeid']: c for c in node['children']}
        # NaN compares false: the test is written so that a missing value takes xgboost's default branch.
        test = 'not (x%d >= %r)' % (feature, threshold) if node['missing'] == node['yes'] else 'x%d < %r' % (feature, threshold)
        lines.append('%sif %s:' % (pad, test))
        emit(children[node['yes']], depth + 1, tree)
        lines.append('%selse:' % pad)
        emit(children[node['no']], depth + 1, tree)

    for i, tree in enumerate(trees):
        emit(tree, 1, i)
    lines.append('    return (%s,)' % ', '.join('t%d' % i for i in range(len(trees))))
    namespace = {}
    exec(compile('\n'.join(lines), '<xgboost forest>', 'exec'), namespace)
    return namespace['forest']


def _margins_fn(forest, rounds, groups):
    """Margins of a row as xgboost's CPU predictor computes them: in float32, base margin first,
    then tree by tree in order — so the result is xgboost's to the last bit."""
    from array import array

    def margins(x, base):
        # Row 0 the base margins, then one row per boosting round (its trees, one per class);
        # add.accumulate sums down the rows in float32, one addition at a time.
        table = np.empty((rounds + 1, groups), dtype=np.float32)
        table[0] = base
        table[1:] = np.asarray(forest(array('f', x)), dtype=np.float32).reshape(rounds, groups)
        return np.add.accumulate(table, axis=0)[-1]
    return margins


def _xgboost_spec(estimator, width):
    """What a per-row prediction of an xgboost model needs, as plain data (the trees, the objective,
    the base margins, the labels), checked at training time to reproduce xgboost's margins exactly
    on probe rows; loading it needs neither xgboost nor scikit-learn. Regression
    (reg:squarederror) and classification (binary:logistic, multi:softprob); None for anything else."""
    from array import array
    booster = estimator.get_booster()
    config = json.loads(booster.save_config())
    objective = config['learner']['objective']['name']
    if objective not in ('reg:squarederror', 'binary:logistic', 'multi:softprob'):
        return None
    classes = int(config['learner']['learner_model_param'].get('num_class', '0') or 0)
    groups = classes if objective == 'multi:softprob' else 1
    trees = [json.loads(t) for t in booster.get_dump(dump_format='json')]
    if groups > 1 and len(trees) % groups:
        return None
    forest = _forest(trees, width)
    rounds = len(trees) // groups
    margins = _margins_fn(forest, rounds, groups)

    # Probe rows around the split points: the compiled margins must match xgboost's exactly.
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(64, width)) * 2
    for tree in trees[:8]:
        stack = [tree]
        while stack:
            node = stack.pop()
            if 'leaf' not in node:
                probe[rng.integers(0, 64), int(node['split'].lstrip('f'))] = float(node['split_condition'])
                stack.extend(node['children'])
    probe = probe.astype(np.float32)
    reference = np.asarray(booster.inplace_predict(probe, predict_type='margin'), dtype=np.float32).reshape(64, groups)
    # The base margin of each class (base_score in margin space, as xgboost rounded it): the float32
    # value nearest to what the probes imply for which every probe's margin comes out exactly.
    leaves = np.stack([np.asarray(forest(array('f', row)), dtype=np.float32).reshape(rounds, groups) for row in probe])  # (64, rounds, groups)
    implied = (reference.astype(np.float64) - leaves.astype(np.float64).sum(axis=1)).mean(axis=0)
    base = np.empty(groups, dtype=np.float32)
    for g in range(groups):
        table = np.empty((rounds + 1, len(probe)), dtype=np.float32)
        table[1:] = leaves[:, :, g].T
        start_bits = int(np.float32(implied[g]).view(np.int32))
        for offset in [0] + [sign * k for k in range(1, 257) for sign in (1, -1)]:
            table[0] = np.int32(start_bits + offset).view(np.float32)
            if np.array_equal(np.add.accumulate(table, axis=0)[-1], reference[:, g]):
                base[g] = table[0, 0]
                break
        else:
            return None
    if not all(np.array_equal(margins(row, base), ref) for row, ref in zip(probe, reference)):
        return None
    labels = [float(c) for c in getattr(estimator, 'classes_', range(max(classes, 2)))]
    return {'kind': 'xgboost', 'objective': objective, 'groups': groups, 'trees': trees, 'base': [float(b) for b in base], 'labels': labels}


def _xgboost_predictor(spec, width):
    forest = _forest(spec['trees'], width)
    groups = spec['groups']
    margins = _margins_fn(forest, len(spec['trees']) // groups, groups)
    base = np.asarray(spec['base'], dtype=np.float32)
    labels = spec['labels']
    if spec['objective'] == 'reg:squarederror':
        return lambda x: float(margins(x, base)[0])
    one = np.float32(1)
    if spec['objective'] == 'binary:logistic':
        # XGBClassifier.predict: the probability as xgboost computes it (1 / (expf(-m) + 1), in
        # float32), then > 0.5 — not the margin's sign, which differs for margins within 1e-7 of 0.
        def binary(x):
            m = margins(x, base)[0]
            return labels[1] if one / (np.exp(np.minimum(-m, np.float32(88.7))) + one) > 0.5 else labels[0]
        return binary

    def multiclass(x):
        # Softmax as xgboost computes it in float32, then the first largest probability (np.argmax).
        m = margins(x, base)
        e = np.exp(m - m.max())
        total = np.add.accumulate(e)[-1]
        return labels[int(np.argmax(e / total))]
    return multiclass


def _fast_spec(estimator, pre, width):
    """A model's per-row prediction as plain data, computed when it is trained and stored beside the
    pickled estimator, so that a backend predicts one row without importing scikit-learn or xgboost
    (imports that took seconds on the first prediction of every connection) and without their
    per-call input validation. Linear models and xgboost, with no preprocessing; None otherwise."""
    if pre.fill or pre.scalers:
        return None
    name = type(estimator).__name__
    if name in ('XGBRegressor', 'XGBClassifier'):
        try:
            return _xgboost_spec(estimator, width)
        except Exception:  # an unexpected model layout: the general path serves it
            return None
    if not hasattr(estimator, 'coef_'):
        return None
    if name in _LINEAR_REGRESSORS and np.ndim(estimator.coef_) == 1:
        return {'kind': 'linear_regression', 'coef': [float(c) for c in np.asarray(estimator.coef_, dtype=np.float64)],
                'intercept': float(np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1)[0])}
    if name in _LINEAR_CLASSIFIERS:
        return {'kind': 'linear_classifier', 'coef': np.asarray(estimator.coef_, dtype=np.float64).tolist(),
                'intercept': np.asarray(estimator.intercept_, dtype=np.float64).reshape(-1).tolist(), 'classes': [float(c) for c in estimator.classes_]}
    return None


def _fast_predictor(spec, width):
    """(width, function of a row, whether it takes a numpy array) from a _fast_spec: the same
    arithmetic as the estimators' predict() (x·coef + intercept; for classifiers the class of the
    largest decision value; xgboost's margins in its own float32 order). None where there is no spec."""
    if spec is None:
        return None
    kind = spec['kind']
    if kind == 'xgboost':
        return (width, _xgboost_predictor(spec, width), False)
    if kind == 'linear_regression':
        intercept = spec['intercept']
        if width <= 32:
            # A few features: plain Python arithmetic beats building a numpy array for one row.
            weights = list(spec['coef'])

            def regress_small(x):
                return math.fsum(map(operator.mul, weights, x)) + intercept
            return (width, regress_small, False)
        coef = np.asarray(spec['coef'], dtype=np.float64)

        def regress(x):
            return float(np.dot(coef, x) + intercept)
        return (width, regress, True)
    if kind == 'linear_classifier':
        coef, intercept, classes = np.asarray(spec['coef'], dtype=np.float64), np.asarray(spec['intercept'], dtype=np.float64), spec['classes']
        if coef.shape[0] == 1:
            w, b = coef[0], float(intercept[0])

            def binary(x):
                return classes[1] if float(np.dot(w, x) + b) > 0 else classes[0]
            return (width, binary, True)

        def multiclass(x):
            return classes[int(np.argmax(coef @ x + intercept))]
        return (width, multiclass, True)
    return None


def _estimator_of(artifact):
    """The fitted estimator, unpickled on first use (for models stored by 0.4.0 and later, whose
    per-row path does not need it)."""
    estimator = artifact.get('estimator')
    if estimator is None:
        estimator = pickle.loads(artifact['estimator_bytes'])
        artifact['estimator'] = estimator
    return estimator


def _check_missing(plpy, function, artifact, x):
    """NULL features reach the estimator only where training imputed that column."""
    missing = np.isnan(x).any(axis=0)
    if missing.any():
        names = artifact['features']
        fill = artifact['preprocessor'].fill
        bare = [i for i in np.flatnonzero(missing) if i not in fill]
        if bare:
            column = names[bare[0]] if bare[0] < len(names) and len(names) == x.shape[1] else 'feature %d' % (bare[0] + 1)
            raise plpy.Error('%s: a feature is NULL (%s) and the model was trained without imputing it; '
                             'train with preprocess => \'{"<column>": {"impute": "mean"}}\' to predict with missing values, or filter the NULLs out'
                             % (function, column))
    return x


def _matrix(plpy, artifact, features):
    x = np.asarray([[float('nan') if v is None else float(v) for v in _flatten(features)]], dtype=np.float64)
    if x.shape[1] != artifact['num_features']:
        raise plpy.Error('pgml.predict: the model takes %d features, got %d' % (artifact['num_features'], x.shape[1]))
    return artifact['preprocessor'].transform(_check_missing(plpy, 'pgml.predict', artifact, x))


def _row_features(plpy, artifact, row):
    names = artifact['features']
    positional = ['f%d' % (i + 1) for i in range(len(row))]
    if row and sorted(row) == sorted(positional) and not any(name in row for name in names):
        # An anonymous record, ROW(...) or (a, b, c), whose fields PostgreSQL names f1, f2, ...:
        # its values are the features in the order of the training columns (as PostgresML takes them).
        if len(row) != len(names):
            raise plpy.Error('pgml.predict: the row has %d values; the model was trained on %d columns, in this order: %s'
                             % (len(row), len(names), ', '.join(names)))
        row = {name: row[key] for name, key in zip(names, positional)}
    values = []
    for name in names:
        if name not in row:
            raise plpy.Error('pgml.predict: the row has no column %r, which the model was trained on' % name)
        v = row[name]
        values.extend(v if isinstance(v, list) else [v])
    return values


def predict(plpy, project_name, features, model_id=None):
    artifact = _artifact(plpy, model_id) if model_id is not None else _deployed_artifact(plpy, project_name)
    if isinstance(features, dict):
        features = _row_features(plpy, artifact, features)
    fast = artifact.get('fast')
    if fast is not None:
        flat = _flatten(features) if features and isinstance(features[0], list) else features
        if len(flat) == fast[0] and None not in flat:
            return fast[1](np.asarray(flat, dtype=np.float64) if fast[2] else flat)
    return float(_estimator_of(artifact).predict(_matrix(plpy, artifact, features))[0])


def predict_proba(plpy, project_name, features, model_id=None):
    artifact = _artifact(plpy, model_id) if model_id is not None else _deployed_artifact(plpy, project_name)
    estimator = _estimator_of(artifact)
    if artifact['task'] != 'classification':
        raise plpy.Error('pgml.predict_proba: project %r is not a classification project' % project_name)
    if not hasattr(estimator, 'predict_proba'):
        raise plpy.Error('pgml.predict_proba: the deployed %s model gives no probabilities' % type(estimator).__name__)
    return [float(p) for p in estimator.predict_proba(_matrix(plpy, artifact, features))[0]]


def _float4_array(data):
    """A real[] in PostgreSQL's binary format (array_send) as a numpy array of its shape: the
    whole input in one numpy call, where PL/Python would convert it element by element."""
    import struct
    buf = memoryview(data)
    try:
        ndim, flags, element_type = struct.unpack_from('>iii', buf, 0)
        if not 0 <= ndim <= 6 or flags not in (0, 1) or element_type != 700:
            raise ValueError('a header of %d dimensions, flags %d, element type %d' % (ndim, flags, element_type))
        dims = [struct.unpack_from('>i', buf, 12 + 8 * i)[0] for i in range(ndim)]
        if any(d < 0 for d in dims):
            raise ValueError('a negative dimension')
        count = int(np.prod(dims)) if dims else 0
        offset = 12 + 8 * ndim
        if not flags & 1:
            # No NULLs: every element is a 4-byte length (4) and a big-endian float4.
            if len(buf) != offset + 8 * count:
                raise ValueError('%d bytes where %d elements take %d' % (len(buf), count, offset + 8 * count))
            values = np.frombuffer(buf, dtype=np.dtype([('n', '>i4'), ('v', '>f4')]), count=count, offset=offset)['v'].astype(np.float64)
        else:
            values = np.empty(count, dtype=np.float64)
            for i in range(count):
                (length,) = struct.unpack_from('>i', buf, offset)
                offset += 4
                if length < 0:
                    values[i] = np.nan
                elif length != 4:
                    raise ValueError('an element of %d bytes' % length)
                else:
                    values[i] = struct.unpack_from('>f', buf, offset)[0]
                    offset += length
            if offset != len(buf):
                raise ValueError('%d bytes left over' % (len(buf) - offset))
    except (struct.error, ValueError, OverflowError) as error:
        raise TrainError('pgml._predict_batch: features must be a real[] in PostgreSQL\'s binary format (pg_catalog.array_send(real[])); '
                         'this bytea is not one (%s). Call pgml.predict_batch(project, real[]) instead' % error)
    return values.reshape(dims) if dims else values


def predict_batch_binary(plpy, project_name, data):
    try:
        features = _float4_array(data)
    except TrainError as error:
        raise plpy.Error(str(error))
    return predict_batch(plpy, project_name, features)


def predict_batch(plpy, project_name, features, model_id=None):
    """Rows of features: a two-dimensional array (array_agg(ARRAY[...]), one row per element), or
    a flat one of whole rows. Returns one prediction per row (a list; pgml.predict_batch by project
    unnests it in SQL, which is much faster than PL/Python returning a set row by row)."""
    artifact = _artifact(plpy, model_id) if model_id is not None else _deployed_artifact(plpy, project_name)
    width = artifact['num_features']
    if isinstance(features, np.ndarray):
        x = features
    else:
        try:
            x = np.asarray(features, dtype=np.float64)  # C speed; None (NULL) makes it fail
        except (TypeError, ValueError):
            x = None
    if x is None or x.dtype != np.float64:
        nested = bool(features) and isinstance(features[0], list)
        rows = [_flatten(r) for r in features] if nested else None
        flat = [v for r in rows for v in r] if nested else features
        x = np.asarray([float('nan') if v is None else float(v) for v in flat], dtype=np.float64)
        x = x.reshape(len(rows), -1) if nested and rows else x
    if x.ndim >= 2:
        x = x.reshape(x.shape[0], -1)
        if x.shape[1] != width:
            raise plpy.Error('pgml.predict_batch: a row has %d features; the model takes %d' % (x.shape[1], width))
    else:
        if x.size % width != 0:
            raise plpy.Error('pgml.predict_batch: %d values are not whole rows of %d features' % (x.size, width))
        x = x.reshape(-1, width)
    x = _check_missing(plpy, 'pgml.predict_batch', artifact, x)
    return _estimator_of(artifact).predict(artifact['preprocessor'].transform(x)).astype(np.float64).tolist()