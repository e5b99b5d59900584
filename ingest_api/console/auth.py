"""Who a console request comes from (the session cookie), and the checks of state-changing
requests (the session's CSRF token, in a form field or the ``X-CSRF-Token`` header)."""

from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool

from ingest_api.console.sessions import SignedIn, signed_in
from ingest_api.deps import Caller, SessionDep
from ingest_api.errors import ApiError, InvalidBatch, RateLimited, TooLarge

COOKIE = "aob_console"
SIGN_IN_COOKIE = "aob_console_sign_in"  # the sign-in form's CSRF token, before a session
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class NotSignedIn(ApiError):
    status_code = 401
    code = "not_signed_in"


class CsrfRefused(ApiError):
    status_code = 403
    code = "csrf_refused"


class OperatorsOnly(ApiError):
    status_code = 403
    code = "operators_only"


async def get_signed_in(request: Request, session: SessionDep) -> SignedIn:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 128:
        raise NotSignedIn("sign in with an API key")
    found = await run_in_threadpool(signed_in, session, token=token)
    if found is None:
        raise NotSignedIn("the session has ended: sign in again")
    settings = request.app.state.settings
    admission = await request.app.state.admissions.admit(
        key_hash=found.key_hash,
        rate=settings.api_rate_limit_per_s,
        burst=settings.api_rate_limit_burst,
    )
    if admission is None:
        raise NotSignedIn("the session's key was revoked: sign in again")
    if admission.wait_s:
        raise RateLimited(admission.wait_s)
    return found


SignedInDep = Annotated[SignedIn, Depends(get_signed_in)]


async def check_csrf(request: Request, user: SignedInDep) -> SignedIn:
    """The signed-in user of a state-changing request that carries the session's token."""
    token = request.headers.get(CSRF_HEADER)
    if token is None:
        token = (await form_fields(request)).get(CSRF_FIELD)
    if not user.csrf_matches(token):
        raise CsrfRefused("the form's CSRF token is missing or wrong: reload the page")
    return user


CheckedDep = Annotated[SignedIn, Depends(check_csrf)]

MAX_FORM_BYTES = 16 << 10


async def form_fields(request: Request) -> dict[str, str]:
    """A console form's fields (url-encoded, at most ``MAX_FORM_BYTES``; a field given twice
    keeps its first value), read once per request."""
    cached: dict[str, str] | None = getattr(request.state, "form_fields", None)
    if cached is not None:
        return cached
    fields: dict[str, str] = {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_FORM_BYTES:
                raise TooLarge(f"a form over {MAX_FORM_BYTES} bytes")
        try:
            pairs = parse_qsl(body.decode(), max_num_fields=50, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise InvalidBatch("the form is not url-encoded UTF-8") from None
        for name, value in pairs:
            fields.setdefault(name, value)
    request.state.form_fields = fields
    return fields


async def operator(user: SignedInDep) -> SignedIn:
    if not user.operator:
        raise OperatorsOnly("this page is for operators' keys (batchctl keys create --operator)")
    return user


OperatorDep = Annotated[SignedIn, Depends(operator)]


def caller_of(user: SignedIn) -> Caller:
    """The API's caller for what the console does on the user's behalf."""
    return Caller(user.user_id, user.key_hash, user.interactive_max_items)
