"""Errors of the documents domain, each with a stable code.

BastionError
├── InvalidInput
│   ├── UnsupportedFormat      415 unsupported_format
│   ├── MalformedDocument      422 malformed_document
│   ├── EmptyDocument          422 empty_document
│   └── PersonalDataRefused    422 personal_data_refused
├── Forbidden
│   └── CollectionForbidden    403 collection_forbidden
└── NotFound
    ├── CollectionNotFound     404 collection_not_found
    └── DocumentNotFound       404 document_not_found
"""

from __future__ import annotations

from bastion.errors import BastionError, Forbidden, InvalidInput, NotFound


class DocumentsError(BastionError):
    """Root of this package's errors (never raised itself)."""


class UnsupportedFormat(InvalidInput):
    status = 415
    code = "unsupported_format"


class MalformedDocument(InvalidInput):
    status = 422
    code = "malformed_document"


class EmptyDocument(InvalidInput):
    status = 422
    code = "empty_document"


class PersonalDataRefused(InvalidInput):
    status = 422
    code = "personal_data_refused"


class CollectionForbidden(Forbidden):
    code = "collection_forbidden"


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"
