"""The request body of POST /v1/label, validated by pydantic (FastAPI turns a failure into a 422 that
names the field). Strict types: a number is not a text, an unknown key is an error, not ignored."""

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

ITEM_FIELDS = ("title", "summary", "ocr_text", "asr_text")
MAX_ID_CHARS = 256


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: StrictStr = Field(min_length=1, max_length=MAX_ID_CHARS)
    title: StrictStr = ""
    summary: StrictStr = ""
    ocr_text: StrictStr = ""
    asr_text: StrictStr = ""


class LabelRequest(BaseModel):
    """Either `items` (fields, joined into the model input text as corpus/items does) or `texts` (each
    already a model input text, as corpus/items' `text` column)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    items: list[Item] | None = None
    texts: list[StrictStr] | None = None
    schemes: list[StrictStr] | None = Field(None, description="a subset of the served schemes; default all")

    @model_validator(mode="after")
    def one_kind_of_input(self) -> "LabelRequest":
        if (self.items is None) == (self.texts is None):
            raise ValueError('give exactly one of "items" or "texts"')
        if not (self.items or self.texts):
            raise ValueError('"items" / "texts" is empty: send at least one')
        if self.items is not None:
            ids = [item.id for item in self.items]
            if len(set(ids)) != len(ids):
                raise ValueError("item ids must be unique within a request")
        if self.schemes is not None and not self.schemes:
            raise ValueError('"schemes" is empty: omit it for every served scheme')
        return self

    def size(self) -> int:
        return len(self.items if self.items is not None else self.texts)

    def longest_field(self) -> tuple[str, int]:
        """(where, characters) of the longest text given."""
        if self.texts is not None:
            index = max(range(len(self.texts)), key=lambda i: len(self.texts[i]))
            return f"texts[{index}]", len(self.texts[index])
        where, longest = "", -1
        for i, item in enumerate(self.items):
            for name in ITEM_FIELDS:
                if len(getattr(item, name)) > longest:
                    where, longest = f"items[{i}].{name}", len(getattr(item, name))
        return where, longest
