"""Kafka connection settings and client factories shared by every process."""
