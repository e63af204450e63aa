"""The durable outbox: events written with their cause, delivered to webhook subscriptions."""
