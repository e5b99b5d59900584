import re

from events.topics import Topics


def test_topic_names_share_the_prefix():
    topics = Topics("acme.")
    assert topics.jobs == "acme.jobs"
    assert topics.items("proof_lock") == "acme.items.proof_lock"
    assert topics.outcomes == "acme.outcomes"
    assert topics.dlq == "acme.dlq"
    assert topics.dlq not in topics.event_logs(["query"])


def test_projected_pattern_matches_event_logs_but_not_the_dlq():
    topics = Topics("a.b.")
    pattern = re.compile(topics.projected_pattern())
    for name in topics.event_logs(["query", "new_type"]):
        assert pattern.match(name), name
    assert not pattern.match(topics.dlq)
    assert not pattern.match("aXb.jobs")  # the prefix's dots are literal
    assert not pattern.match("other.jobs")
