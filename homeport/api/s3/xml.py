"""S3's XML: response documents (namespace ``http://s3.amazonaws.com/doc/2006-03-01/``), the
``<Error>`` body, and parsing of request bodies.

Request bodies are untrusted: they are parsed with defusedxml (no DTDs, no entities, no
external references) and namespaces are dropped, since clients send them with or without.
"""

from __future__ import annotations

import email.utils
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from homeport.api.s3.errors import S3Error, malformed_xml

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
# S3 has no accounts here; every bucket and object is owned by this one owner.
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
OWNER_NAME = "homeport"
XML_CONTENT_TYPE = b"application/xml"


def document(name: str) -> Element:
    """The root element of a response document, in S3's namespace."""
    return Element(name, xmlns=NS)


def add(parent: Element, name: str, value: str | int | bool | None = None) -> Element:
    """Append ``<name>value</name>`` (booleans as true/false); the new element."""
    child = ET.SubElement(parent, name)
    if isinstance(value, bool):
        child.text = "true" if value else "false"
    elif value is not None:
        child.text = str(value)
    return child


def add_owner(parent: Element, name: str = "Owner") -> None:
    owner = add(parent, name)
    add(owner, "ID", OWNER_ID)
    add(owner, "DisplayName", OWNER_NAME)


def to_bytes(root: Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(
        root, encoding="utf-8", xml_declaration=False
    )


def iso8601(timestamp: float) -> str:
    """S3's timestamp in XML bodies: ``2024-01-31T12:34:56.789Z``."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def http_date(timestamp: float) -> str:
    """RFC 7231 date for headers (Last-Modified): ``Wed, 31 Jan 2024 12:34:56 GMT``."""
    return email.utils.formatdate(timestamp, usegmt=True)


def quoted(etag: str) -> str:
    return f'"{etag}"'


def error_body(error: S3Error, request_id: str) -> bytes:
    root = Element("Error")
    add(root, "Code", error.code)
    add(root, "Message", error.message)
    for name, value in error.fields.items():
        add(root, name, value)
    add(root, "RequestId", request_id)
    add(root, "HostId", request_id)
    return to_bytes(root)


def _strip_namespaces(root: Element) -> Element:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.rsplit("}", 1)[1]
    return root


def parse(body: bytes, root_name: str) -> Element:
    """Parse a request body whose root must be ``root_name``; MalformedXML otherwise."""
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except (ET.ParseError, DefusedXmlException, ValueError) as exc:
        raise malformed_xml() from exc
    root = _strip_namespaces(root)
    if root.tag != root_name:
        raise malformed_xml()
    return root


def text(parent: Element, name: str) -> str | None:
    """The text of the first child ``name`` ("" when empty), or None when absent."""
    child = parent.find(name)
    if child is None:
        return None
    return child.text or ""
