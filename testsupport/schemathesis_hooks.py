"""Loaded by schemathesis (testsupport/schemathesis.toml `hooks`) before it runs.

CPython 3.11.7's `ast.parse` can raise `SystemError: AST constructor recursion depth mismatch`
when called deep in a recursion; Hypothesis calls it only to describe a filter's lambda for a
strategy's repr, and schemathesis' coverage phase builds such filters deep in its schema walk.
The description is cosmetic: an unparseable lambda is described as unknown, as Hypothesis does
for lambdas whose source it cannot find, instead of failing the operation."""

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _described_or_unknown(f):
    try:
        return _describe(f)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _described_or_unknown
