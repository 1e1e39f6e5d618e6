"""HTTP routes of the canned_responses domain (thin: parse, call the service, shape the answer)."""

from fastapi import APIRouter

router = APIRouter()
