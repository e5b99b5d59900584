"""Field types shared by the Archive Origin job types."""

import base64
import binascii
from typing import Annotated

from pydantic import AfterValidator, Field

DeviceId = Annotated[str, Field(min_length=1, max_length=128)]
ContentHash = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$"), AfterValidator(str.lower)]


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be standard base64") from None
    return value


Base64 = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_base64)]
