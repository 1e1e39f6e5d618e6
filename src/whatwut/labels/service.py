"""The labels domain's logic (no HTTP; callers own the transaction)."""
