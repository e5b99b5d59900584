"""``hash_check``: does a piece of content have the SHA-256 its submitter claims?"""

import base64
import hashlib

from pydantic import BaseModel, ConfigDict, Field

from jobtypes import Handler, ItemContext, PermanentError
from jobtypes.fields import Base64, ContentHash


class HashCheckInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")  # unknown fields are refused

    content: Base64 = Field(description="the content, base64")
    content_hash: ContentHash = Field(description="its claimed SHA-256, hex")


class HashCheckOutput(BaseModel):
    matches: bool
    actual_hash: str


class HashCheckHandler(Handler[HashCheckInput, HashCheckOutput]):
    job_type = "hash_check"
    input_model = HashCheckInput
    output_model = HashCheckOutput
    timeout_s = 5.0

    async def handle(self, item: HashCheckInput, context: ItemContext) -> HashCheckOutput:
        content = base64.b64decode(item.content)
        if not content:
            raise PermanentError("empty_content", "there is nothing to hash")
        actual = hashlib.sha256(content).hexdigest()
        return HashCheckOutput(matches=actual == item.content_hash, actual_hash=actual)
