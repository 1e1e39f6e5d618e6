"""HTTP routes of the labels domain (thin: parse, call the service, shape the answer)."""

from fastapi import APIRouter

router = APIRouter()
