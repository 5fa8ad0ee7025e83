"""The typed dependencies the routes share: the state the lifespan loaded, the bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from indexer.settings import Settings
from search.types import SearchError


def get_state(request: Request) -> Any:
    """The server's State (web/app.py), loaded once by the lifespan."""
    return request.app.state.salon


StateDep = Annotated[Any, Depends(get_state)]
# The admin token, as `Authorization: Bearer …` (the scheme in any case); none: None, and the
# route answers with Salon's error shape rather than FastAPI's.
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(HTTPBearer(auto_error=False))]


def check_token(settings: Settings, bearer: HTTPAuthorizationCredentials | None, off_code: str, what: str) -> None:
    """Admit a request bearing SALON_ADMIN_TOKEN (compared in constant time): 403 ``off_code``
    while no token is set, 401 for a missing or wrong one."""
    token = settings.admin_token.get_secret_value() if settings.admin_token else ""
    if not token:
        raise SearchError(off_code, f"{what} are off: set SALON_ADMIN_TOKEN", 403)
    given = bearer.credentials if bearer is not None else ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise SearchError("unauthorized", "bad or missing bearer token", 401)
