"""HTTP routes of the audit domain (thin: parse, call the service, shape the answer)."""

from fastapi import APIRouter

router = APIRouter()
