"""Kafka's default partitioner for keyed messages, in C.

The Java client, and so every Kafka tool and upstream publisher, puts a keyed message on
partition ``(murmur2(key) & 0x7fffffff) % partitions``. aiokafka computes murmur2 in pure
Python, a loop per byte of every key; ``murmurhash2`` is the same function in C.
``tests/unit/test_partitioning.py`` holds it to aiokafka's and to
the Java client's published values.
"""

from murmurhash2 import murmurhash2

MURMUR2_SEED = 0x9747B28C  # the Java client's


def murmur2(key: bytes) -> int:
    """The Java client's ``Utils.murmur2``, as an unsigned 32-bit integer."""
    return int(murmurhash2(key, MURMUR2_SEED))


def partition_index(key: bytes, count: int) -> int:
    """The index, among ``count`` partitions, of a message keyed ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % count
