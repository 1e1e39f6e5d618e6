"""The canned_responses domain's logic (no HTTP; callers own the transaction)."""
