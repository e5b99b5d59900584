import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from streaming.partitioning import murmur2, partition_index


def test_the_java_clients_values():
    # murmur2("21") is -973932308 in org.apache.kafka.common.utils.UtilsTest (signed there),
    # and the partitions among 1,000 of kafka-python's test vectors
    assert murmur2(b"21") == -973932308 + 2**32
    vectors = {b"": 681, b"a": 524, b"ab": 434, b"abc": 107, b"123456789": 566, b"\x00 ": 742}
    for key, partition in vectors.items():
        assert partition_index(key, 1000) == partition


@given(st.binary(max_size=200), st.integers(min_value=1, max_value=500))
def test_the_same_partition_as_aiokafkas_partitioner(key, count):
    partitions = list(range(count))
    assert murmur2(key) == aiokafka_murmur2(key)
    assert partition_index(key, count) == DefaultPartitioner()(key, partitions, partitions)


def test_keys_of_every_length_up_to_a_kilobyte():
    rng = random.Random(7)
    for length in range(1024):
        key = rng.randbytes(length)
        assert murmur2(key) == aiokafka_murmur2(key), length
