"""HTTP routes of the teams domain (thin: parse, call the service, shape the answer)."""

from fastapi import APIRouter

router = APIRouter()
