"""What the console's operator page shows of the consumer groups: each group's state and
members, and per partition its position, the partition's end and the lag between them.

A group that keeps its positions outside Kafka (the projector stores them in PostgreSQL, in
the transaction of its rows) is given them as ``stored``; the others' are their committed
offsets."""

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import DescribeGroupsRequest, DescribeGroupsRequest_v2

from streaming.clients import make_admin, make_consumer, topic_partitions
from streaming.settings import KafkaSettings

TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    position: int | None  # None: the group has none yet (it starts from the beginning)
    end: int

    @property
    def lag(self) -> int:
        return max(0, self.end - (self.position or 0))


@dataclass(frozen=True)
class GroupReport:
    group_id: str
    state: str  # Kafka's: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
    members: list[str]  # client id @ host
    partitions: list[PartitionLag] = field(default_factory=list)

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions)


async def inspect_groups(
    settings: KafkaSettings,
    groups: Mapping[str, Sequence[str]],
    stored: Mapping[str, Mapping[tuple[str, int], int]] | None = None,
) -> list[GroupReport]:
    """A report per group of ``groups`` (group id → the topics it reads), in that order."""
    async with asyncio.timeout(TIMEOUT_S):
        return await _inspect(settings, groups, stored or {})


async def _inspect(
    settings: KafkaSettings,
    groups: Mapping[str, Sequence[str]],
    stored: Mapping[str, Mapping[tuple[str, int], int]],
) -> list[GroupReport]:
    admin = make_admin(settings)
    await admin.start()
    try:
        consumer = make_consumer(settings, group_id=None)
        await consumer.start()
        try:
            read = {topic for topics in groups.values() for topic in topics}
            tps = await topic_partitions(consumer, lambda name: name in read)
            ends = await consumer.end_offsets(tps) if tps else {}
        finally:
            await consumer.stop()
        described = await _describe(admin, list(groups))
        reports = []
        for group_id, topics in groups.items():
            positions = stored.get(group_id)
            if positions is None:
                committed = await admin.list_consumer_group_offsets(group_id)
                positions = {
                    (tp.topic, tp.partition): meta.offset for tp, meta in committed.items()
                }
            state, members = described.get(group_id, ("Dead", []))
            reports.append(
                GroupReport(
                    group_id,
                    state,
                    members,
                    [
                        PartitionLag(
                            tp.topic,
                            tp.partition,
                            _position(positions, tp),
                            ends[tp],
                        )
                        for tp in tps
                        if tp.topic in topics
                    ],
                )
            )
        return reports
    finally:
        await admin.close()


def _position(positions: Mapping[tuple[str, int], int], tp: TopicPartition) -> int | None:
    position = positions.get((tp.topic, tp.partition))
    return None if position is None or position < 0 else position


async def _describe(
    admin: AIOKafkaAdminClient, group_ids: list[str]
) -> dict[str, tuple[str, list[str]]]:
    """group id → (state, members), from DescribeGroups v2: aiokafka 0.14's own call asks
    for v3 and decodes the answer as v2 (its authorized operations left unread), which
    breaks the connection. The fields are read by name."""
    found: dict[str, tuple[str, list[str]]] = {}
    for group_id in group_ids:
        coordinator = await admin.find_coordinator(group_id)
        response = await admin._client.send(coordinator, _DescribeGroupsV2([group_id]))
        for group in response.to_object()["groups"]:
            members = [f"{m['client_id']}@{m['client_host']}" for m in group["members"]]
            found[group["group"]] = (group["state"] or "Dead", sorted(members))
    return found


class _DescribeGroupsV2(DescribeGroupsRequest):
    """DescribeGroups at v2, whose answer aiokafka decodes as it is."""

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        return self.build(DescribeGroupsRequest_v2)
