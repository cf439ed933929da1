"""Schemathesis hooks for scripts/api-fuzz.sh.

The OpenAPI document describes each parameter on its own; three rules relate
two parameters, which JSON Schema cannot say of query parameters or across
the query and the body (README "API"):

- `chatbotId` and its alias `agentId` must be equal when both are given;
- `startDate` must not be after `endDate`;
- `include` is given once: in the body or in the query string of a POST.

A request breaking one of them is 400 by design. So that `positive_data_acceptance`
stays strict for everything else, positive cases are made to keep these rules;
negative cases are left alone (their 400 is what they expect).
"""

import schemathesis
from schemathesis.generation import GenerationMode

DATE_LENGTH = len("YYYY-MM-DD")


def _keep_rules(params):
    if not isinstance(params, dict):
        return
    if "chatbotId" in params and "agentId" in params:
        params["agentId"] = params["chatbotId"]
    start, end = params.get("startDate"), params.get("endDate")
    # Strict YYYY-MM-DD strings order like the dates they name.
    if isinstance(start, str) and isinstance(end, str) and len(start) == len(end) == DATE_LENGTH and start > end:
        params["startDate"], params["endDate"] = end, start


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    _keep_rules(case.query)
    _keep_rules(case.body)
    if isinstance(case.body, dict) and "include" in case.body and isinstance(case.query, dict):
        case.query.pop("include", None)
    return case
