"""Signed rotation events for consumers (Standard Webhooks), delivered from an outbox table.

``mapping`` decides which audit events are consumer events (pure); ``outbox`` writes them in the
audit transaction and lets deliverers claim them; ``signing`` signs; ``deliverer`` sends.
"""
