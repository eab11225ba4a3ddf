"""EVE objects of the mail protocols: ``smtp`` and ``email`` as Suricata writes
them, ``pop3`` as Suricata 8 does (request/response, without the message
lines), and ``imap`` (this project's own: Suricata has no IMAP log).

Every mail record may carry an `email` summary, written under ``email`` next
to the record's own object (see `EveWriter`).
"""
from __future__ import annotations

from inspection.applayer.imap import ImapTransaction
from inspection.applayer.mail_message import EmailSummary
from inspection.applayer.pop3 import Pop3Transaction
from inspection.applayer.smtp import SmtpTransaction

__all__ = ["email_to_eve", "imap_to_eve", "pop3_to_eve", "smtp_to_eve"]


def smtp_to_eve(tx: SmtpTransaction) -> dict:
    eve: dict = {}
    if tx.helo is not None:
        eve["helo"] = tx.helo
    if tx.mail_from is not None:
        eve["mail_from"] = tx.mail_from
    if tx.rcpt_to:
        eve["rcpt_to"] = list(tx.rcpt_to)
    return eve


def pop3_to_eve(tx: Pop3Transaction) -> dict:
    eve: dict = {"request": {"command": tx.command, "args": list(tx.args)}}
    if tx.status is not None:
        resp: dict = {"success": tx.status == "+OK", "status": tx.status}
        if tx.header:
            resp["header"] = tx.header
        eve["response"] = resp
    return eve


def imap_to_eve(tx: ImapTransaction) -> dict:
    eve: dict = {"tag": tx.tag, "command": tx.command}
    if tx.status is not None:
        eve["status"] = tx.status
    if tx.messages:
        eve["messages"] = tx.messages
    return eve


def email_to_eve(e: EmailSummary) -> dict:
    """Suricata's ``email`` object; absent fields are left out."""
    eve: dict = {"status": e.status}
    if e.from_ is not None:
        eve["from"] = e.from_
    if e.to:
        eve["to"] = list(e.to)
    if e.cc:
        eve["cc"] = list(e.cc)
    if e.subject is not None:
        eve["subject"] = e.subject
    if e.message_id is not None:
        eve["message_id"] = e.message_id
    if e.attachments:
        eve["attachment"] = list(e.attachments)
    if e.urls:
        eve["url"] = list(e.urls)
    return eve

