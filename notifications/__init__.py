"""The notifier: delivers each finished job's ``JobFinished`` to its callback URL as a signed
webhook (Standard Webhooks), with retries, recording every attempt."""
