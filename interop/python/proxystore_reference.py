"""Proxy references: proxies that cross between proxystore-cpp and Python.

A proxy reference is a small JSON document that names an object in a store
both languages can reach (a shared directory or a shared Redis server), in a
form neither language's own proxy format needs (C++ proxies are FlatBuffers,
Python proxies are pickles):

    {
      "proxystore_reference": 1,
      "store": {"name": "shared",
                "connector": {"kind": "redis",
                              "options": {"hostname": "10.0.0.5",
                                          "port": 6379}}},
      "key": "9f1c2e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b",
      "format": "str"
    }

"store" is a Python ProxyStore StoreConfig subset: the store's name and its
connector as Python's ConnectorConfig (kind "file" with option "store_dir",
or kind "redis" with "hostname" and "port"). "key" is the object's key id
(FileKey.filename or RedisKey.redis_key). "format" is what the object is
when Python's serialize() wrote it: "bytes", "str" or "numpy". The schema is
docs/python_interop.md's; proxystore-cpp reads it with ParseProxy<T>() and
writes it with interop::WriteProxyReference().

Usage (Python ProxyStore 1.0 importable):

    from proxystore_reference import proxy_from_reference
    proxy = proxy_from_reference(text)   # a real proxystore Proxy
    print(proxy.upper())                 # resolves from the shared store

    from proxystore_reference import reference_from_proxy
    text = reference_from_proxy(proxy, format='str')

Only the Python standard library and proxystore are used.
"""

from __future__ import annotations

import io
import json
import os
import re
from typing import Any

from proxystore.connectors.file import FileConnector
from proxystore.connectors.file import FileKey
from proxystore.connectors.redis import RedisConnector
from proxystore.connectors.redis import RedisKey
from proxystore.proxy import Proxy
from proxystore.store import get_store
from proxystore.store import register_store
from proxystore.store.base import Store
from proxystore.store.config import ConnectorConfig
from proxystore.store.config import StoreConfig
from proxystore.store.utils import get_key

VERSION = 1
FORMATS = ('bytes', 'str', 'numpy')
# Longest reference accepted, in bytes: a reference is small, and what comes
# from elsewhere is checked before it is parsed.
MAX_REFERENCE_SIZE = 64 * 1024

_KINDS = {
    'file': ('file', FileKey, 'filename'),
    'filekey': ('file', FileKey, 'filename'),
    'fileconnector': ('file', FileKey, 'filename'),
    'proxystore.connectors.file.fileconnector': ('file', FileKey, 'filename'),
    'redis': ('redis', RedisKey, 'redis_key'),
    'redisconnector': ('redis', RedisKey, 'redis_key'),
    'proxystore.connectors.redis.redisconnector': (
        'redis',
        RedisKey,
        'redis_key',
    ),
}
_OPTIONS = {'file': {'store_dir'}, 'redis': {'hostname', 'port'}}


class ReferenceError(ValueError):
    """A proxy reference that cannot be read; the message says why."""


# Key ids both languages mint: str(uuid.uuid4()), or NewObjectId()'s 32
# lowercase hex digits. Nothing else is read: no path, no other key.
_KEY = re.compile(
    r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
    r'|[0-9a-f]{32}',
)


