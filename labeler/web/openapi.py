"""The OpenAPI 3 document of the JSON API (labeler.web.api), written by hand; tests/test_api.py checks that it
names every /api/v1 route with its methods, and nothing else."""
ERROR = {"$ref": "#/components/schemas/Error"}
DATASET = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
           "description": "The dataset's name."}
NULLABLE_TEXT = {"type": "string", "nullable": True}
NULLABLE_NUMBER = {"type": "number", "nullable": True}


def _errors(*statuses):
    words = {400: "Bad request: one line naming the row and the field, or the bad argument.",
             401: "No token, an unknown or revoked one, or its user is disabled (a login cookie does not work).",
             403: "The token lacks the route's scope.", 404: "No such dataset, item or job.",
             413: "The body is too large.", 415: "Neither JSON nor NDJSON."}
    return {str(status): {"description": words[status], "content": {"application/json": {"schema": ERROR}}}
            for status in statuses}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _secured(scope):
    return [{"bearer": [scope]}]


PROVENANCE = {
    "type": "object",
    "description": "The label that stands for the item now and how it was reached (the export's fields): a "
                   "reviewer's decision (adjudicated); else the answer every analyst agrees on (agreed, single); "
                   "else none (disputed). Every field null and answers 0 when no analyst answered.",
    "properties": {
        "label": NULLABLE_TEXT, "standing": {"type": "string", "nullable": True,
                                             "enum": ["adjudicated", "agreed", "single", "disputed", None]},
        "decided_by": NULLABLE_TEXT, "decided_at": NULLABLE_TEXT, "answers": {"type": "integer"},
        "source": NULLABLE_TEXT, "reason": NULLABLE_TEXT, "note": NULLABLE_TEXT, "suggested": NULLABLE_TEXT,
        "suggested_probability": NULLABLE_NUMBER, "accepted": {"type": "boolean", "nullable": True},
        "strategy": NULLABLE_TEXT, "seconds_on_screen": NULLABLE_NUMBER,
        "model_version": {"type": "integer", "nullable": True},
    },
}
DECISION = {
    "type": "object",
    "description": "One label row (the export's decision fields) with its cursor.",
    "properties": {
        "cursor": {"type": "integer", "description": "The row's id: ask for labels after it."},
        "annotator": NULLABLE_TEXT, "at": {"type": "string", "format": "date-time"}, "label": NULLABLE_TEXT,
        "source": {"type": "string", "enum": ["human", "review", "pseudo", "model"]},
        "retracted": {"type": "boolean"}, "card_run": {"type": "boolean"}, "reason": NULLABLE_TEXT,
        "note": NULLABLE_TEXT, "suggested": NULLABLE_TEXT, "suggested_probability": NULLABLE_NUMBER,
        "suggestion_shown": {"type": "boolean", "nullable": True}, "accepted": {"type": "boolean", "nullable": True},
        "strategy": NULLABLE_TEXT, "seconds_on_screen": NULLABLE_NUMBER,
        "model_version": {"type": "integer", "nullable": True},
    },
}


def document():
    """The OpenAPI 3.0 document as a dict."""
    return {
        "openapi": "3.0.3",
        "info": {"title": "labeler JSON API", "version": "1",
                 "description": "Push transactions, pull label decisions since a cursor, read items, statistics "
                                "and jobs. Tokens: manage.py create-token, or the API tokens page."},
        "servers": [{"url": "/api/v1"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "A token with the route's scope: read, write or admin."}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Provenance": PROVENANCE,
                "Decision": DECISION,
            },
        },
        "paths": {
            "/datasets/{name}/transactions": {"post": {
                "summary": "Append transactions to a dataset",
                "description": "A JSON array of objects, or NDJSON (one object per line), each with the dataset's "
                               "id column and columns (a missing field is empty). Validated exactly as an import, "
                               "all or nothing; rows whose id is stored already are counted, not added. The "
                               "retrain that scores the new rows and the queue refill are queued.",
                "security": _secured("write"),
                "parameters": [DATASET],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                    "application/x-ndjson": {"schema": {"type": "string"}}}},
                "responses": {"200": _json({"type": "object", "properties": {
                    "dataset": {"type": "string"}, "received": {"type": "integer"}, "added": {"type": "integer"},
                    "already_present": {"type": "integer"},
                    "jobs": {"type": "object", "additionalProperties": {"type": "integer"},
                             "description": "The job queued per kind (none when nothing was added)."}}},
                    "Counts of the batch."), **_errors(400, 401, 403, 404, 413, 415)},
            }},
            "/datasets/{name}/labels": {"get": {
                "summary": "Human label decisions after a cursor",
                "description": "Answers, adjudications and their undos, oldest first (keyset on the cursor), each "
                               "with the item's label that stands now.",
                "security": _secured("read"),
                "parameters": [DATASET,
                               {"name": "after", "in": "query", "schema": {"type": "integer", "minimum": 0},
                                "description": "The last cursor seen (0, the default: from the start)."},
                               {"name": "limit", "in": "query",
                                "schema": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "dataset": {"type": "string"},
                    "labels": {"type": "array", "items": {"allOf": [
                        {"$ref": "#/components/schemas/Decision"},
                        {"type": "object", "properties": {
                            "item": {"type": "string"}, "undoes": {"type": "integer", "nullable": True},
                            "now": {"$ref": "#/components/schemas/Provenance"}}}]}},
                    "next": {"type": "integer", "description": "The cursor to ask after next time."},
                    "more": {"type": "boolean"}}}, "A page of decisions."), **_errors(400, 401, 403, 404)},
            }},
            "/datasets/{name}/items/{external_id}": {"get": {
                "summary": "One item with its label history",
                "security": _secured("read"),
                "parameters": [DATASET, {"name": "external_id", "in": "path", "required": True,
                                         "schema": {"type": "string"}, "description": "The item's id."}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "dataset": {"type": "string"}, "id": {"type": "string"},
                    "values": {"type": "object", "description": "Column: value, numbers as numbers."},
                    "now": {"$ref": "#/components/schemas/Provenance"},
                    "decisions": {"type": "array", "items": {"$ref": "#/components/schemas/Decision"}}}},
                    "The item."), **_errors(401, 403, 404)},
            }},
            "/datasets/{name}/stats": {"get": {
                "summary": "A dataset's statistics",
                "description": "Rows, features, roles, label set and label counts (ground truth: admin scope only).",
                "security": _secured("read"),
                "parameters": [DATASET],
                "responses": {"200": _json({"type": "object"}, "The statistics."), **_errors(401, 403, 404)},
            }},
            "/jobs/{job_id}": {"get": {
                "summary": "A worker job's state",
                "security": _secured("read"),
                "parameters": [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "id": {"type": "integer"}, "kind": {"type": "string"}, "dataset": NULLABLE_TEXT,
                    "state": {"type": "string", "enum": ["queued", "running", "done", "failed"]},
                    "stage": NULLABLE_TEXT, "percent": {"type": "number"}, "error": NULLABLE_TEXT,
                    "created_at": NULLABLE_TEXT, "started_at": NULLABLE_TEXT, "finished_at": NULLABLE_TEXT}},
                    "The job."), **_errors(401, 403, 404)},
            }},
            "/openapi.json": {"get": {
                "summary": "This document", "security": [],
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }},
        },
    }
