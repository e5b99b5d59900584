"""Engine creation from a SQLAlchemy URL (``postgresql+psycopg2://...``)."""

from sqlalchemy import Engine, create_engine


def normalise_url(url: str) -> str:
    """Accept plain ``postgresql://`` / ``postgres://`` URLs as users write them."""
    for head in ("postgres://", "postgresql://"):
        if url.startswith(head):
            return "postgresql+psycopg2://" + url[len(head) :]
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(normalise_url(url), pool_size=pool_size, pool_pre_ping=True, future=True)
