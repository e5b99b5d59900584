"""The walking skeleton's output: the validated input, echoed back."""

from typing import Any

from pydantic import BaseModel, ConfigDict


class EchoOutput(BaseModel):
    model_config = ConfigDict(frozen=True)

    echo: dict[str, Any]
