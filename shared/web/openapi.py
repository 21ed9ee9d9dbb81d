"""The OpenAPI description of the HTTP API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

_GUID = {"type": "string", "format": "uuid", "example": "60c4e274-0d87-e711-80e5-00155db19e6d"}
_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
_FIELDS = {"type": "object", "additionalProperties": True}


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in (401, *codes)
    }


def _ok(schema: dict[str, Any], *errors: int) -> dict[str, Any]:
    return {
        "200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
        **_errors(*errors),
    }


def _id_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": _GUID}


_ACCOUNT = {
    "type": "object",
    "required": ["accountid", "fields", "contact_count", "is_deleted", "locally_modified"],
    "properties": {
        "accountid": _GUID,
        "fields": _FIELDS,
        "contact_count": {"type": "integer"},
        "is_deleted": {"type": "boolean"},
        "locally_modified": {"type": "array", "items": {"type": "string"}},
        "synced_at": {"type": "string", "nullable": True},
    },
}

OPENAPI: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "acctsync",
        "version": "0.1.0",
        "description": "The marketing side of the Dynamics account mirror.",
    },
    "servers": [{"url": "/"}],
    "components": {
        "schemas": {"Error": _ERROR, "Account": _ACCOUNT},
        "securitySchemes": {
            "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"}
        },
    },
    "security": [{"functionKey": []}],
    "paths": {
        "/api/accounts": {
            "post": {
                "summary": "Always refused: accounts are created in Dynamics only",
                "responses": _errors(405),
            }
        },
        "/api/accounts/{accountid}": {
            "get": {
                "summary": "A mirrored account",
                "parameters": [_id_param("accountid")],
                "responses": _ok({"$ref": "#/components/schemas/Account"}, 400, 404),
            }
        },
        "/api/contacts/{contactid}": {
            "get": {
                "summary": "A mirrored contact with its account",
                "parameters": [_id_param("contactid")],
                "responses": _ok({"type": "object"}, 400, 404),
            }
        },
        "/api/contacts/{contactid}/account": {
            "patch": {
                "summary": "Edit the contact's account in the mirror (never sent to Dynamics)",
                "parameters": [_id_param("contactid")],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["fields"],
                                "additionalProperties": False,
                                "properties": {"fields": _FIELDS},
                            }
                        }
                    },
                },
                "responses": _ok({"type": "object"}, 400, 404, 409, 413, 422),
            }
        },
        "/api/contacts/{contactid}/activities": {
            "get": {
                "summary": "The contact's Change Data Value activities, newest first",
                "parameters": [_id_param("contactid")],
                "responses": _ok({"type": "array", "items": {"type": "object"}}, 400, 404),
            }
        },
        "/api/sync/status": {
            "get": {"summary": "Sync status and errors", "responses": _ok({"type": "object"})}
        },
        "/api/sync/fields": {
            "get": {
                "summary": "Every account column, readable by the sync user or not, and selected",
                "responses": _ok({"type": "array", "items": {"type": "object"}}),
            },
            "put": {
                "summary": "Store the selection of account columns to sync",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["selected"],
                                "properties": {
                                    "selected": {"type": "array", "items": {"type": "string"}}
                                },
                            }
                        }
                    },
                },
                "responses": _ok({"type": "object"}, 400, 413, 422),
            },
        },
        "/api/openapi.json": {
            "get": {"summary": "This description", "responses": _ok({"type": "object"})}
        },
    },
}
