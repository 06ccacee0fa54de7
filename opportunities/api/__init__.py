"""REST API routers for opportunities (mounted by crm/api.py at /api/v1/)."""

from opportunities.api.events import router as events_router
from opportunities.api.opportunities import router as opportunities_router

__all__ = ["events_router", "opportunities_router"]
