"""HTTP routes of the jobs domain (thin: parse, call the service, shape the answer)."""

from fastapi import APIRouter

router = APIRouter()
