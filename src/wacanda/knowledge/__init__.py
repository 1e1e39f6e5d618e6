"""Wacanda's knowledge base: parsing, chunking, embeddings and search."""
