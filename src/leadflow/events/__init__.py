"""Outbox events: state changes other domains react to, written in the same transaction."""