def _parse(text: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(text, dict):
        return text
    size = len(text) if isinstance(text, bytes) else len(text.encode('utf-8'))
    if size > MAX_REFERENCE_SIZE:
        raise ReferenceError(
            f'a proxy reference is at most {MAX_REFERENCE_SIZE} bytes',
        )
    try:
        if isinstance(text, bytes):
            text = text.decode('utf-8')
        value = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ReferenceError(f'not a JSON proxy reference: {e}') from e
    if not isinstance(value, dict):
        raise ReferenceError('a proxy reference is a JSON object')
    return value


def read_reference(
    text: str | bytes | dict[str, Any],
) -> tuple[StoreConfig, Any, str]:
    """Check a reference and return (store config, connector key, format)."""
    ref = _parse(text)
    extra = set(ref) - {'proxystore_reference', 'store', 'key', 'format'}
    if extra:
        raise ReferenceError(f'unknown fields {sorted(extra)}')
    version = ref.get('proxystore_reference')
    if type(version) is not int or version != VERSION:
        raise ReferenceError(
            f'proxystore_reference must be {VERSION}, got {version!r}',
        )
    store = ref.get('store')
    if not isinstance(store, dict) or set(store) != {'name', 'connector'}:
        raise ReferenceError('store must be {"name": ..., "connector": ...}')
    name = store['name']
    connector = store['connector']
    if not isinstance(name, str) or not name:
        raise ReferenceError('store.name must be a non-empty string')
    if not isinstance(connector, dict) or set(connector) != {
        'kind',
        'options',
    }:
        raise ReferenceError(
            'store.connector must be {"kind": ..., "options": {...}}',
        )
    kind = connector['kind']
    options = connector['options']
    if not isinstance(kind, str) or kind.lower() not in _KINDS:
        raise ReferenceError(
            f'store.connector.kind {kind!r} is not one both languages '
            'share (file, redis)',
        )
    short, key_type, key_field = _KINDS[kind.lower()]
    if not isinstance(options, dict) or set(options) != _OPTIONS[short]:
        raise ReferenceError(
            f'store.connector.options of a {short} connector must be '
            f'exactly {sorted(_OPTIONS[short])}',
        )
    for name, value in options.items():
        if name == 'port':
            if type(value) is not int or not 1 <= value <= 65535:  # noqa: PLR2004
                raise ReferenceError(
                    'store.connector.options.port must be an integer in '
                    '1..65535',
                )
        elif not isinstance(value, str) or not value:
            raise ReferenceError(
                f'store.connector.options.{name} must be a non-empty string',
            )
    key = ref.get('key')
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ReferenceError(
            'key must be a uuid4 or 32 lowercase hex digits, got '
            f'{key!r:.80}',
        )
    fmt = ref.get('format')
    if fmt not in FORMATS:
        raise ReferenceError(f'format must be one of {FORMATS}, got {fmt!r}')
    config = StoreConfig(
        name=name,
        connector=ConnectorConfig(kind=short, options=dict(options)),
    )
    return config, key_type(**{key_field: key}), fmt


def _expect(data: bytes, identifier: bytes, fmt: str) -> bytes:
    data = bytes(data)
    if not data.startswith(identifier):
        raise ReferenceError(
            f'the object is not {fmt} data (it starts {data[:3]!r}); a '
            'reference reads only the format it declares',
        )
    return data[len(identifier) :]


# The deserializers of references' proxies: each reads only its format
# (Python's default deserializer would unpickle whatever the store holds).
# Module-level, so that the proxies stay picklable.
def deserialize_bytes(data: bytes) -> bytes:
    """Python ProxyStore bytes data ("BS\\n" + bytes), nothing else."""
    return _expect(data, b'BS\n', 'bytes')


def deserialize_str(data: bytes) -> str:
    """Python ProxyStore str data ("US\\n" + UTF-8), nothing else."""
    return _expect(data, b'US\n', 'str').decode('utf-8')


def deserialize_numpy(data: bytes) -> Any:
    """Python ProxyStore NumPy data ("NP\\n" + .npy), never pickled."""
    import numpy

    payload = _expect(data, b'NP\n', 'numpy')
    return numpy.load(io.BytesIO(payload), allow_pickle=False)


_DESERIALIZERS = {
    'bytes': deserialize_bytes,
    'str': deserialize_str,
    'numpy': deserialize_numpy,
}


def _store_for(config: StoreConfig) -> Store[Any]:
    """The store a reference reads from: one per location, of its own.

    It is registered under a name made from its location, never under the
    reference's store name, so a reference can neither read through another
    store that has that name here nor take the name over. Its connector
    never creates or clears anything: a directory must exist already.
    """
    kind = config.connector.kind
    options = config.connector.options
    if kind == 'file':
        store_dir = options['store_dir']
        if not os.path.isabs(store_dir) or not os.path.isdir(store_dir):
            raise ReferenceError(
                f'store_dir {store_dir!r} is not an existing absolute '
                'directory',
            )
        name = f'proxystore-reference:file:{os.path.realpath(store_dir)}'
    else:
        name = (
            f'proxystore-reference:redis:{options["hostname"]}:'
            f'{options["port"]}'
        )
    store = get_store(name)
    if store is None:
        if kind == 'file':
            connector: Any = FileConnector(store_dir, clear=False)
        else:
            connector = RedisConnector(
                options['hostname'],
                options['port'],
                clear=False,
            )
        register_store(Store(name, connector), exist_ok=True)
        store = get_store(name)
    return store


def proxy_from_reference(
    text: str | bytes | dict[str, Any],
    *,
    evict: bool = False,
) -> Proxy[Any]:
    """A Python ProxyStore proxy of the object a reference names.

    The proxy comes from `Store.proxy_from_key` of a store for the
    reference's location (see `_store_for`), and reads only the format the
    reference declares: a reference to "str" data never unpickles anything.
    """
    config, key, fmt = read_reference(text)
    store = _store_for(config)
    return store.proxy_from_key(
        key,
        evict=evict,
        deserializer=_DESERIALIZERS[fmt],
    )


def reference_from_key(store: Store[Any], key: Any, format: str) -> str:
    """The reference of the object `key` names in `store`, as JSON text."""
    if format not in FORMATS:
        raise ReferenceError(f'format must be one of {FORMATS}, got {format!r}')
    config = store.config()
    kind = config.connector.kind.lower()
    if kind not in _KINDS:
        raise ReferenceError(
            f'a {config.connector.kind} store is not one both languages '
            'share (file, redis)',
        )
    short, key_type, key_field = _KINDS[kind]
    if not isinstance(key, key_type):
        raise ReferenceError(f'a {short} store has {key_type.__name__} keys')
    options = {k: config.connector.options[k] for k in _OPTIONS[short]}
    return json.dumps(
        {
            'proxystore_reference': VERSION,
            'store': {
                'name': config.name,
                'connector': {'kind': short, 'options': options},
            },
            'key': getattr(key, key_field),
            'format': format,
        },
        sort_keys=True,
    )


def reference_from_proxy(proxy: Proxy[Any], format: str) -> str:
    """The reference of the object a Python ProxyStore proxy names."""
    store = get_store(proxy)
    if store is None:
        raise ReferenceError('the proxy was not made by a Store')
    return reference_from_key(store, get_key(proxy), format)
