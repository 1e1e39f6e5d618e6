"""The contacts domain's logic (no HTTP; callers own the transaction)."""
