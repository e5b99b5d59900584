"""Workers: one Kafka consumer group per job type turns each item into one outcome event."""
