"""Wacanda's answering brain: grounded answers with sources, confidence, memory, sentiment and a
handoff decision, over any :class:`~wacanda.answering.types.Retriever`."""
