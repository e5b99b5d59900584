"""Which lane a job travels in (``events.topics``): the interactive lane for small jobs and
for what asks for it within the key's cap, the bulk lane for the rest. The workers serve the
interactive lane first, so its jobs do not wait behind another user's backlog."""

from events.topics import Lane
from ingest_api.deps import Caller
from ingest_api.errors import InteractiveNotAllowed
from ingest_api.settings import ApiSettings


def interactive_cap(caller: Caller, settings: ApiSettings) -> int:
    """The largest job the caller's key may send to the interactive lane."""
    if caller.interactive_max_items is not None:
        return caller.interactive_max_items
    return settings.api_interactive_max_items


def lane_for(
    requested: Lane | None, total_items: int, caller: Caller, settings: ApiSettings
) -> Lane:
    """``requested`` (the job's ``priority``), or by the job's size when it says none.
    Raises ``InteractiveNotAllowed`` for an interactive job over the key's cap."""
    cap = interactive_cap(caller, settings)
    if requested is None:
        small = min(cap, settings.api_interactive_default_max_items)
        return "interactive" if total_items <= small else "bulk"
    if requested == "interactive" and total_items > cap:
        raise InteractiveNotAllowed(
            f"a job of {total_items} items may not be interactive with this API key "
            f"(at most {cap}); send it as bulk, or without a priority",
            total_items=total_items,
            interactive_max_items=cap,
        )
    return requested
