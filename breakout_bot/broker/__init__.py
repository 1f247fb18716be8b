"""Broker adapters behind one protocol (base.Broker)."""
