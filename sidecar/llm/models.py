"""The closed shape of a model's answer. Anything else (an unknown kind, an extra field,
a missing one) fails validation: the answer is then recorded as invalid, never guessed at."""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexProposal(_Closed):
    kind: Literal["index"]
    table: str = Field(description="Table name exactly as in the context, schema-qualified")
    columns: list[str] = Field(min_length=1, max_length=8,
                               description="Key columns, in order: column names, or lower(column) / upper(column)")
    method: Literal["btree", "hash", "gin", "gist", "brin"]
    where: str | None = Field(description="Partial-index predicate: column op constant, joined by AND; or null")
    include: list[str] = Field(max_length=8, description="INCLUDE columns (may be empty)")
    explanation: str = Field(max_length=2000, description="Why this index helps, in plain language")


class RewriteProposal(_Closed):
    kind: Literal["rewrite"]
    queryid: str | None = Field(description="queryid of the statement rewritten (workload analyses); or null")
    sql: str = Field(max_length=20000, description="One SELECT returning the same rows, same $n parameters")
    explanation: str = Field(max_length=2000)


class ConfigProposal(_Closed):
    kind: Literal["config"]
    name: str = Field(description="A PostgreSQL setting name")
    value: str = Field(description="The new value, with unit if any (e.g. 64MB)")
    scope: Literal["system", "database", "role", "session"]
    explanation: str = Field(max_length=2000)


class ExplanationProposal(_Closed):
    kind: Literal["explanation"]
    explanation: str = Field(max_length=4000, description="What makes the query slow, in plain language")


# A plain union (anyOf in the schema, as strict json_schema mode requires); the
# Literal kinds make exactly one member match.
Proposal = Annotated[Union[IndexProposal, RewriteProposal, ConfigProposal, ExplanationProposal],
                     Field(union_mode="left_to_right")]


class Analysis(_Closed):
    proposals: list[Proposal] = Field(max_length=20)


def response_format() -> dict:
    """The OpenAI `response_format` asking for exactly an Analysis (strict JSON schema)."""
    return {"type": "json_schema",
            "json_schema": {"name": "optischema_analysis", "strict": True, "schema": Analysis.model_json_schema()}}
