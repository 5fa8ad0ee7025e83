"""The typed dependencies the routes share: the state the lifespan loaded, the bearer token."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


def get_state(request: Request) -> Any:
    """The server's State (web/app.py), loaded once by the lifespan."""
    return request.app.state.salon


StateDep = Annotated[Any, Depends(get_state)]
# The admin token, as `Authorization: Bearer …` (the scheme in any case); none: None, and the
# route answers with Salon's error shape rather than FastAPI's.
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]
